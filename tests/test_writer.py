"""The store writer's child process: failures are retried, a killed child is replaced, a stalled one slows the proxy.

Real proxy, real origin, real store; the child is disturbed the way the world would (a broken table, SIGKILL,
SIGSTOP as a stand-in for a disk that stopped answering).
"""

from __future__ import annotations

import collections
import os
import pickle
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Proxy, start_proxy
from mitmproxy.test import tflow
from origins import OriginServer, TestPKI

from proxycap.capture.bus import Bus, Committed, FlowEvent
from proxycap.capture.summary import FIELDS, summarize
from proxycap.storage import child as writer_child
from proxycap.storage.framing import read_frame, write_frame
from proxycap.storage.store import Store
from proxycap.storage.writer import StoreWriter, collapse


def _writer_pid() -> int:
    """The store writer child of this (test) process, found as a user would: by its command line."""
    me = os.getpid()
    for task in os.listdir(f"/proc/{me}/task"):
        with open(f"/proc/{me}/task/{task}/children") as f:
            for pid in f.read().split():
                with open(f"/proc/{pid}/cmdline", "rb") as c:
                    if b"proxycap.storage.child" in c.read():
                        return int(pid)
    raise AssertionError("no store writer process")


def _wait_event(proxy: Proxy, text: str, timeout: float = 10) -> None:
    """Until the store's event log has a line containing ``text``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with sqlite3.connect(proxy.store_path) as db:
            if db.execute("SELECT 1 FROM events WHERE instr(message, ?)", (text,)).fetchone():
                return
        time.sleep(0.05)
    raise AssertionError(f"no event log line with {text!r}")


@pytest.fixture
def small_backlog_proxy(tmp_path: Path, confdir: Path, pki: TestPKI) -> Iterator[Proxy]:
    p = start_proxy(tmp_path, confdir, pki, sets=["proxycap_backlog=256k"])
    try:
        yield p
    finally:
        p.session.stop()


def test_the_writer_says_which_flows_it_committed_once_the_store_has_them(proxy: Proxy, origin: OriginServer) -> None:
    """Views update from ``Committed`` alone: each flow it names is already in the store, finished as it says."""
    sub = proxy.session.bus.subscribe("view", limit=1000, kinds=(Committed,))
    reader = Store(proxy.store_path, readonly=True)
    try:
        with proxy.client() as c:
            for i in range(5):
                c.get(f"{origin.url}/json?n={i}")
        seen: dict[str, tuple[int, str]] = {}
        deadline = time.monotonic() + 10
        while len(seen) < 5 and time.monotonic() < deadline:
            for event in sub.drain():
                rows = reader.rows([seq for _, seq, _ in event.flows])  # read as soon as heard: never ahead
                for flow_id, seq, state in event.flows:
                    assert rows[seq]["id"] == flow_id and rows[seq]["state"] == state
                    seen[flow_id] = (seq, state)
            time.sleep(0.02)
        assert sorted(seq for seq, _ in seen.values()) == reader.seqs()
        assert {state for _, state in seen.values()} == {"done"}
    finally:
        sub.close()
        reader.close()


def test_store_failure_is_retried_without_stopping_the_proxy(small_backlog_proxy: Proxy, origin: OriginServer) -> None:
    proxy = small_backlog_proxy
    with proxy.client() as c:
        assert c.get(f"{origin.url}/json").status_code == 200
    proxy.wait_flows(1)  # the writer has the store open
    with sqlite3.connect(proxy.store_path) as db:
        (schema,) = db.execute("SELECT sql FROM sqlite_master WHERE name = 'flow_data'").fetchone()
        db.execute("DROP TABLE flow_data")
    with proxy.client() as c:  # more than the backlog limit: waiting for a broken store would hang these
        for _ in range(4):
            assert c.get(f"{origin.url}/bytes/200000").status_code == 200
    log = proxy.store_path.parent / "proxycap.log"  # the store cannot tell: the log file does
    deadline = time.monotonic() + 10
    while "will retry" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    with sqlite3.connect(proxy.store_path) as db:
        db.execute(schema)
    assert len(proxy.wait_flows(5)) == 5
    _wait_event(proxy, "cannot write captured flows, will retry")  # kept, and stored once it could be
    _wait_event(proxy, "works again")
    proxy.session.stop()
    with sqlite3.connect(proxy.store_path) as db:  # every body sent while the table was gone
        assert db.execute("SELECT count(*) FROM flow_data").fetchone()[0] == 4


def test_killed_writer_is_replaced_and_nothing_is_lost(proxy: Proxy, origin: OriginServer) -> None:
    with proxy.client() as c:
        assert c.get(f"{origin.url}/json").status_code == 200
        os.kill(_writer_pid(), signal.SIGKILL)
        for _ in range(5):
            assert c.get(f"{origin.url}/json").status_code == 200
    assert len(proxy.wait_flows(6)) == 6
    _wait_event(proxy, "restarting it")
    proxy.session.stop()
    assert "not confirmed" not in (proxy.store_path.parent / "proxycap.log").read_text()  # all stored, all said
    with sqlite3.connect(proxy.store_path) as db:
        assert db.execute("SELECT count(*) FROM flow_data").fetchone()[0] == 6


def test_stalled_store_slows_the_proxy_instead_of_filling_memory(
    small_backlog_proxy: Proxy, origin: OriginServer
) -> None:
    proxy = small_backlog_proxy
    pid = _writer_pid()
    os.kill(pid, signal.SIGSTOP)
    statuses: list[int] = []

    def fetch() -> None:
        with proxy.client(timeout=30) as c:
            statuses.extend(c.get(f"{origin.url}/bytes/100000").status_code for _ in range(8))

    client = threading.Thread(target=fetch)
    try:
        client.start()
        client.join(3)
        # The pipe to the child holds 64 KB and the backlog 256 KB: 8 x 100 KB cannot all get through.
        assert client.is_alive() and len(statuses) < 8
    finally:
        os.kill(pid, signal.SIGCONT)
    client.join(30)
    assert statuses == [200] * 8
    assert len(proxy.wait_flows(8)) == 8


def test_a_flow_the_store_cannot_take_is_dropped_alone(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Data SQLite refuses (here a lone surrogate) costs that flow only, not its batch or the recording."""
    bus = Bus()
    writer = StoreWriter(tmp_path / "s.db", bus)
    writer.start()
    flows = [tflow.tflow(resp=True) for _ in range(3)]
    bad = dict(summarize(flows[1]), url="http://x/\udce9")
    for f, summary in zip(flows, [summarize(flows[0]), bad, summarize(flows[2])], strict=True):
        bus.publish(FlowEvent("response", f.id, summary, f.get_state()))
    writer.stop()
    store = Store(tmp_path / "s.db", readonly=True)
    try:
        assert [r["id"] for r in store.iter_rows()] == [flows[0].id, flows[2].id]
    finally:
        store.close()
    assert "1 flows could not be stored" in caplog.text


def test_the_child_hands_the_cpu_on_after_each_flow_it_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    flows = [tflow.tflow(resp=True) for _ in range(3)]
    batch = pickle.dumps(([(summarize(f), f.get_state()) for f in flows], [], []))
    yields: list[None] = []
    monkeypatch.setattr(writer_child.os, "sched_yield", lambda: yields.append(None))
    store = Store(tmp_path / "s.db")
    try:
        writer_child._write(store, [[batch]])
        assert len(yields) == 3 and store.count() == 3
    finally:
        store.close()


_CYCLES_OF_A_BATCH = """
import gc, pickle, sys
from mitmproxy.test import tflow
from proxycap.storage import child as writer_child
from proxycap.storage.framing import read_frame, write_frame
from proxycap.storage.store import Store
store = Store(sys.argv[1])
batch = pickle.dumps(([(None, tflow.tflow(resp=True).get_state()) for _ in range(20)], [], []))
gc.collect()
gc.disable()
writer_child._write(store, [[batch]])
print(gc.collect())
"""


def test_the_child_runs_optimised_and_its_batches_leave_no_garbage_cycles(proxy: Proxy, tmp_path: Path) -> None:
    """Unless Python runs optimised, mitmproxy type-checks each message the child rebuilds for a summary: most of
    the summary's CPU, and reference cycles (caught TypeErrors) holding bodies until a full collection."""
    with open(f"/proc/{_writer_pid()}/cmdline", "rb") as f:
        assert b"-O" in f.read().split(b"\0")
    run = subprocess.run(
        [sys.executable, "-O", "-c", _CYCLES_OF_A_BATCH, str(tmp_path / "s.db")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.stdout.strip() == "0", run.stderr


def test_the_child_summarises_what_the_proxy_left_unsummarised(tmp_path: Path) -> None:
    """With only the store listening, events carry no summary: the child makes it from the state, the same as the
    proxy's thread would have (WebSocket, error, TLS and plain flows); a state it cannot read is lost alone."""
    flows = [tflow.tflow(resp=True), tflow.twebsocketflow(), tflow.tflow(err=True), tflow.ttcpflow()]
    flows[0].client_conn.sni, flows[0].client_conn.tls_version = "example.com", "TLSv1.3"
    flows[0].request.headers["user-agent"] = "curl/8"
    ip = summarize(flows[0])["client_ip"]
    batch = ([(None, f.get_state()) for f in flows], [], [(ip, 5.0, 2)])
    store = Store(tmp_path / "s.db")
    try:
        writer_child._write(store, [[pickle.dumps(batch)]])
        rows = {r["id"]: r for r in store.iter_rows()}
        assert set(rows) == {f.id for f in flows[:3]}  # the TCP flow's state has no request: lost alone
        for f in flows[:3]:
            f.live = False
            assert {k: rows[f.id][k] for k in FIELDS} == summarize(f)
        (client,) = store.clients()
        assert (client.ip, client.connections, client.user_agent) == (ip, 2, "curl/8")
    finally:
        store.close()


def test_a_store_failing_for_long_keeps_flows_without_their_bodies(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Past the hold limit the proxy's memory stops growing with the bodies; every flow is still listed."""
    bus = Bus()
    writer = StoreWriter(tmp_path / "s.db", bus, hold_limit=200_000)
    writer.start()

    def publish() -> str:
        f = tflow.tflow(resp=True)
        f.response.content = os.urandom(50_000)
        bus.publish(FlowEvent("response", f.id, None, f.get_state()))  # as from `proxycap record`: no summary yet
        return f.id

    first = publish()
    deadline = time.monotonic() + 10
    while writer.sub.bytes_out == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    with sqlite3.connect(tmp_path / "s.db") as db:
        (schema,) = db.execute("SELECT sql FROM sqlite_master WHERE name = 'flow_data'").fetchone()
        db.execute("DROP TABLE flow_data")
    ids = [publish()]
    while not writer.sub.failing and time.monotonic() < deadline:
        time.sleep(0.05)
    assert writer.sub.failing
    for _ in range(12):  # 600 KB more, three times the limit
        ids.append(publish())
        time.sleep(0.02)
    while writer.sub.unstored > 200_000 and time.monotonic() < deadline + 5:
        time.sleep(0.05)
    assert writer.sub.unstored <= 200_000  # what waits for the store stays bounded
    with sqlite3.connect(tmp_path / "s.db") as db:
        db.execute(schema)
    writer.stop()
    store = Store(tmp_path / "s.db", readonly=True)
    try:
        assert [r["id"] for r in store.iter_rows()] == [first, *ids]
        with_bodies = [row["id"] for row in store.iter_rows() if store.load_flow(row["seq"]) is not None]
    finally:
        store.close()
    # Dropping the table lost the first body. Of the rest, bodies were held while they fit in 200 KB (at most 3
    # of ~52 KB), the first one waiting among them; and stored once the store could take them again.
    assert with_bodies[0] == ids[0] and len(with_bodies) <= 3 and set(with_bodies) <= set(ids)
    assert "flows captured while the store failed were stored without bodies" in caplog.text


def test_a_child_behind_writes_several_batches_at_once_within_a_size() -> None:
    """Behind, the child merges batches into one transaction, but only so many bytes of them (bodies included):
    each is held while it is written. A batch bigger than that alone is still written."""
    part = writer_child.MERGE_BYTES * 3 // 16  # two fit, three do not
    pending = collections.deque([[b"a", b"1" * part, b"2" * part], [b"b" * part * 2], [b"c" * part * 2], [b"d"]])
    assert [b[0][:1] for b in writer_child._merged(pending)] == [b"a", b"b"]
    assert not writer_child._room(pending)
    pending.popleft(), pending.popleft()
    assert [b[0][:1] for b in writer_child._merged(pending)] == [b"c", b"d"] and writer_child._room(pending)
    huge = collections.deque([[b"h", b"." * (writer_child.MERGE_BYTES + 1)], [b"i"]])
    assert [b[0][:1] for b in writer_child._merged(huge)] == [b"h"]
    many = collections.deque([[b"x"]] * (writer_child.MERGE + 3))
    assert len(writer_child._merged(many)) == writer_child.MERGE and not writer_child._room(many)


def _through_a_pipe(payload: bytes, buffers: list[pickle.PickleBuffer]) -> list[bytes] | None:
    """The frame as the other end of a real pipe reads it; the end of input must follow it."""
    r, w = os.pipe()
    frames: list = []
    reader = threading.Thread(target=lambda: frames.extend([read_frame(r), read_frame(r)]), daemon=True)
    reader.start()
    try:
        write_frame(w, payload, buffers)
    finally:
        os.close(w)  # the end of input: the reader returns whatever happened
        reader.join(10)
        os.close(r)
    assert len(frames) == 2 and frames[1] is None  # nothing left over
    return frames[0]


def test_big_bodies_cross_to_the_child_beside_the_batch_pickle_not_in_it() -> None:
    """Copied into the batch's pickle, 60 bodies of 64 KB held the GIL 1.8 ms, and the proxy waited as long."""
    f = tflow.tflow(resp=True)
    body = os.urandom(65536)
    f.request.content, f.response.content = b"small", body
    event = FlowEvent("response", f.id, None, f.get_state())
    buffers: list[pickle.PickleBuffer] = []
    payload = pickle.dumps(collapse([event]), protocol=5, buffer_callback=buffers.append)
    assert len(buffers) == 1 and len(payload) < 4096
    assert type(event.state["response"]["content"]) is bytes  # the event's own state is left as it was
    flows, _, _ = writer_child._merge([_through_a_pipe(payload, buffers)])
    ((_, state),) = flows
    assert state["request"]["content"] == b"small"
    assert type(state["response"]["content"]) is bytes and state["response"]["content"] == body


def test_a_frame_interrupted_by_signals_mid_write_arrives_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    """A signal can cut a write to a pipe short; the rest must follow, not be lost or sent again."""
    written: list[tuple[int, int]] = []
    writev = os.writev

    def recording(fd: int, parts: list[memoryview]) -> int:
        n = writev(fd, parts)
        written.append((n, sum(map(len, parts))))
        return n

    monkeypatch.setattr(writer_child.os, "writev", recording)
    parts = [os.urandom(1 << 20) for _ in range(8)]
    previous = signal.signal(signal.SIGALRM, lambda *_: None)
    signal.setitimer(signal.ITIMER_REAL, 0.0005, 0.0005)
    try:
        frame = _through_a_pipe(b"head", [pickle.PickleBuffer(p) for p in parts])
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert frame == [b"head", *parts]
    assert any(n < asked for n, asked in written)  # the signals did cut writes short

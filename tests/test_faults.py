"""Faults and abuse: a capture is never lost without a word.

A real ``proxycap record`` (or session) with real clients and origins, disturbed as the world would: stores that
cannot be written or are damaged, a disk that fills up and frees again, a store writer killed again and again,
SIGTERM under load, a loose umask. Each test here failed before its fix.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import Proxy, start_proxy
from origins import OriginServer, TestPKI, pattern_bytes
from test_cli import PROXYCAP, Recording, assert_one_line_error, run
from test_writer import _writer_pid

from proxycap.storage.store import Store

pytestmark = pytest.mark.timeout(120)


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A small filesystem of its own at ``path`` (a disk that can fill up), where this machine lets tests mount."""
    path.mkdir()
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)], capture_output=True, text=True
    )
    if mount.returncode:
        pytest.skip(f"cannot mount a tmpfs here ({mount.stderr.strip() or 'no permission'})")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def remount(path: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(path)], check=True)


def _rows(store_path: Path) -> list[dict]:
    store = Store(store_path, readonly=True)
    try:
        return list(store.iter_rows())
    finally:
        store.close()


def _store_with_flows(path: Path, proxy_dir: Path, confdir: Path, pki: TestPKI, origin: OriginServer) -> None:
    p = start_proxy(proxy_dir, confdir, pki)
    try:
        with p.client() as c:
            for i in range(20):
                c.get(f"{origin.url}/bytes/{5000 + i}")
        p.wait_flows(20)
    finally:
        p.session.stop()
    (proxy_dir / "captures.db").rename(path)


# --- stores refused at start ---------------------------------------------------------------------


def test_a_store_on_a_read_only_filesystem_is_refused_at_start(tmp_path: Path, confdir: Path) -> None:
    with tmpfs(tmp_path / "disk", "4m") as disk:
        Store(disk / "s.db").close()
        before = (disk / "s.db").read_bytes()
        remount(disk, "ro")
        p = run("record", "-p", "0", "--store", str(disk / "s.db"), "--confdir", str(confdir), check=False)
        assert_one_line_error(p, "cannot be written")
        assert (disk / "s.db").read_bytes() == before


def test_a_damaged_store_is_refused_at_start_and_left_alone(
    tmp_path: Path, confdir: Path, pki: TestPKI, origin: OriginServer
) -> None:
    """Damaged pages past the header: the store opens, and served a proxy that stored nothing (exit 0)."""
    store = tmp_path / "s.db"
    _store_with_flows(store, tmp_path / "first", confdir, pki, origin)
    with sqlite3.connect(store) as db:
        page = db.execute("PRAGMA page_size").fetchone()[0]
    data = bytearray(store.read_bytes())
    for offset in range(3 * page, len(data) - page, 2 * page):  # every other page after the schema's
        data[offset + 16 : offset + page] = b"\xff" * (page - 16)
    store.write_bytes(bytes(data))
    p = run("record", "-p", "0", "--store", str(store), "--confdir", str(confdir), check=False)
    assert_one_line_error(p, "damaged")
    assert store.read_bytes() == bytes(data)


def test_a_start_that_fails_creates_no_store(tmp_path: Path, confdir: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        p = run(
            "record",
            "-p",
            str(s.getsockname()[1]),
            "--store",
            str(tmp_path / "new" / "s.db"),
            "--confdir",
            str(confdir),
            check=False,
        )
    assert_one_line_error(p, "cannot listen")
    assert not (tmp_path / "new").exists()


# --- the store failing under load -----------------------------------------------------------------


def _load(port: int, origin: OriginServer, stop: threading.Event, served: list[str], path: str = "/json") -> None:
    """One keep-alive client, request after request until ``stop``; keeps the URL of every answered request."""
    with httpx.Client(proxy=f"http://127.0.0.1:{port}", timeout=10) as c:
        i = 0
        while not stop.is_set():
            url = f"{origin.url}{path}{'&' if '?' in path else '?'}n={len(served)}-{i}-{threading.get_ident()}"
            i += 1
            try:
                if c.get(url).status_code == 200:
                    served.append(url)
            except httpx.HTTPError:
                return


def test_a_full_disk_is_said_on_the_terminal_and_nothing_is_lost_once_space_returns(
    tmp_path: Path, confdir: Path, pki: TestPKI, origin: OriginServer
) -> None:
    with tmpfs(tmp_path / "disk", "512k") as disk:
        rec = Recording(tmp_path, confdir, pki, "-q", "--store", str(disk / "s.db"))
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(iter(rec.proc.stderr.readline, "")), daemon=True)
        reader.start()
        stop, served = threading.Event(), []
        loader = threading.Thread(target=_load, args=(rec.port, origin, stop, served, "/bytes/2000"), daemon=True)
        loader.start()

        def until(text: str) -> None:
            deadline = time.monotonic() + 60
            while not any(text in line for line in lines) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert any(text in line for line in lines), lines

        try:
            until("proxycap: store: cannot write captured flows")
            remount(disk, "size=64m")  # space again
            until("works again")
        finally:
            stop.set()
            loader.join()
            rec.proc.send_signal(signal.SIGTERM)
            rec.proc.wait(timeout=60)
            reader.join(timeout=10)
        assert rec.proc.returncode == 0, lines  # nothing was lost
        urls = {row["url"] for row in _rows(disk / "s.db")}
        assert served and set(served) <= urls


def test_a_writer_killed_again_and_again_under_load_loses_no_flow(proxy: Proxy, origin: OriginServer) -> None:
    stop, served = threading.Event(), []
    loaders = [threading.Thread(target=_load, args=(proxy.port, origin, stop, served), daemon=True) for _ in range(3)]
    for t in loaders:
        t.start()
    try:
        for _ in range(5):  # more than the three restarts it used to give up after
            time.sleep(0.5)
            killed = _writer_pid()
            os.kill(killed, signal.SIGKILL)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:  # until its successor runs
                with contextlib.suppress(AssertionError, FileNotFoundError, ProcessLookupError):
                    if _writer_pid() != killed:
                        break
                time.sleep(0.05)
        time.sleep(0.5)
    finally:
        stop.set()
        for t in loaders:
            t.join()
    report = proxy.session.stop()
    assert report.lost == 0
    urls = {row["url"] for row in _rows(proxy.store_path) if row["state"] == "done"}
    assert len(served) > 50 and set(served) <= urls


# --- shutdown -----------------------------------------------------------------------------------------


def test_sigterm_under_load_lets_nothing_new_in_and_leaves_no_flow_live(
    tmp_path: Path, confdir: Path, pki: TestPKI, origin: OriginServer
) -> None:
    rec = Recording(tmp_path, confdir, pki, "-q")
    stop, served = threading.Event(), []
    loaders = [threading.Thread(target=_load, args=(rec.port, origin, stop, served), daemon=True) for _ in range(4)]
    slow = threading.Thread(target=_load, args=(rec.port, origin, stop, [], "/slow?ms=8000"), daemon=True)  # > grace
    for t in [*loaders, slow]:
        t.start()
    time.sleep(1.0)
    assert len(served) > 20
    stopped_at = time.time()
    rec.proc.send_signal(signal.SIGTERM)
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", rec.port), timeout=5) as late:
        time.sleep(0.5)  # it stopped listening at once: a connection made now is refused or answered with nothing
        late.sendall(b"GET http://127.0.0.1/json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert late.recv(100).startswith((b"", b"HTTP/1.1 503"))
    _, err = rec.proc.communicate(timeout=60)
    stop.set()
    for t in [*loaders, slow]:
        t.join()
    assert rec.proc.returncode == 0, err
    rows = _rows(rec.store)
    assert rows and not [r for r in rows if r["state"] == "live"]
    assert any(r["path"].startswith("/slow") and "proxycap stopped" in (r["error"] or "") for r in rows)
    late_ones = [r for r in rows if r["ts"] > stopped_at + 0.5 and r["status"] == 200]
    assert not late_ones  # nothing was let through once the signal had been handled


# --- privacy -------------------------------------------------------------------------------------------


def test_captures_and_logs_are_private_even_under_a_loose_umask(
    tmp_path: Path, confdir: Path, pki: TestPKI, origin: OriginServer
) -> None:
    home = tmp_path / "home"
    store, log = home / "data" / "proxycap" / "s.db", home / "state" / "proxycap" / "log" / "proxycap.log"
    cmd = [
        *PROXYCAP,
        "record",
        "-p",
        "0",
        "--store",
        str(store),
        "--log-file",
        str(log),
        "--confdir",
        str(confdir),
        "--set",
        f"ssl_verify_upstream_trusted_ca={pki.ca_pem}",
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=lambda: os.umask(0o002)
    )
    try:
        banner = proc.stderr.readline()
        port = int(banner.split("listening on 127.0.0.1:")[1].split(",")[0])
        with httpx.Client(proxy=f"http://127.0.0.1:{port}", timeout=10) as c:
            assert c.get(f"{origin.url}/json").status_code == 200
        deadline = time.monotonic() + 10
        while not Path(f"{store}-wal").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        for path in (store, Path(f"{store}-wal"), Path(f"{store}-shm"), log):
            assert path.stat().st_mode & 0o777 == 0o600, path
        for folder in (store.parent, store.parent.parent, log.parent, log.parent.parent.parent):
            assert folder.stat().st_mode & 0o777 == 0o700, folder
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)


def test_a_store_others_can_read_is_warned_about_at_start(tmp_path: Path, confdir: Path, pki: TestPKI) -> None:
    Store(tmp_path / "rec.db").close()
    (tmp_path / "rec.db").chmod(0o644)
    rec = Recording(tmp_path, confdir, pki)
    warning = rec.proc.stderr.readline()
    rec.stop()
    assert "readable by other users" in warning and "chmod 600" in warning


# --- what the store keeps ---------------------------------------------------------------------------------


def test_chunked_bodies_over_the_limit_are_counted_both_ways(
    tmp_path: Path, confdir: Path, pki: TestPKI, origin: OriginServer
) -> None:
    p = start_proxy(tmp_path, confdir, pki, max_body="64k")
    try:
        upload = pattern_bytes(300_000)
        with p.client(timeout=30) as c:
            echoed = c.post(
                f"{origin.url}/echo", content=iter([upload[i : i + 10_000] for i in range(0, 300_000, 10_000)])
            )
            downloaded = c.get(f"{origin.url}/bytes/250000?chunked=1")
        assert echoed.json()["body_length"] == 300_000 and downloaded.content == pattern_bytes(250_000)
        rows = {r["method"]: r for r in p.wait_flows(2)}
    finally:
        p.session.stop()
    assert "request" in rows["POST"]["streamed"] and rows["POST"]["request_size"] == 300_000  # (its echo too)
    assert rows["GET"]["streamed"] == "response" and rows["GET"]["response_size"] == 250_000


def test_records_exit_line_counts_its_own_flows_only(
    tmp_path: Path, confdir: Path, pki: TestPKI, origin: OriginServer
) -> None:
    """Another proxy recording into the same store meanwhile: its flows are not this one's."""
    other = start_proxy(tmp_path, confdir, pki)
    try:
        rec = Recording(tmp_path, confdir, pki, "-q", "--store", str(other.store_path))
        with other.client() as c:
            for _ in range(3):
                c.get(f"{origin.url}/json")
        with rec.client() as c:
            c.get(f"{origin.url}/json")
        other.wait_flows(3)
        _, err = rec.stop()
    finally:
        other.session.stop()
    assert f"stopped; 1 flows written to {other.store_path}" in err


def test_timings_never_add_up_to_more_than_the_total(tmp_path: Path, proxy: Proxy, tls_origin: OriginServer) -> None:
    untrusted = OriginServer(TestPKI(tmp_path / "other-pki"))  # a CA the proxy does not trust
    with untrusted, proxy.client(http2=True) as c:
        for _ in range(3):
            c.get(f"{tls_origin.url}/json")
        with contextlib.suppress(httpx.HTTPError):
            c.get(f"{untrusted.url}/json")
    rows = proxy.wait_flows(4)
    assert any(r["error"] for r in rows)
    for r in rows:
        parts = sum(r[k] or 0 for k in ("connect_ms", "tls_ms", "ttfb_ms"))
        assert parts <= r["duration_ms"] + 0.001, r

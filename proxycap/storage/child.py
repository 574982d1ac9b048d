"""The store writer's child process: ``python -O -m proxycap.storage.child STORE``.

Serialising flows (tnetstring), compressing them (zstd) and SQLite cost about as much CPU per flow as mitmproxy
itself; in the proxy's process they would share its GIL and cut its throughput (bench/RESULTS.md, "Store writer").
Here they run on an interpreter of their own, and so does making flows' summaries while only the store listens. The
parent sends pickled batches (``writer.collapse`` output, bodies out of band) on stdin and reads one-line reports on
stdout, both as frames of length-prefixed parts. A batch that cannot be written is kept and retried; at the end of
input whatever is still unwritten is left to the parent to count as lost.
"""

from __future__ import annotations

import collections
import itertools
import os
import pickle
import select
import signal
import sys
import time
import traceback
from collections.abc import Iterator
from typing import Any

from proxycap.capture.summary import summarize_state
from proxycap.runtime import gcsettle
from proxycap.runtime.trim import Trimmer
from proxycap.storage.framing import Frame, read_frame, write_frame
from proxycap.storage.store import Store, StoreError

RETRY_INTERVAL = 1.0  # seconds between attempts while the store cannot be written
MERGE = 16  # batches written per transaction when the child is behind
# ... and bytes of them, so this bounds the child's memory when it is behind with big bodies (bench/RESULTS.md,
# "Store writer").
MERGE_BYTES = 8 << 20


def _report(kind: str, *args: Any) -> None:
    write_frame(sys.stdout.fileno(), pickle.dumps((kind, *args)))


def _merge(batches: list[Frame]) -> tuple[list, list, list]:
    flows: list = []
    logs: list = []
    connects: list = []
    for payload, *buffers in batches:
        f, lg, c = pickle.loads(payload, buffers=buffers)  # the bodies are the frame's parts, not copies
        flows += f
        logs += lg
        connects += c
    return flows, logs, connects


def _size(frame: Frame) -> int:
    return sum(map(len, frame))


def _room(pending: collections.deque[Frame]) -> bool:
    """Whether to read another batch before writing: the next transaction may take it."""
    return len(pending) < MERGE and sum(map(_size, pending)) < MERGE_BYTES


def _merged(pending: collections.deque[Frame]) -> list[Frame]:
    """The batches the next transaction writes: the first, and the next ones within MERGE and MERGE_BYTES."""
    batches, size = [], 0
    for batch in itertools.islice(pending, MERGE):
        if batches and size + _size(batch) > MERGE_BYTES:
            break
        batches.append(batch)
        size += _size(batch)
    return batches


def _summarized(flows: list, failures: list[str]) -> list:
    """The flows with their summaries: made here from the state where the proxy's thread left them out (only the
    store listened). A state that cannot be summarised is lost alone."""
    out = []
    for summary, state in flows:
        if summary is None:
            try:
                summary = summarize_state(state)
            except Exception as e:
                failures.append(f"{type(e).__name__}: {e}")
                continue
            os.sched_yield()  # as ``_yielding``: a batch's summaries are milliseconds of CPU
        out.append((summary, state))
    return out


def _client_activity(flows: list, connects: list) -> list[tuple]:
    """Per client IP: (ip, last seen, user agent, new connections), from the flows' summaries and the
    connections opened."""
    clients: dict[str, list[Any]] = {}
    for s, _ in flows:
        entry = clients.setdefault(s["client_ip"], [s["client_ip"], s["ts"], None, 0])
        entry[1] = max(entry[1], s["ts"] or 0)
        entry[2] = s.get("user_agent") or entry[2]
    for ip, ts, n in connects:
        entry = clients.setdefault(ip, [ip, ts, None, 0])
        entry[1] = max(entry[1], ts)
        entry[3] += n
    return [tuple(c) for c in clients.values()]


def _yielding(flows: list) -> Iterator:
    """The flows, handing the CPU on after each one to whatever waits for it. A batch is milliseconds of CPU;
    written in one stretch it delays the proxy's clients (on a small machine, the user's own programs) as long, which
    shows in the p99 under full load (bench/RESULTS.md, "Store writer"). The child keeps its share, so it keeps up with
    big bodies."""
    for flow in flows:
        yield flow
        os.sched_yield()


def _write(store: Store, batches: list[Frame]) -> list[tuple[str, int, str, bool]]:
    """Write batches in one transaction; returns the flows committed, as (flow id, row id, state, new). Data SQLite
    cannot take (a failure of the data, not of the store) is written item by item, and only what fails alone is
    reported lost."""
    failures: list[str] = []
    merged, logs, connects = _merge(batches)
    flows = _summarized(merged, failures)
    clients = _client_activity(flows, connects)
    try:
        written = store.write(_yielding(flows), logs, clients)
    except StoreError:
        raise
    except Exception:
        written = []
        for item in [*(([f], [], []) for f in flows), ([], logs, clients)]:
            try:
                written += store.write(*item)
            except StoreError:
                raise
            except Exception as e:
                failures.append(f"{type(e).__name__}: {e}")
    if failures:
        _report("lost", len(failures), f"{len(failures)} flows could not be stored ({failures[-1]})")
    return written


def run(path: str) -> int:
    fd = sys.stdin.fileno()
    store = Store(path)
    gcsettle.settle()  # what lives until exit (modules, the store) leaves every collection, so one costs little
    pending: collections.deque[Frame] = collections.deque()
    eof = False
    retry_at: float | None = None  # set while the store cannot be written
    trimmer = Trimmer()
    try:
        while True:
            now = time.monotonic()
            # Read what is there before writing (bigger transactions when behind), within limits.
            more = _room(pending) if retry_at is None else now < retry_at
            wait = 0.0 if retry_at is None else max(0.0, retry_at - now)
            if not eof and (not pending or (more and select.select([fd], [], [], wait)[0])):
                frame = read_frame(fd)
                if frame is None:
                    eof = True
                else:
                    pending.append(frame)
                continue
            if pending:
                batches = _merged(pending)
                try:
                    written = _write(store, batches)
                except StoreError as e:
                    if retry_at is None:
                        _report("failing", str(e))
                    retry_at = time.monotonic() + RETRY_INTERVAL
                else:
                    for _ in batches:
                        pending.popleft()
                    if retry_at is not None:
                        _report("working", f"writing to {store.path} works again")
                    retry_at = None
                    committed = [(flow_id, seq, state) for flow_id, seq, state, _ in written]
                    _report("written", len(batches), committed, sum(new for *_, new in written))
                    trimmer.after(len(batches))
                    continue
            if eof and (not pending or retry_at is not None):
                return 1 if pending else 0  # the parent counts what it sent and was not confirmed

    finally:
        store.close()


def main() -> int:
    # Ctrl-C reaches the whole process group; the parent decides when to stop (it closes our stdin).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        return run(sys.argv[1])
    except StoreError as e:  # the store cannot be opened: the parent starts another child later
        _report("failing", str(e))
    except Exception as e:  # report, don't print: the parent owns the terminal
        _report("crashed", f"{type(e).__name__}: {e}", traceback.format_exc())
    return 1


if __name__ == "__main__":
    sys.exit(main())

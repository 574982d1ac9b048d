"""The store writer: the one bus subscriber that must see every flow, storing them in batches.

A thread drains the bus every 50 ms and collapses the events per flow (a request and its response usually arrive in
the same batch and cost one row write). Serialising, compressing and SQLite run in a child process (``child.py``)
with its own interpreter, so they never take the proxy's GIL; the bodies reach it beside the batch's pickle, never
copied into it. The child reports each batch stored, with the flows it committed, which the writer publishes as
``Committed`` for the views; what it has not stored yet is the bus's backlog, which the recorder keeps bounded.

Nothing is lost without a word: every change of the store's state (failing, working again, flows lost) is published
as ``StoreStatus`` for the terminal and the UI, as well as logged. While the store cannot be written (a full disk, a
damaged file), the proxy goes on without waiting; the writer keeps what waits for the store up to ``HOLD_LIMIT``,
and past it keeps new flows as their summaries, without bodies. A child that dies is started again, after a pause
that grows while it keeps dying, and gets every batch it had not confirmed.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import logging
import pickle
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from mitmproxy.utils import human

from proxycap.capture.bus import Bus, ClientEvent, Committed, FlowEvent, LogEvent, StoreStatus, state_bytes
from proxycap.capture.summary import summarize_state
from proxycap.runtime.trim import Trimmer
from proxycap.storage.framing import read_frame, write_frame
from proxycap.storage.store import StoreError, check_store

logger = logging.getLogger(__name__)


OUT_OF_BAND = 4096  # bytes from which a body is sent beside the batch's pickle, not copied into it
BATCH_INTERVAL = 0.05  # seconds between batches when traffic is steady
MAX_BATCH = 500  # events per batch: bounds the bodies a batch holds and how long it holds the write lock
# Seconds before a child that died is started again, doubling while it keeps dying, up to the most.
RESTART_PAUSE = 0.25
RESTART_PAUSE_MAX = 30.0
# Captured flows (bodies, roughly) held for a store that cannot be written; held twice (here, to resend to a
# restarted child, and in the child). Past it, flows lose their bodies: ~1 KB each instead of their size.
HOLD_LIMIT = 64 << 20


@dataclasses.dataclass(slots=True)
class WriterReport:
    """What a writer did: flows it added to the store, flows it could not write, flows it stored without bodies."""

    written: int = 0
    lost: int = 0
    stripped: int = 0


class StoreWriter:
    def __init__(self, store_path: Path, bus: Bus, hold_limit: int = HOLD_LIMIT) -> None:
        self.store_path = store_path
        self.hold_limit = hold_limit
        self.bus = bus
        self.report = WriterReport()
        self._stripped = 0  # flows whose bodies were dropped since the store began failing (not reported yet)
        # Unbounded: the store must see every flow, log line and connection.
        self.sub = bus.subscribe("store-writer", with_state=True, kinds=(FlowEvent, LogEvent, ClientEvent))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="proxycap-store-writer", daemon=True)
        self._lock = threading.Lock()  # guards _sent, _child and the report between the writer and listener threads
        # Batches the child has not confirmed as stored: (batch, bytes, flows).
        self._sent: collections.deque[tuple[Pickled, int, int]] = collections.deque()
        self._child: subprocess.Popen[bytes] | None = None
        self._listener: threading.Thread | None = None
        self._pause = RESTART_PAUSE
        self._restart_at = 0.0

    def start(self) -> None:
        """Create the store if it is new, check it (StoreError with a one-line reason if it cannot be written), then
        start the child and the thread."""
        try:
            check_store(self.store_path)
        except StoreError:
            self.sub.close()
            raise
        self._spawn()
        self._thread.start()

    def stop(self) -> WriterReport:
        """Flush everything still queued, wait until the child has stored it, and let it exit."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self.sub.close()
        return self.report

    def _status(self, state: str, message: str, lost: int = 0) -> None:
        """Say it in the log and to whoever shows the store's state (the terminal, the UI)."""
        (logger.warning if state == "working" else logger.error)(message)
        self.bus.publish(StoreStatus(state, message, lost))  # type: ignore[arg-type]  # one of the three

    def _waiting(self) -> int:
        return sum(flows for _, _, flows in self._sent)

    # --- the child ----------------------------------------------------------------------------------

    def _spawn(self) -> None:
        try:
            child = subprocess.Popen(
                # -O: unless Python runs optimised, mitmproxy type-checks every message it builds: two thirds of what
                # a summary costs the child, and the TypeErrors it catches leave reference cycles that hold bodies.
                [sys.executable, "-O", "-m", "proxycap.storage.child", str(self.store_path)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,  # it reports on stdout; nothing may reach the user's terminal raw
            )
        except OSError as e:
            self._died(None, f"the store writer could not be started ({e.strerror or e})")
            return
        self._listener = threading.Thread(
            target=self._listen, args=(child,), name="proxycap-store-listener", daemon=True
        )
        self._listener.start()
        with self._lock:
            self._child = child
            unstored = [batch for batch, _, _ in self._sent]
        try:
            for batch in unstored:  # a restarted child gets what its predecessor did not store
                write_frame(child.stdin.fileno(), *batch)  # type: ignore[union-attr]  # a pipe
        except (BrokenPipeError, ValueError):
            self._died(child)

    def _listen(self, child: subprocess.Popen[bytes]) -> None:
        """The child's reports: batches stored (the backlog shrinks), its state, flows it could not store."""
        assert child.stdout is not None
        while (frame := read_frame(child.stdout.fileno())) is not None:
            kind, *args = pickle.loads(frame[0])
            if kind == "written":
                batches, committed, inserted = args
                with self._lock:  # the writer thread adds to bytes_out too
                    for _ in range(min(batches, len(self._sent))):
                        self.sub.bytes_out += self._sent.popleft()[1]
                    self.report.written += inserted
                self.sub.failing = False
                self._pause = RESTART_PAUSE
                if committed:
                    self.bus.publish(Committed(committed))
            elif kind == "working":
                self._status("working", args[0])
            elif kind == "failing":
                self.sub.failing = True
                self._status("failing", f"cannot write captured flows, will retry: {args[0]}")
            elif kind == "lost":
                with self._lock:
                    self.report.lost += args[0]
                self._status("lost", args[1], args[0])
            else:  # crashed: it exits next, and is started again
                logger.error(f"store writer: {args[0]}")
                logger.debug(args[1])

    def _send(self, batch: Pickled, size: int, flows: int) -> None:
        """Hand a batch to the child; while there is none (it died, and is started again soon) it waits here."""
        with self._lock:
            self._sent.append((batch, size, flows))
            child = self._child
        if child is None:
            return
        try:
            write_frame(child.stdin.fileno(), *batch)  # type: ignore[union-attr]  # a pipe
        except (BrokenPipeError, ValueError):
            self._died(child)

    def _died(self, child: subprocess.Popen[bytes] | None, why: str | None = None) -> None:
        """The child is gone: start another after a pause, which doubles while they keep dying."""
        if child is not None:
            code = child.wait()
            if self._listener is not None:
                self._listener.join()  # its last reports first: they say which batches need not be sent again
            why = why or f"the store writer exited ({code})"
        with self._lock:
            self._child = None
        self.sub.failing = True  # nobody may wait for the store meanwhile
        pause, self._pause = self._pause, min(self._pause * 2, RESTART_PAUSE_MAX)
        self._restart_at = time.monotonic() + pause
        self._status("failing", f"{why}; restarting it in {pause:g} s; {self._waiting():,} flows wait for it")

    def _supervise(self) -> None:
        """Notice a child that died between batches, and start the next one when its pause is over."""
        with self._lock:
            child = self._child
        if child is not None and child.poll() is not None:
            self._died(child)
        elif child is None and time.monotonic() >= self._restart_at:
            self._spawn()

    def _finish(self) -> None:
        with self._lock:
            child = self._child
        if child is None:  # it died lately: one more, to store what waits
            self._spawn()
            with self._lock:
                child = self._child
        if child is not None and child.stdin is not None:
            with contextlib.suppress(BrokenPipeError):
                child.stdin.close()
            child.wait()
            if self._listener is not None:
                self._listener.join()  # its last reports are read before the count below
        if lost := self._waiting():
            with self._lock:
                self.report.lost += lost
                self._sent.clear()
            self._status("lost", f"{lost:,} flows could not be written to {self.store_path}", lost)
        self._report_stripped()

    # --- the thread ---------------------------------------------------------------------------------

    def _run(self) -> None:
        trimmer = Trimmer()
        while True:
            stopping = self._stop.wait(BATCH_INTERVAL)
            try:
                self._supervise()
                trimmer.after(self._batch())
                if stopping and not self.sub.queue:
                    self._finish()
                    return
            except Exception as e:  # never make the proxy wait: say so, and go on
                self.sub.failing = True
                logger.exception(f"store writer: {e}")
                if stopping:
                    return

    def _batch(self) -> int:
        """Send what is queued to the child; returns how many events. They are let go of on return, not held
        through the wait for the next batch beside their pickled copy."""
        events = self.sub.drain(MAX_BATCH)
        self._report_stripped()
        if events and self.sub.failing and self.sub.unstored > self.hold_limit:
            events = self._strip(events)
        if events:
            size = sum(state_bytes(e) for e in events if isinstance(e, FlowEvent) and e.state is not None)
            # The bodies stay out of the pickle: copied into it, they held the GIL for milliseconds, and the proxy's
            # thread waited that long at p99 (bench/RESULTS.md, "Bodies beside the pickle").
            buffers: list[pickle.PickleBuffer] = []
            collapsed = collapse(events)
            payload = pickle.dumps(collapsed, protocol=5, buffer_callback=buffers.append)
            self._send((payload, buffers), size, len(collapsed[0]))
        return len(events)

    def _report_stripped(self) -> None:
        if self._stripped and not self.sub.failing:
            self._status(
                "working", f"{self._stripped:,} flows captured while the store failed were stored without bodies"
            )
            self._stripped = 0

    def _strip(self, events: list[Any]) -> list[Any]:
        """The events with flows' full state dropped (counted as gone from the backlog), summaries kept."""
        out: list[Any] = []
        flows = size = 0
        for e in events:
            if isinstance(e, FlowEvent) and e.state is not None:
                flows, size = flows + 1, size + state_bytes(e)
                e = FlowEvent(e.kind, e.flow_id, e.summary or summarize_state(e.state))
            out.append(e)
        if flows:
            if not self._stripped:
                held = human.pretty_size(self.sub.unstored)
                self._status(
                    "failing",
                    f"the store still cannot be written and {held} of flows wait for it: new "
                    "flows are kept without bodies until it can",
                )
            self._stripped += flows
            with self._lock:  # the listener thread adds to bytes_out too
                self.sub.bytes_out += size
                self.report.stripped += flows
        return out


Collapsed = tuple[list[tuple[dict[str, Any] | None, dict[str, Any] | None]], list[tuple], list[tuple]]
Pickled = tuple[bytes, list[pickle.PickleBuffer]]  # a batch's pickle and the bodies it refers to, out of band


def collapse(events: list[Any]) -> Collapsed:
    """Events → what the child stores: each flow's latest summary (None: the child makes it from the state) and
    state (bodies from ``OUT_OF_BAND`` bytes as ``PickleBuffer``), log rows, and per client IP its new connections
    as (ip, last connect, count)."""
    flows: dict[str, tuple[dict[str, Any] | None, dict[str, Any] | None]] = {}
    logs: list[tuple] = []
    connects: dict[str, list[Any]] = {}
    for ev in events:
        if isinstance(ev, FlowEvent):
            prev = flows.get(ev.flow_id)
            state = ev.state if ev.state is not None else (prev[1] if prev else None)
            flows[ev.flow_id] = (ev.summary, state)
        elif isinstance(ev, LogEvent):
            logs.append((ev.ts, ev.level, ev.message, ev.client_ip, ev.flow_id))
        elif isinstance(ev, ClientEvent) and ev.connected:
            entry = connects.setdefault(ev.client_ip, [ev.client_ip, ev.ts, 0])
            entry[1] = max(entry[1], ev.ts)
            entry[2] += 1
    out = [(summary, _bodies_out_of_band(state)) for summary, state in flows.values()]
    return out, logs, [tuple(c) for c in connects.values()]


def _bodies_out_of_band(state: dict[str, Any] | None) -> dict[str, Any] | None:
    """A copy of the state whose big bodies pickle out of band; the event's own state is left as it is."""
    if state is None:
        return None
    for part in ("request", "response"):
        message = state.get(part)
        if message and len(message.get("content") or b"") >= OUT_OF_BAND:
            state = {**state, part: {**message, "content": pickle.PickleBuffer(message["content"])}}
    return state

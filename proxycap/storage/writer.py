"""The store writer: the one bus subscriber that must see every event, storing them in batches.

A thread drains the bus every 50 ms and collapses the events per flow (a request and its response usually arrive in
the same batch and cost one row write). Serialising, compressing and SQLite run in a child process
(``writer_child``) with its own interpreter, so they never take the proxy's GIL; the bodies reach it beside the
batch's pickle, never copied into it. The child reports each batch stored, with the flows it committed, which the
writer publishes as ``Committed`` for the views; what it has not stored yet is the bus's backlog, which the recorder
keeps bounded. While the store cannot be written at all (a full disk), the proxy goes
on without waiting, and the writer holds what waits for the store only up to ``HOLD_LIMIT``: past it, flows are
kept as their summaries, without bodies.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import pickle
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from mitmproxy.utils import human

from proxycap.capture.bus import Bus, ClientEvent, Committed, FlowEvent, LogEvent, state_bytes
from proxycap.capture.summary import summarize_state
from proxycap.runtime.trim import Trimmer
from proxycap.storage.framing import read_frame, write_frame
from proxycap.storage.store import Store, StoreError

logger = logging.getLogger(__name__)


OUT_OF_BAND = 4096  # bytes from which a body is sent beside the batch's pickle, not copied into it
BATCH_INTERVAL = 0.05  # seconds between batches when traffic is steady
MAX_BATCH = 500  # events per batch: bounds the bodies a batch holds and how long it holds the write lock
RESTARTS = 3  # times a crashed child is restarted before the writer gives up
# Captured flows (bodies, roughly) held for a store that cannot be written; held twice (here, to resend to a
# restarted child, and in the child). Past it, flows lose their bodies: ~1 KB each instead of their size.
HOLD_LIMIT = 64 << 20


class StoreWriter:
    def __init__(self, store_path: Path, bus: Bus, hold_limit: int = HOLD_LIMIT) -> None:
        self.store_path = store_path
        self.hold_limit = hold_limit
        self._stripped = 0  # flows whose bodies were dropped since the store began failing
        self.bus = bus
        # Unbounded: the store must see every flow, log line and connection.
        self.sub = bus.subscribe("store-writer", with_state=True, kinds=(FlowEvent, LogEvent, ClientEvent))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="proxycap-store-writer", daemon=True)
        self._lock = threading.Lock()  # guards _sent and _child between the sending and the listening thread
        self._sent: collections.deque[tuple[Pickled, int]] = collections.deque()  # (batch, bytes) not yet stored
        self._child: subprocess.Popen[bytes] | None = None
        self._listener: threading.Thread | None = None
        self._restarts = 0
        self.seq_at_start = 0

    def start(self) -> None:
        """Check the store opens (StoreError with a one-line reason if not), then start the child and thread."""
        try:
            store = Store(self.store_path)
        except StoreError:
            self.sub.close()
            raise
        try:
            self.seq_at_start = store.max_seq()
        finally:
            store.close()
        self._spawn()
        self._thread.start()

    def stop(self) -> None:
        """Flush everything still queued, wait until the child has stored it, and let it exit."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self.sub.close()

    # --- the child ----------------------------------------------------------------------------------

    def _spawn(self) -> None:
        child = subprocess.Popen(
            # -O: unless Python runs optimised, mitmproxy type-checks every message it builds: two thirds of what a
            # summary costs the child, and the TypeErrors it catches leave reference cycles that hold bodies.
            [sys.executable, "-O", "-m", "proxycap.storage.child", str(self.store_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # it reports on stdout; nothing may reach the user's terminal raw
        )
        self._listener = threading.Thread(
            target=self._listen, args=(child,), name="proxycap-store-listener", daemon=True
        )
        self._listener.start()
        with self._lock:
            self._child = child
            unstored = [batch for batch, _ in self._sent]
        try:
            for batch in unstored:  # a restarted child gets what its predecessor did not store
                write_frame(child.stdin.fileno(), *batch)
        except (BrokenPipeError, ValueError):
            self._restart(child)

    def _listen(self, child: subprocess.Popen[bytes]) -> None:
        """The child's reports: batches stored (the backlog shrinks), failures to log."""
        assert child.stdout is not None
        while (frame := read_frame(child.stdout.fileno())) is not None:
            kind, *args = pickle.loads(frame[0])
            if kind == "written":
                with self._lock:  # the writer thread adds to bytes_out too
                    for _ in range(min(args[0], len(self._sent))):
                        self.sub.bytes_out += self._sent.popleft()[1]
                self.sub.failing = False
                if args[1]:
                    self.bus.publish(Committed(args[1]))
            elif kind == "recovered":
                logger.warning(args[0])
            elif kind == "failing":
                self.sub.failing = True
                logger.error(f"cannot write captured flows, will retry: {args[0]}")
            else:  # lost, crashed
                self.sub.failing = True
                logger.error(f"store writer: {args[0]}")
                if len(args) > 1:
                    logger.debug(args[1])
        if not self._stop.is_set():  # died without a word (OOM killer?): nobody may wait for it
            self.sub.failing = True

    def _send(self, batch: Pickled, size: int) -> None:
        with self._lock:
            child = self._child
            if child is None:  # given up (logged): nothing to keep it for
                return
            self._sent.append((batch, size))
        try:
            write_frame(child.stdin.fileno(), *batch)
        except (BrokenPipeError, ValueError):
            self._restart(child)

    def _restart(self, child: subprocess.Popen[bytes]) -> None:
        code = child.wait()
        if self._listener is not None:
            self._listener.join()  # its last reports first: they say which batches need not be sent again
        if self._restarts >= RESTARTS:
            logger.error(f"store writer exited ({code}) again; flows are no longer stored")
            self.sub.failing = True
            with self._lock:
                self._child = None
                self._sent.clear()
            return
        self._restarts += 1
        logger.error(f"store writer exited ({code}); restarting it")
        self._spawn()

    def _finish(self) -> None:
        with self._lock:
            child = self._child
        if child is None or child.stdin is None:
            return
        with contextlib.suppress(BrokenPipeError):
            child.stdin.close()
        code = child.wait()
        if self._listener is not None:
            self._listener.join()  # its last reports are read before the count below
        if self._sent:  # the child said why, if it could; make sure the count is in the log
            logger.error(f"store writer exited ({code}) with {len(self._sent)} batches not confirmed as stored")
        self._report_stripped()

    # --- the thread ---------------------------------------------------------------------------------

    def _run(self) -> None:
        trimmer = Trimmer()
        while True:
            stopping = self._stop.wait(BATCH_INTERVAL)
            try:
                trimmer.after(self._batch())
                if stopping and not self.sub.queue:
                    self._finish()
                    return
            except Exception as e:  # e.g. no child could be started: say so, and never make the proxy wait
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
            # The bodies stay out of the pickle: copied into it, they held the GIL (2 ms per 60 flows of 64 KB),
            # and the proxy's thread waited that long at p99 (bench/RESULTS.md, "Bodies beside the pickle").
            buffers: list[pickle.PickleBuffer] = []
            payload = pickle.dumps(collapse(events), protocol=5, buffer_callback=buffers.append)
            self._send((payload, buffers), size)
        return len(events)

    def _report_stripped(self) -> None:
        if self._stripped and not self.sub.failing:
            logger.warning(f"{self._stripped} flows captured while the store failed were stored without bodies")
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
                held = human.pretty_size(self.hold_limit)
                logger.error(
                    f"the store still cannot be written and {held} of flows wait for it: "
                    "new flows are kept without bodies until it can"
                )
            self._stripped += flows
            with self._lock:  # the listener thread adds to bytes_out too
                self.sub.bytes_out += size
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

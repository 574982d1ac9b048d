"""The store writer: the one bus subscriber that must see every event, writing them in batches.

It runs on its own thread so serialisation, compression and SQLite I/O never happen on the proxy's loop.
Within a batch, events for the same flow collapse into its latest summary and state (a request and its
response usually arrive in the same batch and cost one row write).
"""

from __future__ import annotations

import ctypes
import logging
import threading
from collections.abc import Callable
from typing import Any

from proxycap.bus import Bus, ClientEvent, FlowEvent, LogEvent
from proxycap.store import Store, StoreError

logger = logging.getLogger(__name__)


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``: after a backlog of bodies, hand the freed heap back to the OS (bench/RESULTS.md)."""
    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc (macOS, musl)
        return None


MALLOC_TRIM = _malloc_trim()

BATCH_INTERVAL = 0.05  # seconds between batches when traffic is steady
MAX_BATCH = 500  # events per transaction: bounds the bodies a batch holds and how long it holds the write lock


class StoreWriter:
    def __init__(self, store: Store, bus: Bus) -> None:
        self.store = store
        self.sub = bus.subscribe("store-writer", with_state=True)  # unbounded: the store must see every event
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="proxycap-store-writer", daemon=True)
        self._failing = False

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Flush everything still queued, then close the store."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self.sub.close()
        self.store.close()

    def _run(self) -> None:
        pending: list[Any] = []
        while True:
            stopping = self._stop.wait(BATCH_INTERVAL)
            pending.extend(self.sub.drain(MAX_BATCH))
            backlog = len(pending) >= MAX_BATCH
            if pending:
                pending = self._write(pending)
            if backlog and not self.sub.queue and MALLOC_TRIM is not None:
                MALLOC_TRIM(0)  # caught up after a backlog
            if stopping and (pending or not self.sub.queue):
                if pending:
                    logger.error(f"{len(pending)} events could not be written to {self.store.path}")
                return

    def _write(self, events: list[Any]) -> list[Any]:
        """Write a batch; on failure keep it for the next try and say so once."""
        flows, logs, clients = collapse(events)
        try:
            self.store.write(flows, logs, clients)
        except StoreError as e:
            if not self._failing:
                logger.error(f"cannot write captured flows, will retry: {e}")
            self._failing = True
            return events
        if self._failing:
            logger.warning(f"writing to {self.store.path} works again")
        self._failing = False
        return []


Batch = tuple[list[tuple[dict[str, Any], dict[str, Any] | None]], list[tuple], list[tuple]]


def collapse(events: list[Any]) -> Batch:
    """Events → what ``Store.write`` takes: each flow's latest summary and state, log rows, client activity."""
    flows: dict[str, tuple[dict[str, Any], dict[str, Any] | None]] = {}
    logs: list[tuple] = []
    clients: dict[str, list[Any]] = {}
    for ev in events:
        if isinstance(ev, FlowEvent):
            prev = flows.get(ev.flow_id)
            state = ev.state if ev.state is not None else (prev[1] if prev else None)
            flows[ev.flow_id] = (ev.summary, state)
            s = ev.summary
            entry = clients.setdefault(s["client_ip"], [s["client_ip"], s["ts"], None, 0])
            entry[1] = max(entry[1], s["ts"] or 0)
            entry[2] = s.get("user_agent") or entry[2]
        elif isinstance(ev, LogEvent):
            logs.append((ev.ts, ev.level, ev.message, ev.client_ip, ev.flow_id))
        elif isinstance(ev, ClientEvent) and ev.connected:
            entry = clients.setdefault(ev.client_ip, [ev.client_ip, ev.ts, None, 0])
            entry[1] = max(entry[1], ev.ts)
            entry[3] += 1
    return list(flows.values()), logs, [tuple(c) for c in clients.values()]

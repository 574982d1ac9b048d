"""The control API: everything a UI asks of a running capture, with plain data in and out.

A UI reads flows from the store itself; whatever changes the capture (replay, send an edited request, delete, mark,
name a client, breakpoints, rules, client approval) goes through here, and so does hearing what the store committed.
``LocalControl`` serves it inside the capture's own process; a UI in another process gets the same calls over a
control channel. So every method takes and returns plain data only: str, int, float, bool, None, lists and dicts of
them, and ``Outcome``. Calls may block (a replay waits for the engine's loop): call them from a worker thread, never
from a UI's event loop.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from mitmproxy import http

from proxycap.capture.bus import Bus, Committed, Event, LogEvent, StoreStatus
from proxycap.capture.engine import Engine, EngineError
from proxycap.capture.summary import META_REPLAY_OF
from proxycap.control.editing import EditError, edited
from proxycap.exchange.composer import composed_flow
from proxycap.storage.store import Store

# What a UI hears: the store's changes, the log lines worth showing, the store's state.
FEED_KINDS = (Committed, LogEvent, StoreStatus)


@dataclasses.dataclass(frozen=True, slots=True)
class Outcome:
    """What became of a request: ``ok``, and a one-line message for the user either way."""

    ok: bool
    message: str


class Feed(Protocol):
    """Events for one UI, queued until it drains them; ``take_lagged`` is true once after events were dropped
    (the UI then reloads from the store)."""

    def drain(self, max_items: int | None = None) -> list[Event]: ...

    def take_lagged(self) -> bool: ...

    def close(self) -> None: ...


class Control(Protocol):
    def listen_addrs(self) -> list[tuple[str, int]]:
        """Where the proxy listens."""
        ...

    def subscribe(self, name: str, limit: int) -> Feed:
        """A feed of ``Committed`` and ``LogEvent`` events, at most ``limit`` queued."""
        ...

    def replay(self, seq: int) -> Outcome:
        """Resend stored flow ``seq``'s request as a new flow that names it as its original."""
        ...

    def send_request(self, seq: int, text: str) -> Outcome:
        """Send ``text`` (``control.editing``'s request format), edited from flow ``seq``'s request, as a new flow."""
        ...

    def compose(self, text: str) -> Outcome:
        """Send ``text`` (``control.editing``'s request format), written from scratch, as a new flow."""
        ...

    def delete(self, seqs: Sequence[int]) -> Outcome: ...

    def set_marked(self, seqs: Sequence[int], marked: bool) -> Outcome: ...

    def set_label(self, ip: str, label: str | None) -> Outcome:
        """Name a client (None or empty: forget the name)."""
        ...


class Capture(Protocol):
    """What ``LocalControl`` drives: a capture session's parts."""

    engine: Engine
    bus: Bus
    store_path: Path
    access: Any  # addons.access.Access
    rules: Any  # addons.rules.Rules
    throttle: Any  # addons.throttle.Throttle
    breakpoints: Any  # addons.breakpoints.Breakpoints


class LocalControl:
    """The control API in the capture's own process."""

    def __init__(self, capture: Capture) -> None:
        self.capture = capture
        self.engine = capture.engine
        self.bus = capture.bus
        self.store = Store(capture.store_path)  # its own connection: calls come from UI worker threads

    def close(self) -> None:
        self.store.close()

    def listen_addrs(self) -> list[tuple[str, int]]:
        return self.engine.listen_addrs

    def subscribe(self, name: str, limit: int) -> Feed:
        return self.bus.subscribe(name, limit=limit, kinds=FEED_KINDS)

    def replay(self, seq: int) -> Outcome:
        original = self.store.load_flow(seq)
        if not isinstance(original, http.HTTPFlow):
            return Outcome(False, f"flow #{seq} cannot be replayed")
        return self._send(seq, original, original.request)

    def send_request(self, seq: int, text: str) -> Outcome:
        original = self.store.load_flow(seq)
        if not isinstance(original, http.HTTPFlow):
            return Outcome(False, f"flow #{seq} cannot be edited")
        try:
            request = edited(original.request, text)
        except EditError as e:
            return Outcome(False, str(e))
        return self._send(seq, original, request)

    def compose(self, text: str) -> Outcome:
        try:
            flow = composed_flow(edited(None, text))
        except EditError as e:
            return Outcome(False, str(e))
        return self._replay(flow, "the composed request")

    def _send(self, seq: int, original: http.HTTPFlow, request: http.Request) -> Outcome:
        """Replay a copy (a new flow, naming the original), as Fiddler reissues a session: mitmproxy would replay the
        flow itself and overwrite its response, and the stored flow would change under the user."""
        again = original.copy()
        again.request = request
        again.metadata[META_REPLAY_OF] = original.id
        return self._replay(again, f"#{seq}")

    def _replay(self, flow: http.HTTPFlow, what: str) -> Outcome:
        try:
            error = self.engine.replay(flow)
        except (EngineError, TimeoutError) as e:
            error = str(e) or "the proxy did not answer"
        if error:
            return Outcome(False, f"replay of {what}: {error}")
        return Outcome(True, f"replaying {what}: the answer comes as a new flow")

    def delete(self, seqs: Sequence[int]) -> Outcome:
        self.store.delete(seqs)
        self.bus.publish(Committed(removed=list(seqs), clients=True))
        return Outcome(True, f"deleted {len(seqs):,} flow{'s' * (len(seqs) != 1)}")

    def set_marked(self, seqs: Sequence[int], marked: bool) -> Outcome:
        self.store.set_marked(seqs, marked)
        self.bus.publish(Committed(edited=list(seqs)))
        return Outcome(True, f"{'marked' if marked else 'unmarked'} {len(seqs):,} flow{'s' * (len(seqs) != 1)}")

    def set_label(self, ip: str, label: str | None) -> Outcome:
        self.store.set_label(ip, label or None)
        self.bus.publish(Committed(clients=True))
        return Outcome(True, f"{ip} is now {label!r}" if label else f"{ip} has no name now")

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

from proxycap.capture.bus import AccessChanged, Bus, ClientRefusedEvent, Committed, Event, LogEvent, StoreStatus
from proxycap.capture.engine import Engine, EngineError
from proxycap.capture.summary import META_REPLAY_OF
from proxycap.control.editing import EditError, edited
from proxycap.devices.lan import listening_note
from proxycap.devices.setup import setup_for
from proxycap.storage.store import Store

# What a UI hears: the store's changes, the log lines worth showing, the store's state, clients refused (at once, to
# offer allowing them) and clients allowed or denied.
FEED_KINDS = (Committed, LogEvent, StoreStatus, ClientRefusedEvent, AccessChanged)


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
        """A feed of the events in ``FEED_KINDS``, at most ``limit`` queued."""
        ...

    def replay(self, seq: int) -> Outcome:
        """Resend stored flow ``seq``'s request as a new flow that names it as its original."""
        ...

    def send_request(self, seq: int, text: str) -> Outcome:
        """Send ``text`` (``control.editing``'s request format), edited from flow ``seq``'s request, as a new flow."""
        ...

    def delete(self, seqs: Sequence[int]) -> Outcome: ...

    def set_marked(self, seqs: Sequence[int], marked: bool) -> Outcome: ...

    def set_label(self, ip: str, label: str | None) -> Outcome:
        """Name a client (None or empty: forget the name)."""
        ...

    def client_access(self) -> dict[str, Any]:
        """Who may use the proxy: ``pending``, the clients refused this session that nobody allowed or denied yet,
        oldest first (``ip``, ``request``: its first, ``first_seen``, ``requests``: how many it sent); ``allowed`` and
        ``denied``, the addresses allowed and denied at runtime this session; ``policy``, who is allowed, for people;
        ``note``, one short line saying where devices reach the proxy and who is allowed when it listens beyond
        loopback, else None."""
        ...

    def allow_client(self, ip: str, remember: bool = False) -> Outcome:
        """Let ``ip`` use the proxy from its next request on: this session, and with ``remember`` later runs too (the
        settings file keeps it)."""
        ...

    def deny_client(self, ip: str) -> Outcome:
        """Refuse ``ip`` from its next request on (even where ``--allow`` lets it in), and forget it if remembered."""
        ...

    def device_setup(self) -> dict[str, Any]:
        """How devices reach the proxy: ``listen_host``, ``port`` and ``addresses`` (``devices.setup.SetupInfo``'s
        fields: this machine's addresses that devices reach it at, best first, none when it listens on loopback only),
        ``policy`` (who is allowed, for people) and ``proxyauth`` (whether it asks for credentials)."""
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

    def _send(self, seq: int, original: http.HTTPFlow, request: http.Request) -> Outcome:
        """Replay a copy (a new flow, naming the original), as Fiddler reissues a session: mitmproxy would replay the
        flow itself and overwrite its response, and the stored flow would change under the user."""
        again = original.copy()
        again.request = request
        again.metadata[META_REPLAY_OF] = original.id
        try:
            error = self.engine.replay(again)
        except (EngineError, TimeoutError) as e:
            error = str(e) or "the proxy did not answer"
        if error:
            return Outcome(False, f"replay of #{seq}: {error}")
        return Outcome(True, f"replaying #{seq}: the answer comes as a new flow")

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

    def client_access(self) -> dict[str, Any]:
        access = self.capture.access
        policy = access.policy
        return {
            "pending": [dataclasses.asdict(p) for p in access.pending()],
            "allowed": sorted(policy.allowed),
            "denied": sorted(policy.denied),
            "policy": access.describe(),
            "note": listening_note(self.listen_addrs(), access.describe(), short=True),
        }

    def allow_client(self, ip: str, remember: bool = False) -> Outcome:
        try:
            self.capture.access.allow(ip, remember=remember)
        except (ValueError, OSError) as e:
            return Outcome(False, f"cannot allow {ip}: {e}")
        self.bus.publish(AccessChanged(ip, allowed=True, remembered=remember))
        later = " (remembered for later runs)" if remember else " for this session"
        return Outcome(True, f"{ip} may use the proxy{later}")

    def deny_client(self, ip: str) -> Outcome:
        try:
            self.capture.access.deny(ip)
        except (ValueError, OSError) as e:
            return Outcome(False, f"cannot deny {ip}: {e}")
        self.bus.publish(AccessChanged(ip, allowed=False))
        return Outcome(True, f"{ip} is refused from now on")

    def device_setup(self) -> dict[str, Any]:
        info = setup_for(self.listen_addrs())
        master = self.engine.master
        return {
            "listen_host": info.listen_host,
            "port": info.port,
            "addresses": list(info.addresses),
            "policy": self.capture.access.describe(),
            "proxyauth": bool(master is not None and master.options.proxyauth),
        }

"""The control API: everything a UI asks of a running capture, with plain data in and out.

A UI reads flows from the store itself; whatever changes the capture (replay, send an edited request, delete, mark,
name a client, breakpoints, rules, client approval) goes through here, and so does hearing what the store committed.
``control.local.LocalControl`` serves it inside the capture's own process; a UI in another process gets the same calls
over a control channel (``control.server``, ``control.remote``). So every method takes and returns plain data only:
str, int, float, bool, None, lists and dicts of them, and ``Outcome``. Calls may block (a replay waits for the engine's
loop): call them from a worker thread, never from a UI's event loop.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, Protocol

from proxycap.capture.bus import (
    AccessChanged,
    BreakpointsChanged,
    ClientRefusedEvent,
    Committed,
    Event,
    LogEvent,
    StoreStatus,
)

# What a UI hears: the store's changes, log lines worth showing, the store's state, the flows stopped at breakpoints,
# clients refused (at once, to offer allowing them) and clients allowed or denied.
FEED_KINDS = (Committed, LogEvent, StoreStatus, BreakpointsChanged, ClientRefusedEvent, AccessChanged)
ABORTED = "503 Service Unavailable"  # what Abort answers the client (addons.breakpoints)


@dataclasses.dataclass(frozen=True, slots=True)
class Outcome:
    """What became of a request: ``ok``, and a one-line message for the user either way; ``id``: what it made (a
    breakpoint, a rule), if it made something."""

    ok: bool
    message: str
    id: int | None = None


class Feed(Protocol):
    """Events for one UI, queued until it drains them; ``take_lagged`` is true once after events were dropped
    (the UI then reloads from the store); ``ended`` once the capture has stopped."""

    ended: bool

    def drain(self, max_items: int | None = None) -> list[Event]: ...

    def take_lagged(self) -> bool: ...

    def close(self) -> None: ...


class Control(Protocol):
    # True where the capture runs in the caller's process: a UI then shares the proxy's GIL, and makes way for it.
    in_process: bool

    def listen_addrs(self) -> list[tuple[str, int]]:
        """Where the proxy listens."""
        ...

    def store_path(self) -> str:
        """The capture's store, which a UI reads flows from."""
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

    def compose(self, text: str) -> Outcome:
        """Send ``text`` (``control.editing``'s request format), written from scratch, as a new flow."""
        ...

    def delete(self, seqs: Sequence[int]) -> Outcome: ...

    def set_marked(self, seqs: Sequence[int], marked: bool) -> Outcome: ...

    def set_label(self, ip: str, label: str | None) -> Outcome:
        """Name a client (None or empty: forget the name)."""
        ...

    # --- breakpoints ----------------------------------------------------------------------------

    def breakpoints(self) -> list[dict[str, Any]]:
        """The armed breakpoints, in order: ``id, filter, request, response, client, once, replays``."""
        ...

    def add_breakpoint(
        self, filter: str, request: bool = True, response: bool = False, client: str | None = None, once: bool = False
    ) -> Outcome:
        """Stop the flows matching ``filter`` (a mitmproxy filter expression; empty: every flow) before their request
        goes upstream (``request``), before their response reaches the client (``response``), or both; only
        ``client``'s flows (an IP) if given; ``once``: the next match only. ``Outcome.id``: the breakpoint's."""
        ...

    def remove_breakpoint(self, breakpoint_id: int) -> Outcome: ...

    def stopped(self) -> list[dict[str, Any]]:
        """The flows waiting at breakpoints, oldest first: ``flow_id``, ``phase`` ("request": before it goes
        upstream, "response": before the client gets it), ``breakpoint`` (its id), ``since`` (epoch seconds),
        ``client_ip, method, url`` and ``status`` (the response's, or None)."""
        ...

    def stopped_text(self, flow_id: str) -> dict[str, Any]:
        """A stopped flow (as ``stopped`` lists it) with its request or response, as its phase says, as editable text
        (``control.editing``'s format) in ``text``; ``text`` None and ``reason`` why when it cannot be edited (a body
        that is not text: it can still be sent on or aborted; a flow not stopped any more: then ``phase`` is None)."""
        ...

    def execute(self, flow_id: str, text: str) -> Outcome:
        """Send a stopped flow on with ``text`` as its request or response. Text that does not read as one changes
        nothing: the flow stays stopped, and the outcome says why."""
        ...

    def resume(self, flow_id: str) -> Outcome:
        """Continue: send a stopped flow on unchanged."""
        ...

    def abort(self, flow_id: str) -> Outcome:
        """The client gets ``503 Service Unavailable``; a flow stopped before its request never reaches the server."""
        ...

    def resume_all(self) -> Outcome:
        """Send every stopped flow on unchanged."""
        ...

    # --- rules ----------------------------------------------------------------------------------

    def rules(self) -> dict[str, Any]:
        """The rules file: ``path`` (None: there is none, and rules cannot be changed), ``problem`` (why the file
        could not be read: then no rule applies and changes are refused, so nothing is written over it; else None),
        and ``rules`` in the order they apply, each with ``id`` (for this run), ``rule`` (a dict in the file's field
        names, as written), ``label``, ``enabled``, ``hits`` (since the file was loaded) and ``error`` (why a broken
        rule does not apply; else None)."""
        ...

    def add_rule(self, rule: dict[str, Any], index: int | None = None) -> Outcome:
        """Add a rule (a dict in the file's field names) at ``index`` (else last) and save the file; a rule that is
        not valid is refused with the reason. ``Outcome.id``: the rule's."""
        ...

    def edit_rule(self, rule_id: int, rule: dict[str, Any]) -> Outcome:
        """Replace a rule (a broken one too); its hit count stays."""
        ...

    def set_rule_enabled(self, rule_id: int, enabled: bool) -> Outcome: ...

    def move_rule(self, rule_id: int, index: int) -> Outcome:
        """Move a rule to ``index`` (0: first, applied before the others)."""
        ...

    def remove_rule(self, rule_id: int) -> Outcome: ...

    def reload_rules(self) -> Outcome:
        """Read the rules file again (after fixing it by hand); hit counts start over."""
        ...

    def mock(self, seq: int) -> Outcome:
        """ "Mock this": a respond rule, added last, that answers stored flow ``seq``'s method and URL with its stored
        response. ``Outcome.id``: the rule's."""
        ...

    # --- throttling -----------------------------------------------------------------------------

    def throttle(self) -> str | None:
        """The profile throttling all traffic, in words ("3G", "100 KB/s down, 50 KB/s up, +200 ms"), or None."""
        ...

    def set_throttle(self, profile: str, latency: float = 0) -> Outcome:
        """Throttle all traffic from the next request on: ``profile`` is a preset ("3G", "slow 3G", "offline"), a
        rate in KB/s ("100", or "100/50" for download/upload), or "" / "off" for none; ``latency`` adds ms to each
        request (with or without a rate)."""

    # --- clients --------------------------------------------------------------------------------

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

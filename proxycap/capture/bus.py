"""In-process event bus: the proxy's thread publishes flows, the store writer publishes what it committed, and the
store writer, the UI and the ``record`` printer subscribe to the kinds of event they want.

Publishing must never make the proxy wait: it appends to each subscriber's deque (atomic in CPython, no
locks) and returns. Subscribers drain on their own schedule. A bounded subscriber that falls behind is
marked ``lagged`` and stops receiving until it drains; it then catches up from the store instead.

The one subscriber that must see every flow (the store writer) reports how much of what it received is stored;
``Bus.backlog`` lets the recorder slow the proxy down when the store cannot keep up, instead of queueing
bodies in memory without bound. Views (the UI) do not listen to flows at all: they hear ``Committed`` once the
store has the rows, and read them from there.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
from collections.abc import Collection
from typing import Any, Literal

EventKind = Literal[
    "request",
    "response",
    "error",
    "named",  # a flow's summary again, with the program that opened its client connection, looked up meanwhile
    "websocket",
    "websocket_end",
    "log",
    "client",
    "committed",
    "store",
    "breakpoints",
    "refused",
    "access",
]


@dataclasses.dataclass(slots=True)
class FlowEvent:
    """One change to a flow: a compact summary for listing, plus the full state for the store writer."""

    kind: EventKind
    flow_id: str
    # None when the event has a state and no subscriber reads summaries (``proxycap record -q``, the TUI): the store
    # writer's child makes it from the state, off the proxy's thread.
    summary: dict[str, Any] | None
    # ``flow.get_state()`` at publish time; serialised and compressed by the store writer, off the proxy loop.
    state: dict[str, Any] | None = None


@dataclasses.dataclass(slots=True)
class LogEvent:
    """A log line worth keeping (warnings, errors, TLS failures), shown in the event log."""

    ts: float
    level: str
    message: str
    client_ip: str | None = None
    flow_id: str | None = None
    kind: EventKind = "log"


@dataclasses.dataclass(slots=True)
class ClientEvent:
    """A client device opened or closed a connection to the proxy."""

    ts: float
    client_ip: str
    client_port: int | None
    connected: bool
    kind: EventKind = "client"


@dataclasses.dataclass(slots=True)
class Committed:
    """What the store now holds that it did not: what views update from, never ahead of the store.

    ``flows``: rows the store writer committed, as (flow id, row id, state); ``edited``: rows a user changed (marks);
    ``removed``: rows deleted; ``clients``: client names changed.
    """

    flows: list[tuple[str, int, str]] = dataclasses.field(default_factory=list)
    edited: list[int] = dataclasses.field(default_factory=list)
    removed: list[int] = dataclasses.field(default_factory=list)
    clients: bool = False
    kind: EventKind = "committed"


@dataclasses.dataclass(slots=True)
class StoreStatus:
    """The store writer's state changed: ``failing`` (flows wait for the store), ``working`` (again), or ``lost``
    (``lost`` flows could not be written). ``message`` says it in one line for the user."""

    state: Literal["failing", "working", "lost"]
    message: str
    lost: int = 0
    kind: EventKind = "store"


@dataclasses.dataclass(slots=True)
class BreakpointsChanged:
    """A flow stopped at a breakpoint or was sent on, or the breakpoints changed (a "once" one disarms as it stops a
    flow): all of both as they are now, so a UI that missed one still ends up right. ``stopped``: the flows waiting,
    oldest first (``flow_id, phase, breakpoint, since, client_ip, method, url, status``); ``breakpoints``: the armed
    ones (``id, filter, request, response, client, once, replays``). Published only while breakpoints are in use."""

    stopped: list[dict[str, Any]]
    breakpoints: list[dict[str, Any]]
    kind: EventKind = "breakpoints"


@dataclasses.dataclass(slots=True)
class ClientRefusedEvent:
    """A client that is not allowed asked the proxy for something (once per address and session): it got a 403 page,
    and the UI may offer to allow it (``Access.allow``) or deny it."""

    ts: float
    client_ip: str
    request: str  # its first request, such as "GET http://example.com/" or "CONNECT example.com:443"
    kind: EventKind = "refused"


@dataclasses.dataclass(slots=True)
class AccessChanged:
    """A client was allowed (``remembered``: in the settings file too) or denied at runtime: UIs show who is allowed
    and who waits anew."""

    client_ip: str
    allowed: bool
    remembered: bool = False
    kind: EventKind = "access"


Event = (
    FlowEvent
    | LogEvent
    | ClientEvent
    | Committed
    | StoreStatus
    | BreakpointsChanged
    | ClientRefusedEvent
    | AccessChanged
)
EVERY_KIND: frozenset[type] = frozenset(
    {FlowEvent, LogEvent, ClientEvent, Committed, StoreStatus, BreakpointsChanged, ClientRefusedEvent, AccessChanged}
)


def state_bytes(event: FlowEvent) -> int:
    """Roughly what a flow's state holds in memory: its captured bodies (a streamed one has none) plus a little
    for headers and connections. Once per flow on the proxy's thread: no generator, no key formatting."""
    state = event.state or {}
    request, response = state.get("request"), state.get("response")
    size = 2048
    if request and request.get("content"):
        size += len(request["content"])
    if response and response.get("content"):
        size += len(response["content"])
    return size


class Subscription:
    """A subscriber's queue of the event classes it wants. ``limit=None`` means it must see every one of them (the
    store writer)."""

    def __init__(self, bus: Bus, name: str, kinds: frozenset[type], limit: int | None, with_state: bool) -> None:
        self.bus = bus
        self.name = name
        self.kinds = kinds
        self.limit = limit
        self.with_state = with_state
        self.summaries = FlowEvent in kinds and not with_state
        self.queue: collections.deque[Event] = collections.deque()
        self.lagged = False
        self.ended = False  # in the publisher's own process it never ends before the subscriber closes it
        # Bytes of flow state received (written by the publisher alone: no lock) and stored or given up (the
        # subscriber's to keep). ``failing``: storing is broken, so waiting for it would stop the proxy.
        self.bytes_in = 0
        self.bytes_out = 0
        self.failing = False

    @property
    def unstored(self) -> int:
        """Bytes of flow state received and neither stored nor given up: what this subscriber holds for the store."""
        return self.bytes_in - self.bytes_out

    def backlog(self) -> int:
        """What the proxy may wait for: nothing while storing is broken."""
        return 0 if self.failing else self.unstored

    def put(self, event: Event) -> None:
        if self.with_state and isinstance(event, FlowEvent) and event.state is not None:
            self.bytes_in += state_bytes(event)
        if self.limit is not None and len(self.queue) >= self.limit:
            self.lagged = True
            return
        self.queue.append(event)

    def drain(self, max_items: int | None = None) -> list[Event]:
        """Take what is queued (up to ``max_items``); never blocks."""
        out: list[Event] = []
        pop = self.queue.popleft
        n = len(self.queue) if max_items is None else min(max_items, len(self.queue))
        for _ in range(n):
            out.append(pop())
        return out

    def take_lagged(self) -> bool:
        """True once after the queue overflowed: the subscriber should reload from the store."""
        lagged, self.lagged = self.lagged, False
        return lagged

    def close(self) -> None:
        self.bus.unsubscribe(self)


class Bus:
    """Fan-out to subscribers; safe to publish from any thread."""

    def __init__(self) -> None:
        self._subs: tuple[Subscription, ...] = ()
        self._lock = threading.Lock()  # guards (un)subscribe only; publish reads an immutable tuple
        # Whether a subscriber reads flows' summaries here (the record printer): then the proxy's thread makes them.
        self.wants_summaries = False

    def subscribe(
        self,
        name: str,
        limit: int | None = None,
        with_state: bool = False,
        kinds: Collection[type] = EVERY_KIND,
    ) -> Subscription:
        """Receive events of the classes in ``kinds``. ``with_state``: flows' full state (bodies); only the store
        writer needs it. Everyone else gets flows' summaries, so a backlog in a slow subscriber never pins bodies in
        memory, and the proxy's thread makes summaries only while such a subscriber listens."""
        sub = Subscription(self, name, frozenset(kinds), limit, with_state)
        with self._lock:
            self._set((*self._subs, sub))
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            self._set(tuple(s for s in self._subs if s is not sub))

    def _set(self, subs: tuple[Subscription, ...]) -> None:
        self._subs = subs
        self.wants_summaries = any(s.summaries for s in subs)

    def backlog(self) -> int:
        """Bytes of flow state published but not stored yet."""
        return max((s.backlog() for s in self._subs if s.with_state), default=0)

    def publish(self, event: Event) -> None:
        kind = type(event)
        light: Event | None = event
        if isinstance(event, FlowEvent) and event.state is not None:
            # Per flow on the proxy's thread: with `record -q` and the TUI nobody reads summaries, and none is made.
            light = None if event.summary is None else FlowEvent(event.kind, event.flow_id, event.summary)
        for sub in self._subs:
            if kind not in sub.kinds:
                continue
            if sub.with_state:
                sub.put(event)
            elif light is not None:
                sub.put(light)
            else:  # subscribed after the publisher looked: it catches up from the store, as a lagging one does
                sub.lagged = True

"""Breakpoints addon: stops matching flows before their request goes upstream or their response reaches the client,
until the user sends them on as they are (Continue), as edited (Execute) or not at all (Abort).

Built on mitmproxy's interception: the hook calls ``flow.intercept()`` and mitmproxy's proxy server waits for
``flow.resume()`` before it goes on with that flow, in that flow's own task, so a stopped flow holds up nothing else
and waits as long as the user wants (mitmproxy disarms its idle timeout while a hook runs). A flow whose client
leaves while it is stopped ends with the client's disconnect as its error.

Abort answers the client with ``503 Service Unavailable`` (as Proxyman does): a stopped request never reaches the
server, a stopped response is replaced.

Each change to the stopped flows or the breakpoints is published on the bus (``BreakpointsChanged``), so a UI hears it
at once without asking.

Threading: hooks and every change run on the proxy's loop. ``breakpoints()`` and ``stopped()`` read immutable
snapshots and never wait; the other entry points run their work on the loop and wait for it (one turn of the loop):
call them from a worker thread. They raise ``NotRunning`` when the proxy is not running, ``KeyError`` for a flow
that is not stopped (any more) or a breakpoint that does not exist, ``ValueError`` for a bad filter or address.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import time
from collections.abc import Sequence
from typing import Any, Literal

from mitmproxy import connection, ctx, exceptions, flowfilter, http
from mitmproxy.flow import Error as FlowError

from proxycap.capture import onloop
from proxycap.capture.bus import BreakpointsChanged, Bus
from proxycap.capture.hooks import InterceptionHook
from proxycap.capture.summary import META_LOCAL, is_ip, mark_modified, peer
from proxycap.internals.mitmproxy import switch_hooks

Phase = Literal["request", "response"]

ABORT_STATUS = 503
ABORT_BODY = b"proxycap: aborted at a breakpoint\n"
META_ABORTED = "proxycap.aborted"

FLOW_HOOKS = ("request", "response")  # on while there are breakpoints
STOPPED_HOOKS = ("client_disconnected",)  # on while flows are stopped


@dataclasses.dataclass(frozen=True)
class Breakpoint:
    """A filter expression and where to stop the flows it matches."""

    id: int
    filter: str
    request: bool = True  # stop before the request goes upstream
    response: bool = False  # stop before the response reaches the client
    client: str | None = None  # only this client IP (exact, unlike ~src's regex)
    once: bool = False  # stop the next match, then disarm
    replays: bool = False  # stop replayed flows too
    matches: flowfilter.TFilter = dataclasses.field(default=flowfilter.match_all, repr=False, compare=False)

    def as_dict(self) -> dict[str, Any]:
        """Plain data, for the control API and the bus."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "matches"}


@dataclasses.dataclass(frozen=True)
class Stopped:
    """A flow waiting at a breakpoint, as the UI lists it."""

    flow_id: str
    phase: Phase
    breakpoint: int
    since: float
    client_ip: str
    method: str
    url: str
    status: int | None  # the response's, when stopped before the response

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def compile_filter(expr: str) -> flowfilter.TFilter:
    """A mitmproxy filter expression, or ValueError with the reason in one line."""
    try:
        return flowfilter.parse(expr) if expr.strip() else flowfilter.match_all
    except ValueError as e:
        raise ValueError(f"bad filter expression {expr!r}: {str(e).splitlines()[0]}") from None


def _changes(old: http.Message, new: http.Message) -> list[str]:
    """What an edit changed, in words, for the flow's ``modified`` note."""
    out = []
    if isinstance(old, http.Request) and isinstance(new, http.Request):
        out += [n for n, a, b in (("method", old.method, new.method), ("URL", old.url, new.url)) if a != b]
    elif isinstance(old, http.Response) and isinstance(new, http.Response) and old.status_code != new.status_code:
        out.append("status")
    if old.http_version != new.http_version:
        out.append("version")
    if old.headers.fields != new.headers.fields:
        out.append("headers")
    if old.raw_content != new.raw_content:
        out.append("body")
    return out


class Breakpoints:
    def __init__(self, bus: Bus | None = None) -> None:
        self.bus = bus  # told of every change (none in stock mitmproxy tools)
        self._breakpoints: tuple[Breakpoint, ...] = ()
        self._from_options: frozenset[int] = frozenset()
        self._ids = itertools.count(1)
        self._flows: dict[str, tuple[http.HTTPFlow, Stopped]] = {}  # the loop's own
        self._stopped: tuple[Stopped, ...] = ()
        self._loop: asyncio.AbstractEventLoop | None = None
        for name in FLOW_HOOKS + STOPPED_HOOKS:  # idle until there is something to do
            setattr(self, name, None)

    def load(self, loader: Any) -> None:
        loader.add_option(
            "proxycap_break",
            Sequence[str],
            [],
            "Stop requests matching these filter expressions before they go upstream (proxycap's breakpoints).",
        )
        loader.add_option(
            "proxycap_break_response",
            Sequence[str],
            [],
            "Stop responses matching these filter expressions before they reach the client.",
        )

    def configure(self, updated: set[str]) -> None:
        if {"proxycap_break", "proxycap_break_response"} & updated:
            try:
                new = [self._make(e) for e in ctx.options.proxycap_break]
                new += [self._make(e, request=False, response=True) for e in ctx.options.proxycap_break_response]
            except ValueError as e:
                raise exceptions.OptionsError(f"breakpoint: {e}") from None
            kept = tuple(b for b in self._breakpoints if b.id not in self._from_options)
            self._from_options = frozenset(b.id for b in new)
            self._set((*kept, *new))

    def running(self) -> None:
        self._loop = asyncio.get_running_loop()

    # --- entry points (any thread) ------------------------------------------------------------

    def breakpoints(self) -> tuple[Breakpoint, ...]:
        return self._breakpoints

    def stopped(self) -> tuple[Stopped, ...]:
        """The flows waiting, oldest first."""
        return self._stopped

    def add(
        self,
        filter: str,
        *,
        request: bool = True,
        response: bool = False,
        client: str | None = None,
        once: bool = False,
        replays: bool = False,
    ) -> Breakpoint:
        bp = self._make(filter, request=request, response=response, client=client, once=once, replays=replays)
        onloop.call(self._loop, lambda: self._set((*self._breakpoints, bp)))
        return bp

    def remove(self, breakpoint_id: int) -> None:
        def remove() -> None:
            if all(b.id != breakpoint_id for b in self._breakpoints):
                raise KeyError(f"no breakpoint {breakpoint_id}")
            self._set(tuple(b for b in self._breakpoints if b.id != breakpoint_id))

        onloop.call(self._loop, remove)

    def flow(self, flow_id: str) -> http.HTTPFlow:
        """A copy of a stopped flow, to show and edit (``control.editing``)."""
        return onloop.call(self._loop, lambda: self._get(flow_id)[0].copy())

    def resume(self, flow_id: str) -> None:
        """Continue: send the flow on unchanged."""
        onloop.call(self._loop, lambda: self._release(self._take(flow_id)[0]))

    def execute(self, flow_id: str, message: http.Request | http.Response) -> None:
        """Send the flow on with ``message`` (the edited request or response, as its phase says) in its place."""

        def execute() -> None:
            f, stopped = self._get(flow_id)
            old: http.Message | None = f.request if stopped.phase == "request" else f.response
            if type(message) is not type(old):
                raise TypeError(f"the flow is stopped before its {stopped.phase}: edit that")
            assert old is not None
            self._take(flow_id)
            if changes := _changes(old, message):
                mark_modified(f, f"breakpoint: {stopped.phase} edited ({', '.join(changes)})")
            if isinstance(message, http.Request):
                f.request = message
            else:
                f.response = message
            self._release(f)

        onloop.call(self._loop, execute)

    def abort(self, flow_id: str) -> None:
        """The client gets ``503 Service Unavailable``; a stopped request never reaches the server."""

        def abort() -> None:
            f, stopped = self._take(flow_id)
            f.response = http.Response.make(ABORT_STATUS, ABORT_BODY, {"Content-Type": "text/plain"})
            f.metadata[META_ABORTED] = True
            mark_modified(f, f"breakpoint: aborted before the {stopped.phase} ({ABORT_STATUS} to the client)")
            self._release(f)

        onloop.call(self._loop, abort)

    def resume_all(self) -> int:
        """Continue every stopped flow; returns how many."""

        def resume_all() -> int:
            flows = [f for f, _ in self._flows.values()]
            self._flows.clear()
            for f in flows:
                self._release(f)
            return len(flows)

        return onloop.call(self._loop, resume_all)

    # --- the loop's side ----------------------------------------------------------------------

    def _make(self, expr: str, **options: Any) -> Breakpoint:
        bp = Breakpoint(next(self._ids), expr, matches=compile_filter(expr), **options)
        if not (bp.request or bp.response):
            raise ValueError("a breakpoint stops the request, the response or both")
        if bp.client is not None and not is_ip(bp.client):
            raise ValueError(f"not an IP address: {bp.client!r}")
        return bp

    def _set(self, breakpoints: tuple[Breakpoint, ...], publish: bool = True) -> None:
        was = bool(self._breakpoints)
        self._breakpoints = breakpoints
        if was != bool(breakpoints):
            switch_hooks(ctx.master, self, FLOW_HOOKS, bool(breakpoints))
        if publish:
            self._publish()

    def _publish(self) -> None:
        if self.bus is not None:
            stopped = [s.as_dict() for s in self._stopped]
            self.bus.publish(BreakpointsChanged(stopped, [b.as_dict() for b in self._breakpoints]))

    def _get(self, flow_id: str) -> tuple[http.HTTPFlow, Stopped]:
        try:
            return self._flows[flow_id]
        except KeyError:
            raise KeyError(f"flow {flow_id} is not stopped (sent on already, or its client left)") from None

    def _take(self, flow_id: str) -> tuple[http.HTTPFlow, Stopped]:
        entry = self._get(flow_id)
        del self._flows[flow_id]
        return entry

    def _changed(self) -> None:
        was = bool(self._stopped)
        self._stopped = tuple(s for _, s in self._flows.values())
        if was != bool(self._stopped):
            switch_hooks(ctx.master, self, STOPPED_HOOKS, bool(self._stopped))
        self._publish()

    def _release(self, f: http.HTTPFlow) -> None:
        self._changed()
        f.resume()
        ctx.master.addons.trigger(InterceptionHook(f))

    def _check(self, f: http.HTTPFlow, phase: Phase) -> None:
        message = f.request if phase == "request" else f.response
        # A streamed body has gone through already; a request answered by a rule or an abort may stop as a response.
        if message is None or message.stream or f.intercepted or f.error or f.metadata.get(META_ABORTED):
            return
        if META_LOCAL in f.metadata:  # proxycap's own answer (the setup page, a refusal): not traffic
            return
        if phase == "request" and f.response:
            return
        ip = None
        for bp in self._breakpoints:
            if not (bp.request if phase == "request" else bp.response) or (f.is_replay and not bp.replays):
                continue
            if bp.client is not None:
                ip = ip or peer(f.client_conn.peername)[0]
                if ip != bp.client:
                    continue
            if bp.matches(f):
                self._stop(f, phase, bp)
                return

    def _stop(self, f: http.HTTPFlow, phase: Phase, bp: Breakpoint) -> None:
        f.intercept()
        if bp.once:  # published with the stopped flow, below
            self._set(tuple(b for b in self._breakpoints if b.id != bp.id), publish=False)
        status = f.response.status_code if f.response else None
        stopped = Stopped(
            f.id, phase, bp.id, time.time(), peer(f.client_conn.peername)[0], f.request.method, f.request.url, status
        )
        self._flows[f.id] = (f, stopped)
        self._changed()
        ctx.master.addons.trigger(InterceptionHook(f))

    # --- hooks (switched on and off as above) -------------------------------------------------

    def request(self, f: http.HTTPFlow) -> None:  # type: ignore[no-redef]
        self._check(f, "request")

    def response(self, f: http.HTTPFlow) -> None:  # type: ignore[no-redef]
        self._check(f, "response")

    def client_disconnected(self, client: connection.Client) -> None:  # type: ignore[no-redef]
        """A stopped flow whose client left ends with that as its error."""
        for f, _ in [e for e in self._flows.values() if e[0].client_conn.id == client.id]:
            del self._flows[f.id]
            if not f.error:
                f.error = FlowError("client disconnected while the flow was stopped at a breakpoint")
            self._release(f)


addons = [Breakpoints()]

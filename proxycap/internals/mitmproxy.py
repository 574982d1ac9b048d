"""Where proxycap leans on mitmproxy's internals: every such piece is here, and tests/test_internals_mitmproxy.py
shows that each behaves as mitmproxy's own code does.

- ``QuickMaster``: mitmproxy's ``Master`` with an addon manager that skips addons without a handler for a hook.
- ``snapshot``: ``flow.get_state()`` with the connections' states taken from a cache.
- ``listen_failure``, ``stop_listening`` and ``close_client_connections``: the proxy server's listeners and
  connections.
- ``count_streamed_bodies``: the bytes of every body mitmproxy streams rather than keeps.
- ``switch_hooks``: an addon's hook handlers turned off and on, so an idle feature costs the proxy nothing.
- ``PacedWriter`` and ``pace_connection``: a connection's writes paced to a rate (throttling), in place of the
  ``asyncio.StreamWriter`` mitmproxy's connection handler writes to.
- ``command_head``: mitmproxy's curl and HTTPie exports without a running Master, and without the body.

The addon manager. For every hook, and again for the ``update`` hook after every flow hook, mitmproxy's
``trigger_event`` walks the whole addon chain (30-odd default addons) and, for each one, enters a context manager,
creates and awaits a coroutine and walks a generator, although a given hook has a handler in a handful of them. At
8 hooks per keep-alive request, that is a large share of the proxy thread's time
(bench/RESULTS.md, "Addon dispatch"). Skipping the addons without a handler, before any of that, changes nothing
else: the ones with a handler, and any addon with children (the script loader), go through mitmproxy's own path.
Which addons those are is worked out once per hook, and again when the chain changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any, Literal, Protocol

from mitmproxy import addonmanager, ctx, exceptions, hooks, http, options
from mitmproxy.addons import export
from mitmproxy.master import Master

State = dict[str, Any]


class QuickAddonManager(addonmanager.AddonManager):
    def __init__(self, master: Any) -> None:
        super().__init__(master)
        # Per hook: (the chain list it was computed from, its length then, the addons). mitmproxy appends to the
        # chain or replaces the list, never edits it in place otherwise, so list and length say it is current.
        self._cache: dict[str, tuple[list[Any], int, list[Any]]] = {}

    def refresh(self) -> None:
        """Work the handlers out again: an addon switched its hooks (``switch_hooks``)."""
        self._cache.clear()

    def _handlers(self, event: hooks.Hook) -> list[Any]:
        """The chain's addons that mitmproxy's own walk could find a handler in: one with an attribute named after
        the hook, or with children (the script loader, whose scripts come and go). Cached: 8 lookups per request."""
        chain, name = self.chain, event.name
        cached = self._cache.get(name)
        if cached is None or cached[0] is not chain or cached[1] != len(chain):
            handlers = [a for a in chain if getattr(a, name, None) or hasattr(a, "addons")]
            cached = self._cache[name] = (chain, len(chain), handlers)
        return cached[2]

    async def trigger_event(self, event: hooks.Hook) -> None:
        for addon in self._handlers(event):
            try:
                with addonmanager.safecall():
                    await self.invoke_addon(addon, event)
            except exceptions.AddonHalt:
                return

    def trigger(self, event: hooks.Hook) -> None:
        for addon in self._handlers(event):
            try:
                with addonmanager.safecall():
                    self.invoke_addon_sync(addon, event)
            except exceptions.AddonHalt:
                return


class QuickMaster(Master):
    """mitmproxy's ``Master`` with the quicker addon manager; built before any addon is added."""

    def __init__(self, opts: options.Options) -> None:
        super().__init__(opts)
        self.addons = QuickAddonManager(self)


# --- a flow's state, with its connections' states cached ----------------------------------------


class ConnectionCache(Protocol):
    def get(self, conn: Any) -> State: ...


class _Taken:
    """Stands in for a connection while ``flow.get_state()`` runs, answering with the cached state."""

    __slots__ = ("state",)

    def __init__(self, state: State) -> None:
        self.state = state

    def get_state(self) -> State:
        return self.state


def snapshot(flow: http.HTTPFlow, conns: ConnectionCache) -> State:
    """``flow.get_state()``, with the connections' states taken from ``conns``.

    mitmproxy's own ``get_state`` does the rest, so the format stays mitmproxy's whatever its version. The swap
    is invisible: it happens and is undone within one synchronous call on the proxy's loop.
    """
    client, server = flow.client_conn, flow.server_conn
    flow.client_conn, flow.server_conn = _Taken(conns.get(client)), _Taken(conns.get(server))  # type: ignore[assignment]
    try:
        return flow.get_state()
    finally:
        flow.client_conn, flow.server_conn = client, server


# --- the proxy server's listeners and connections -----------------------------------------------


def listen_failure(master: Master) -> str | None:
    """Why a listener did not come up (mitmproxy only logs a failed bind), in one line; None if all are up."""
    ps = master.addons.get("proxyserver")
    failed = [s for s in ps.servers if not s.is_running or s.last_exception]
    if not failed:
        return None if ps.servers else "no proxy mode to listen on"
    s = failed[0]
    host = s.mode.listen_host(master.options.listen_host) or "*"
    port = s.mode.listen_port(master.options.listen_port)
    reason = str(s.last_exception or "not running").splitlines()[0]
    if "address already in use" in reason.lower():
        reason = "the address is already in use (another proxy running?); choose another port with -p"
    return f"cannot listen on {host}:{port} ({s.mode.full_spec} mode): {reason}"


async def stop_listening(master: Master) -> None:
    """Close every listener, as mitmproxy does when its modes change; open connections stay."""
    await master.addons.get("proxyserver").servers.update([])


async def close_client_connections(master: Master, reason: str, wait: float = 2.0) -> None:
    """Cancel each client's connection task, as mitmproxy's own idle timeout does, and let them wind down."""
    ps = master.addons.get("proxyserver")
    if ps is None:
        return
    for handler in list(ps.connections.values()):
        io = handler.transports.get(handler.client)
        if io is not None and io.handler is not None:
            io.handler.cancel(reason)
    for _ in range(int(wait / 0.02)):
        if not ps.connections:
            return
        await asyncio.sleep(0.02)


# --- streamed bodies ----------------------------------------------------------------------------

StreamCounter = Callable[[http.HTTPFlow, str, int], None]  # (flow, "request" or "response", bytes: 0 at the start)


def count_streamed_bodies(count: StreamCounter) -> None:
    """Tell ``count`` of every body mitmproxy streams (``stream_large_bodies``): once with 0 when streaming starts,
    then with each chunk's size. Hooks cannot see it all: a body of unknown length (chunked, HTTP/2) that outgrows
    the limit while being buffered is switched to streaming in mitmproxy's HTTP layer itself, with no hook between.
    Installed once per process; the layer's own code still does the streaming."""
    from mitmproxy.proxy.layers.http import HttpStream, RequestData, ResponseData

    if getattr(HttpStream, "_proxycap_count", None) is not None:
        HttpStream._proxycap_count = count  # type: ignore[attr-defined]
        return
    HttpStream._proxycap_count = count  # type: ignore[attr-defined]
    for side, data, starts, streams in (
        ("request", RequestData, "start_request_stream", "state_stream_request_body"),
        ("response", ResponseData, "start_response_stream", "state_stream_response_body"),
    ):
        start_original, stream_original = getattr(HttpStream, starts), getattr(HttpStream, streams)

        @functools.wraps(start_original)
        def start(self: Any, *args: Any, _original: Any = start_original, _side: str = side) -> Any:
            HttpStream._proxycap_count(self.flow, _side, 0)  # type: ignore[attr-defined]
            return _original(self, *args)

        @functools.wraps(stream_original)
        def stream(
            self: Any, event: Any, _original: Any = stream_original, _side: str = side, _data: Any = data
        ) -> Any:
            if isinstance(event, _data):
                HttpStream._proxycap_count(self.flow, _side, len(event.data))  # type: ignore[attr-defined]
            return _original(self, event)

        setattr(HttpStream, starts, start)
        setattr(HttpStream, streams, stream)


# --- hooks switched off while a feature is idle -------------------------------------------------


def switch_hooks(master: Master, addon: object, names: tuple[str, ...], on: bool) -> None:
    """Turn ``addon``'s handlers for the hooks ``names`` on or off. Call on the proxy's loop.

    mitmproxy calls each addon with a handler once per hook (a context manager, a coroutine, a generator: microseconds
    each, several hooks per request) even if the handler returns at once. Off, an instance attribute of None shadows
    the method: mitmproxy's own manager skips it (its ``getattr`` finds nothing callable) and proxycap's leaves the
    addon out of the hook's list once told to look again.
    """
    for name in names:
        if on:
            vars(addon).pop(name, None)
        else:
            setattr(addon, name, None)
    if isinstance(master.addons, QuickAddonManager):
        master.addons.refresh()


# --- a connection's writes paced to a rate ------------------------------------------------------

PACE_TICK = 0.02  # seconds of data written at a time while pacing
PACE_MIN_CHUNK = 512
PACE_HIGH_WATER = 64 * 1024  # buffered bytes above which mitmproxy's drain waits (its backpressure)


class PacedWriter:
    """Stands in for a connection's ``asyncio.StreamWriter`` in mitmproxy's connection handler, which writes to it
    (``write``, ``write_eof``, ``close``, ``is_closing``), waits on it (``drain``) before it reads more from any of the
    connection's peers, and asks it about the socket (``get_extra_info``).

    While ``rate()`` is None writes go straight through. Otherwise they wait in a buffer that a task on the loop
    writes out ``rate()`` bytes a second, a tick's worth at a time, without blocking the loop; ``drain`` waits while
    the buffer is full, so mitmproxy reads from the other side only as fast as this side is paced (as it does for a
    slow client). A close or half-close waits for the buffer to go out. ``active()`` is called as bytes go out, for
    mitmproxy's idle timeout: a long paced transfer is not idle.
    """

    def __init__(self, writer: Any, rate: Callable[[], float | None], active: Callable[[], None]) -> None:
        self.writer = writer
        self.rate = rate
        self._active = active
        self._buffer = bytearray()
        self._pump: asyncio.Task[None] | None = None
        self._room = asyncio.Event()
        self._room.set()
        self._close = False
        self._eof = False

    def write(self, data: bytes) -> None:
        if self._pump is None and self.rate() is None:
            self.writer.write(data)
            return
        self._buffer += data
        if len(self._buffer) > PACE_HIGH_WATER:
            self._room.clear()
        if self._pump is None:
            self._pump = asyncio.get_running_loop().create_task(self._run())

    async def drain(self) -> None:
        if self._pump is None:
            await self.writer.drain()
        else:
            await self._room.wait()

    def is_closing(self) -> bool:
        return self._close or self.writer.is_closing()

    def close(self) -> None:
        self._close = True
        if self._pump is None:
            self.writer.close()

    def write_eof(self) -> None:
        if self._pump is None:
            self.writer.write_eof()
        else:
            self._eof = True

    def can_write_eof(self) -> bool:
        return self.writer.can_write_eof()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.writer.get_extra_info(name, default)

    async def wait_closed(self) -> None:
        await self.writer.wait_closed()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        start, sent, paced_at = loop.time(), 0, self.rate()
        try:
            while self._buffer and not self.writer.is_closing():
                rate = self.rate()
                if rate is None:  # no longer paced: the rest at once
                    self.writer.write(bytes(self._buffer))
                    self._buffer.clear()
                    break
                if rate != paced_at:  # a new rate counts from now
                    start, sent, paced_at = loop.time(), 0, rate
                n = max(PACE_MIN_CHUNK, int(rate * PACE_TICK))
                self.writer.write(bytes(self._buffer[:n]))
                del self._buffer[:n]
                sent += n
                self._active()
                if len(self._buffer) <= PACE_HIGH_WATER // 4:
                    self._room.set()
                await self.writer.drain()
                if (delay := start + sent / rate - loop.time()) > 0:
                    await asyncio.sleep(delay)
        except (OSError, RuntimeError):  # the peer is gone: what is left cannot be delivered
            pass
        finally:
            self._buffer.clear()
            self._room.set()
            self._pump = None
            if self._close:
                self.writer.close()
            elif self._eof and not self.writer.is_closing():
                with contextlib.suppress(OSError, RuntimeError):
                    self.writer.write_eof()


def pace_connection(master: Master, client_id: str, rates: Callable[[bool], float | None]) -> bool:
    """Pace the writes of a client's connection (``rates(False)``: bytes a second towards the client) and of its open
    server connections (``rates(True)``: towards the servers). Idempotent: call it again for a server connection
    opened since. Call on the proxy's loop; False if the client's connection is gone."""
    ps = master.addons.get("proxyserver")
    handler = ps.connections.get(client_id) if ps is not None else None
    if handler is None:
        return False
    for conn, io in handler.transports.items():
        # TCP only: a UDP transport (QUIC, DNS) writes datagrams, which must not be cut into a tick's worth.
        if io.writer is not None and conn.transport_protocol == "tcp" and not isinstance(io.writer, PacedWriter):
            upload = conn is not handler.client
            active = handler.timeout_watchdog.register_activity
            io.writer = PacedWriter(io.writer, functools.partial(rates, upload), active)
    return True


# --- mitmproxy's curl and HTTPie exports ------------------------------------------------------

_options_swap = threading.Lock()
BODY_MARK = "proxycap-body-goes-here"  # a shell word that neither export quotes or escapes
_BODY_ARG = {"curl": f" -d {BODY_MARK}", "httpie": f" <<< {BODY_MARK}"}


@contextlib.contextmanager
def _export_options() -> Iterator[None]:
    """``export.curl_command`` reads ``ctx.options.export_preserve_original_ip``: ``ctx.options`` is set by a
    Master, which ``tui --open`` (and a UI attached to another process) does not run. Without it (or without the
    export addon's option), its default stands in for the call; a running proxy's own option is used as it is."""
    current = getattr(ctx, "options", None)
    if current is not None and "export_preserve_original_ip" in current:
        yield
        return
    with _options_swap:
        ctx.options = SimpleNamespace(export_preserve_original_ip=False)  # type: ignore[assignment]
        try:
            yield
        finally:
            if current is None:
                del ctx.options
            else:
                ctx.options = current


def command_head(kind: Literal["curl", "httpie"], flow: http.HTTPFlow) -> str:
    """mitmproxy's curl or HTTPie command for the flow's request (method, URL, headers, ``--compressed``,
    ``--resolve``), less the body, which the caller adds: mitmproxy's own body argument corrupts text with control
    characters (11 writes them as ``\\x0a``, 12 through ``printf``, which also reads ``%`` and backslashes) and
    refuses binary bodies. The body is swapped for a plain word, whose argument is then cut off."""
    make = export.curl_command if kind == "curl" else export.httpie_command
    probe = flow.copy()
    if probe.request.raw_content:
        probe.request.decode(strict=False)
        probe.request.content = BODY_MARK.encode()
    with _export_options():
        command = make(probe)
    if not probe.request.raw_content:
        return command
    if not command.endswith(_BODY_ARG[kind]):
        raise RuntimeError(f"mitmproxy's {kind} export no longer ends with its body argument: {command!r}")
    return command.removesuffix(_BODY_ARG[kind])

"""Where proxycap leans on mitmproxy's internals: every such piece is here, and tests/test_internals_mitmproxy.py
shows that each behaves as mitmproxy's own code does.

- ``QuickMaster``: mitmproxy's ``Master`` with an addon manager that skips addons without a handler for a hook.
- ``snapshot``: ``flow.get_state()`` with the connections' states taken from a cache.
- ``listen_failure`` and ``close_client_connections``: the proxy server's listeners and connections.
- ``command_head``: mitmproxy's curl and HTTPie exports without a running Master, and without the body.

The addon manager. For every hook, and again for the ``update`` hook after every flow hook, mitmproxy's
``trigger_event`` walks the whole addon chain (30-odd default addons) and, for each one, enters a context manager,
creates and awaits a coroutine and walks a generator, although a given hook has a handler in a handful of them. That
is ~35 µs per hook on this project's bench machine, 8 hooks per keep-alive request: a quarter of the proxy thread's
time per request (bench/RESULTS.md, "Addon dispatch"). Skipping the addons without a handler, before any of that,
changes nothing else: the ones with a handler, and any addon with children (the script loader), go through
mitmproxy's own path. Which addons those are is worked out once per hook, and again when the chain changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
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

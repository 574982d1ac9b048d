"""Recorder addon: turns mitmproxy hooks into flow events on proxycap's bus.

The engine hands it the session's bus (in stock mitmproxy tools, ``control/standalone.py`` does). Every hook here
runs on the proxy's event loop, so each does O(1) work: summarise, publish, return.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable
from typing import Any

from mitmproxy import connection, ctx, exceptions, flow, http, tls
from mitmproxy.proxy import server_hooks
from mitmproxy.utils import human

from proxycap.capture.bus import Bus, ClientEvent, FlowEvent, LogEvent
from proxycap.capture.flowstate import ConnectionStates
from proxycap.capture.hints import upstream_tls_hint
from proxycap.capture.processes import ProcessNames, is_local, local_addresses
from proxycap.capture.summary import META_LOCAL, META_PROCESS, peer, summarize
from proxycap.internals.mitmproxy import snapshot

BACKLOG_POLL = 0.01  # seconds between looks at the store's backlog while flows wait for it

# A request is published on its own only if its response (or error) takes longer than this: in flight, it shows
# as such. Most responses come sooner and their event says it all, which spares the proxy a summary per flow.
REQUEST_DELAY = 0.05

# Snapshot a long-lived WebSocket's full state at most this often; messages in between only bump counters.
WS_SNAPSHOT_INTERVAL = 1.0

DEFAULT_BACKLOG = "32m"

CA_HINT = "run `proxycap ca` for how to trust proxycap's CA on that device"
STOPPED = "proxycap stopped before this flow finished"

LOOKING_UP = "…"  # a client connection's program while it is being looked up


class Recorder:
    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self._connects: dict[str, http.HTTPFlow] = {}  # client id → its CONNECT flow, to record TLS failures
        self._ws_snapshot: dict[str, float] = {}
        # Requests not published yet: flow id → (flow, the timer that publishes it).
        self._requests: dict[str, tuple[http.HTTPFlow, asyncio.TimerHandle]] = {}
        self._conns = ConnectionStates()
        self._backlog_limit = human.parse_size(DEFAULT_BACKLOG)
        # Flows waiting for their response, and open WebSockets: what a stopping proxy waits for, then ends.
        self._live: dict[str, http.HTTPFlow] = {}
        self._websockets: dict[str, http.HTTPFlow] = {}
        self._ended: set[str] = set()  # ended here at shutdown: what mitmproxy says of them afterwards is not kept
        # Local clients' programs: client id → "name (pid)" or LOOKING_UP. Flows go out at once; those published
        # while their program was looked up (client id → flow id → flow) are named again when it is known.
        self._names = ProcessNames(self._named_from_thread)
        self._local: frozenset[str] = frozenset()
        self._process: dict[str, str] = {}
        self._unnamed: dict[str, dict[str, http.HTTPFlow]] = {}
        self._lookups = True  # proxycap_processes
        self._loop: asyncio.AbstractEventLoop | None = None

    def load(self, loader: Any) -> None:
        loader.add_option(
            "proxycap_processes",
            bool,
            True,
            "Name local clients by the program that opened the connection (process name and PID).",
        )
        loader.add_option(
            "proxycap_backlog",
            str,
            DEFAULT_BACKLOG,
            "When this much captured data (bodies, roughly) waits for the store, finishing flows wait until half "
            "of it is stored: the proxy slows to the store's pace instead of holding bodies in memory. "
            "Size with an optional unit: 512k, 32m, 1g.",
        )

    def configure(self, updated: set[str]) -> None:
        if "proxycap_processes" in updated:
            self._lookups = ctx.options.proxycap_processes
        if "proxycap_backlog" in updated:
            try:
                limit = human.parse_size(ctx.options.proxycap_backlog)
            except ValueError as e:
                raise exceptions.OptionsError(f"proxycap_backlog: {e}") from None
            if not limit:
                raise exceptions.OptionsError("proxycap_backlog must be a size above zero, such as 32m")
            self._backlog_limit = limit

    def running(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._local = local_addresses()

    def done(self) -> None:
        self._names.close()
        self.end_in_flight(STOPPED)
        self._unnamed.clear()  # names that did not come in time: stored without them

    def in_flight(self) -> int:
        """HTTP flows still waiting for their response (open WebSockets do not count: they may last for ever)."""
        return len(self._live)

    def end_in_flight(self, reason: str) -> None:
        """Shutting down: every flow in flight and open WebSocket ends as an error with ``reason``, so none is left
        live in the store. On the engine's loop."""
        ending = [*self._live.values(), *self._websockets.values()]
        self._live.clear()
        self._websockets.clear()
        for f in ending:
            f.error = flow.Error(reason)
            self._publish("error", f)
            self._ended.add(f.id)

    # --- publishing -----------------------------------------------------------------------------

    def _publish(self, kind: Any, f: http.HTTPFlow, with_state: bool = True) -> Awaitable[None] | None:
        """Publish; if the store is behind, return an awaitable that mitmproxy awaits before the flow goes on.

        Hooks stay synchronous (cheaper for mitmproxy to call) unless there is something to wait for. A flow whose
        client's program is still being looked up goes out without it, and again (its summary) once it is known.
        """
        if f.id in self._ended:  # ended at shutdown: mitmproxy's later word on it is not the reason
            return None
        if (pending := self._requests.pop(f.id, None)) is not None:  # this event says more than the request's
            pending[1].cancel()
        if META_LOCAL in f.metadata:  # proxycap's own answer (setup page, refusal): not traffic
            return None
        process = self._process.get(f.client_conn.id)
        if process is LOOKING_UP:
            self._unnamed.setdefault(f.client_conn.id, {})[f.id] = f
        elif process is not None:
            f.metadata[META_PROCESS] = process
        self._send(kind, f, with_state)
        if with_state and self.bus.backlog() > self._backlog_limit:
            return self._wait_for_store()
        return None

    def _send(self, kind: Any, f: http.HTTPFlow, with_state: bool) -> None:
        state = snapshot(f, self._conns) if with_state else None
        # With only the store writer listening, its child makes the summary from the state, off the proxy's thread
        # (bench/RESULTS.md, "Summaries").
        summary = summarize(f) if state is None or self.bus.wants_summaries else None
        self.bus.publish(FlowEvent(kind, f.id, summary, state))

    async def _wait_for_store(self) -> None:
        while self.bus.backlog() > self._backlog_limit // 2:
            await asyncio.sleep(BACKLOG_POLL)

    # --- HTTP -----------------------------------------------------------------------------------

    def requestheaders(self, f: http.HTTPFlow) -> None:
        self._live[f.id] = f  # proxycap's own answers never get here (the access addon halts them)

    def request(self, f: http.HTTPFlow) -> None:
        if META_LOCAL in f.metadata:
            return
        timer = asyncio.get_running_loop().call_later(REQUEST_DELAY, self._publish_request, f)
        self._requests[f.id] = (f, timer)

    def _publish_request(self, f: http.HTTPFlow) -> None:
        del self._requests[f.id]
        # Summary only, cheaper on the proxy's thread: the full state follows with the response or error
        # (bench/RESULTS.md, "Summaries").
        self._publish("request", f, with_state=False)

    def response(self, f: http.HTTPFlow) -> Awaitable[None] | None:
        self._live.pop(f.id, None)
        return self._publish("response", f)

    def error(self, f: http.HTTPFlow) -> Awaitable[None] | None:
        self._live.pop(f.id, None)
        self._websockets.pop(f.id, None)
        return self._publish("error", f)

    def http_connect(self, f: http.HTTPFlow) -> None:
        self._live.pop(f.id, None)  # a tunnel: what goes through it is in flight, not the tunnel itself
        self._connects[f.client_conn.id] = f

    def http_connect_error(self, f: http.HTTPFlow) -> Awaitable[None] | None:
        """A tunnel that never opened (upstream unreachable): Fiddler shows these, mitmproxy's hooks skip them."""
        self._connects.pop(f.client_conn.id, None)
        if not f.error:
            detail = f"{f.response.status_code} {f.response.reason}" if f.response else "no response"
            f.error = flow.Error(f"CONNECT to {f.request.host}:{f.request.port} failed: {detail}")
        return self._publish("error", f)

    def proxycap_interception(self, f: http.HTTPFlow) -> None:
        """Stopped at a breakpoint, or resumed: published as it is now, so the store shows it stopped, then as it was
        sent on (a response stopped after this addon published it would otherwise stay stored as stopped)."""
        kind = "error" if f.error else "response" if f.response else "request"
        self._publish(kind, f, with_state=kind != "request")

    # --- WebSocket ------------------------------------------------------------------------------

    def websocket_start(self, f: http.HTTPFlow) -> Awaitable[None] | None:
        self._websockets[f.id] = f
        self._ws_snapshot[f.id] = time.monotonic()
        return self._publish("websocket", f)

    def websocket_message(self, f: http.HTTPFlow) -> Awaitable[None] | None:
        now = time.monotonic()
        snapshot = now - self._ws_snapshot.get(f.id, 0.0) >= WS_SNAPSHOT_INTERVAL
        if snapshot:
            self._ws_snapshot[f.id] = now
        return self._publish("websocket", f, with_state=snapshot)

    def websocket_end(self, f: http.HTTPFlow) -> Awaitable[None] | None:
        self._websockets.pop(f.id, None)
        self._ws_snapshot.pop(f.id, None)
        return self._publish("websocket_end", f)

    # --- connections ----------------------------------------------------------------------------

    def client_connected(self, client: connection.Client) -> None:
        ip, port = peer(client.peername)
        self.bus.publish(ClientEvent(time.time(), ip, port, connected=True))
        if port is not None and client.sockname and self._lookups and is_local(ip, self._local):
            self._process[client.id] = LOOKING_UP
            self._names.lookup(client.id, (ip, port), client.sockname)

    def client_disconnected(self, client: connection.Client) -> None:
        self._connects.pop(client.id, None)
        if self._process.get(client.id) is LOOKING_UP and self._names.forget(client.id):
            self._release(client.id, None)  # closed before its lookup started: it would not be found
        elif client.id not in self._unnamed:  # else its flows still wait for their name
            self._process.pop(client.id, None)
        self._conns.forget(client)
        ip, port = peer(client.peername)
        self.bus.publish(ClientEvent(time.time(), ip, port, connected=False))

    def server_disconnected(self, data: server_hooks.ServerConnectionHookData) -> None:
        self._conns.forget(data.server)

    # --- client programs ------------------------------------------------------------------------

    def _named_from_thread(self, names: dict[str, str | None]) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: done() released what was held
                loop.call_soon_threadsafe(self._named, names)

    def _named(self, names: dict[str, str | None]) -> None:
        for client_id, name in names.items():
            if self._process.get(client_id) is LOOKING_UP:
                self._release(client_id, name)

    def _release(self, client_id: str, name: str | None) -> None:
        """A client's program is known (or will not be): the flows that went out without it get it."""
        if name:
            self._process[client_id] = name
        else:
            self._process.pop(client_id, None)
        unnamed = self._unnamed.pop(client_id, {})
        client = None
        for f in unnamed.values():
            client = f.client_conn
            if name and f.id not in self._ended:
                f.metadata[META_PROCESS] = name
                self._send("named", f, with_state=False)  # its summary again (a live row too); the state stays
        if client is not None and client.timestamp_end is not None:  # it closed while its name was looked up
            self._process.pop(client_id, None)

    def tls_failed_server(self, data: tls.TlsData) -> None:
        """mitmproxy logs only the error; say what to do about an origin whose certificate cannot be verified."""
        server = data.conn
        reason = server.error or "handshake failed"
        where = server.sni or (human.format_address(server.address) if server.address else "?")
        hint = upstream_tls_hint(reason)
        message = f"TLS handshake with server {where} failed: {reason}" + (f"; {hint}" if hint else "")
        self.bus.publish(LogEvent(time.time(), "WARNING", message, peer(data.context.client.peername)[0] or None))

    def tls_failed_client(self, data: tls.TlsData) -> Awaitable[None] | None:
        """Record the failed tunnel as a flow with an error, so the user sees which device lacks the CA."""
        client = data.context.client
        ip = peer(client.peername)[0]
        reason = client.error or "handshake failed"
        message = f"TLS handshake with client {ip} for {client.sni or '?'} failed: {reason}; {CA_HINT}"
        f = self._connects.pop(client.id, None)
        self.bus.publish(LogEvent(time.time(), "WARNING", message, ip, f.id if f else None))
        if f is None:
            return None
        f.error = flow.Error(message)
        return self._publish("error", f)

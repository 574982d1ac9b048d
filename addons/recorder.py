"""Recorder addon: turns mitmproxy hooks into flow events on proxycap's bus.

Inside proxycap the engine hands it the app's bus. Loaded into stock mitmproxy tools
(``mitmdump -s addons/recorder.py --set proxycap_store=PATH``) it owns a bus and a store writer itself.
Every hook here runs on the proxy's event loop, so each does O(1) work: summarise, publish, return.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from mitmproxy import connection, ctx, exceptions, flow, http, tls
from mitmproxy.proxy import server_hooks
from mitmproxy.utils import human

from proxycap.capture.bus import Bus, ClientEvent, FlowEvent, LogEvent
from proxycap.capture.flowstate import ConnectionStates
from proxycap.capture.summary import META_STREAMED, peer, summarize
from proxycap.internals.mitmproxy import snapshot

BACKLOG_POLL = 0.01  # seconds between looks at the store's backlog while flows wait for it

# A request is published on its own only if its response (or error) takes longer than this: in flight, it shows
# as such. Most responses come sooner and their event says it all, which spares the proxy a summary per flow.
REQUEST_DELAY = 0.05

# Snapshot a long-lived WebSocket's full state at most this often; messages in between only bump counters.
WS_SNAPSHOT_INTERVAL = 1.0

DEFAULT_BACKLOG = "32m"

CA_HINT = "run `proxycap ca` for how to trust proxycap's CA on that device"


def _count_streamed(f: http.HTTPFlow, which: str) -> Callable[[bytes], bytes]:
    """A pass-through ``stream`` callable that counts the bytes mitmproxy forwards without keeping them."""
    sizes: dict[str, int | None] = f.metadata.setdefault(META_STREAMED, {})
    sizes[which] = 0

    def count(chunk: bytes) -> bytes:
        sizes[which] = (sizes[which] or 0) + len(chunk)
        return chunk

    return count


class Recorder:
    def __init__(self, bus: Bus | None = None) -> None:
        self.bus = bus or Bus()
        self._standalone = bus is None
        self._writer: Any = None  # StoreWriter when standalone
        self._connects: dict[str, http.HTTPFlow] = {}  # client id → its CONNECT flow, to record TLS failures
        self._ws_snapshot: dict[str, float] = {}
        # Requests not published yet: flow id → (flow, the timer that publishes it).
        self._requests: dict[str, tuple[http.HTTPFlow, asyncio.TimerHandle]] = {}
        self._conns = ConnectionStates()
        self._backlog_limit = human.parse_size(DEFAULT_BACKLOG)

    def load(self, loader: Any) -> None:
        loader.add_option(
            "proxycap_store",
            str,
            "",
            "Record flows into this proxycap store (SQLite). Only used when loaded into plain mitmproxy tools.",
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
        if "proxycap_backlog" in updated:
            try:
                limit = human.parse_size(ctx.options.proxycap_backlog)
            except ValueError as e:
                raise exceptions.OptionsError(f"proxycap_backlog: {e}") from None
            if not limit:
                raise exceptions.OptionsError("proxycap_backlog must be a size above zero, such as 32m")
            self._backlog_limit = limit
        if self._standalone and "proxycap_store" in updated and ctx.options.proxycap_store:
            from proxycap.storage.store import StoreError
            from proxycap.storage.writer import StoreWriter

            if self._writer:
                self._writer.stop()
            self._writer = StoreWriter(Path(ctx.options.proxycap_store), self.bus)
            try:
                self._writer.start()
            except StoreError as e:
                self._writer = None
                raise exceptions.OptionsError(str(e)) from None

    def done(self) -> None:
        for f, timer in list(self._requests.values()):  # shutting down: what is in flight is stored as such
            timer.cancel()
            self._publish_request(f)
        if self._writer:
            self._writer.stop()
            self._writer = None

    # --- publishing -----------------------------------------------------------------------------

    def _publish(self, kind: Any, f: http.HTTPFlow, with_state: bool = True) -> Awaitable[None] | None:
        """Publish; if the store is behind, return an awaitable that mitmproxy awaits before the flow goes on.

        Hooks stay synchronous (cheaper for mitmproxy to call) unless there is something to wait for.
        """
        if (pending := self._requests.pop(f.id, None)) is not None:  # this event says more than the request's
            pending[1].cancel()
        state = snapshot(f, self._conns) if with_state else None
        # With only the store writer listening, its child makes the summary from the state (record: +5 % req/s).
        summary = summarize(f) if state is None or self.bus.wants_summaries else None
        self.bus.publish(FlowEvent(kind, f.id, summary, state))
        if with_state and self.bus.backlog() > self._backlog_limit:
            return self._wait_for_store()
        return None

    async def _wait_for_store(self) -> None:
        while self.bus.backlog() > self._backlog_limit // 2:
            await asyncio.sleep(BACKLOG_POLL)

    # --- HTTP -----------------------------------------------------------------------------------

    def requestheaders(self, f: http.HTTPFlow) -> None:
        if f.request.stream is True:
            f.request.stream = _count_streamed(f, "request")

    def request(self, f: http.HTTPFlow) -> None:
        timer = asyncio.get_running_loop().call_later(REQUEST_DELAY, self._publish_request, f)
        self._requests[f.id] = (f, timer)

    def _publish_request(self, f: http.HTTPFlow) -> None:
        del self._requests[f.id]
        # Summary only: the full state follows with the response or error (measured: +5-10% throughput, bench/).
        self._publish("request", f, with_state=False)

    def responseheaders(self, f: http.HTTPFlow) -> None:
        if f.response and f.response.stream is True:
            f.response.stream = _count_streamed(f, "response")

    def response(self, f: http.HTTPFlow) -> Awaitable[None] | None:
        resp = f.response
        if resp and resp.stream and resp.raw_content is None:
            # Streamed after buffering had started (chunked body over the limit): size unknown.
            f.metadata.setdefault(META_STREAMED, {}).setdefault("response", None)
        return self._publish("response", f)

    def error(self, f: http.HTTPFlow) -> Awaitable[None] | None:
        return self._publish("error", f)

    def http_connect(self, f: http.HTTPFlow) -> None:
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
        self._ws_snapshot[f.id] = time.monotonic()
        return self._publish("websocket", f)

    def websocket_message(self, f: http.HTTPFlow) -> Awaitable[None] | None:
        now = time.monotonic()
        snapshot = now - self._ws_snapshot.get(f.id, 0.0) >= WS_SNAPSHOT_INTERVAL
        if snapshot:
            self._ws_snapshot[f.id] = now
        return self._publish("websocket", f, with_state=snapshot)

    def websocket_end(self, f: http.HTTPFlow) -> Awaitable[None] | None:
        self._ws_snapshot.pop(f.id, None)
        return self._publish("websocket_end", f)

    # --- connections ----------------------------------------------------------------------------

    def client_connected(self, client: connection.Client) -> None:
        ip, port = peer(client.peername)
        self.bus.publish(ClientEvent(time.time(), ip, port, connected=True))

    def client_disconnected(self, client: connection.Client) -> None:
        self._connects.pop(client.id, None)
        self._conns.forget(client)
        ip, port = peer(client.peername)
        self.bus.publish(ClientEvent(time.time(), ip, port, connected=False))

    def server_disconnected(self, data: server_hooks.ServerConnectionHookData) -> None:
        self._conns.forget(data.server)

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


addons = [Recorder()]

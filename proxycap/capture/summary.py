"""Compact, JSON-friendly summaries of mitmproxy flows: what the list, filters and CLI need, no bodies."""

from __future__ import annotations

import ipaddress
import time
from types import SimpleNamespace
from typing import Any

from mitmproxy import http

# Metadata keys proxycap writes on flows.
META_REPLAY_OF = "proxycap.replay_of"
META_STREAMED = "proxycap.streamed"  # {"request": n|None, "response": n|None}: bodies not captured
META_MODIFIED = "proxycap.modified"  # ["rule 'name': what it did", "breakpoint: …"]: what changed it in flight
META_PROCESS = "proxycap.process"  # the local program that opened the client connection, "name (pid)"
# Answered by proxycap itself, not traffic, so not recorded: "setup" (its setup page and CA) or "refused" (a 403 for a
# client that is not allowed).
META_LOCAL = "proxycap.local"

# Columns of a summary, in the order the store and ``proxycap flows --json`` use.
FIELDS: tuple[str, ...] = (
    "id",
    "ts",
    "client_ip",
    "client_port",
    "method",
    "scheme",
    "host",
    "port",
    "path",
    "url",
    "http_version",
    "status",
    "reason",
    "content_type",
    "request_size",
    "response_size",
    "duration_ms",
    "connect_ms",
    "tls_ms",
    "ttfb_ms",
    "sni",
    "tls_version",
    "server_ip",
    "user_agent",
    "error",
    "replay_of",
    "websocket",
    "ws_messages",
    "streamed",
    "state",
    # Added in store schema 2, filled by the features that know them:
    "process",  # the local program that opened the client connection, "name (pid)"
    "source",  # where an imported flow came from (the file), None for captured ones
    "modified",  # what changed the flow in flight (rules, breakpoints), for the list and Details
    "intercepted",  # stopped at a breakpoint right now
)


def count_streamed(flow: http.HTTPFlow, which: str, size: int) -> None:
    """Add ``size`` bytes to what ``flow``'s request or response streamed past the proxy (not captured)."""
    streamed: dict[str, int | None] = flow.metadata.setdefault(META_STREAMED, {})
    streamed[which] = (streamed.get(which) or 0) + size


def mark_modified(flow: http.HTTPFlow, what: str) -> None:
    """Note on the flow what changed it in flight (a rule, a breakpoint), for its summary's ``modified``."""
    flow.metadata.setdefault(META_MODIFIED, []).append(what)


def is_ip(text: str) -> bool:
    """An IPv4 or IPv6 address (a client's, as the user types it)."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def normalize_ip(ip: str) -> str:
    """``::ffff:1.2.3.4`` → ``1.2.3.4`` and drop an IPv6 zone id, so one device has one key."""
    ip = ip.split("%", 1)[0]
    if ip.lower().startswith("::ffff:") and "." in ip:
        return ip[7:]
    return ip


def peer(address: tuple | None) -> tuple[str, int | None]:
    if not address:
        return "", None
    return normalize_ip(str(address[0])), int(address[1]) if len(address) > 1 else None


def _ms(start: float | None, end: float | None) -> float | None:
    if start is None or end is None:
        return None
    return round(max(end - start, 0.0) * 1000, 3)


def _part(start: float | None, end: float | None, flow_start: float, flow_end: float | None) -> float | None:
    """A phase's milliseconds within the flow's own span, so no part exceeds the total: None for a phase that began
    before the flow (a connection opened earlier, for another flow or for the tunnel) or has not ended."""
    if start is None or end is None or start < flow_start:
        return None
    return _ms(start, end if flow_end is None else min(end, flow_end))


def _text(value: str | None) -> str | None:
    """mitmproxy keeps undecodable bytes of URLs and headers as lone surrogates, which SQLite cannot store."""
    if value is None or value.isascii():
        return value
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


INT64_MAX = 2**63 - 1


def _body_size(message: http.Message | None, streamed: int | None) -> int | None:
    if message is None:
        return None
    if message.raw_content is not None:
        return len(message.raw_content)
    if streamed is not None:
        return streamed
    length = message.headers.get("content-length", "")
    return min(int(length), INT64_MAX) if length.isdigit() else None  # a hostile header must not break the store


def summarize(flow: http.HTTPFlow, state: str | None = None) -> dict[str, Any]:
    """Everything the list shows about a flow; cheap enough for the proxy's per-request path."""
    req, resp = flow.request, flow.response
    client_ip, client_port = peer(flow.client_conn.peername)
    server, client = flow.server_conn, flow.client_conn
    streamed: dict[str, int | None] = flow.metadata.get(META_STREAMED) or {}
    start = req.timestamp_start
    end = resp.timestamp_end if resp and resp.timestamp_end else None
    if end is None and flow.error:
        end = flow.error.timestamp
    if end is None and flow.live:
        end = time.time()
    ws = flow.websocket
    if state is None:
        finished = resp is not None and resp.timestamp_end is not None and (ws is None or ws.timestamp_end)
        state = "error" if flow.error else ("done" if finished else "live")
    return {
        "id": flow.id,
        "ts": req.timestamp_start,
        "client_ip": client_ip,
        "client_port": client_port,
        "method": _text(req.method),
        "scheme": req.scheme,
        "host": _text(req.pretty_host),
        "port": req.port,
        "path": _text(req.path),
        "url": _text(req.pretty_url),
        "http_version": req.http_version,
        "status": resp.status_code if resp else None,
        "reason": _text(resp.reason) if resp else None,
        "content_type": _text((resp.headers.get("content-type", "") if resp else "") or None),
        "request_size": _body_size(req, streamed.get("request")),
        "response_size": _body_size(resp, streamed.get("response")),
        # Timings, all within the flow's span (request start to response end, error, or now while live): connect and
        # TLS only if this flow opened the server connection; the time to first byte from the request's end.
        "duration_ms": _ms(start, end),
        "connect_ms": _part(server.timestamp_start, server.timestamp_tcp_setup, start, end),
        "tls_ms": _part(server.timestamp_tcp_setup, server.timestamp_tls_setup, start, end),
        "ttfb_ms": _part(req.timestamp_end or start, resp.timestamp_start if resp else None, start, end),
        "sni": client.sni,
        "tls_version": client.tls_version,
        "server_ip": peer(server.peername)[0] or None,
        "user_agent": _text(req.headers.get("user-agent")),
        "error": flow.error.msg if flow.error else None,
        "replay_of": flow.metadata.get(META_REPLAY_OF),
        "websocket": ws is not None,
        "ws_messages": len(ws.messages) if ws else 0,
        "streamed": ",".join(sorted(streamed)) or None,
        "state": state,
        "process": flow.metadata.get(META_PROCESS),
        "source": None,
        "modified": "; ".join(modified) if (modified := flow.metadata.get(META_MODIFIED)) else None,
        "intercepted": flow.intercepted,
    }


def summarize_state(state: dict[str, Any]) -> dict[str, Any]:
    """``summarize`` of a flow's state (``flow.get_state()``), for the store writer's child: there the proxy's
    thread is not spent on it. Only the messages are rebuilt; the connections, most of what
    ``HTTPFlow.from_state`` would cost, are read as they are."""
    ws, error = state.get("websocket"), state.get("error")
    view = SimpleNamespace(
        id=state["id"],
        request=http.Request.from_state(state["request"]),
        response=http.Response.from_state(state["response"]) if state.get("response") else None,
        client_conn=SimpleNamespace(**state["client_conn"]),
        server_conn=SimpleNamespace(**state["server_conn"]),
        error=SimpleNamespace(**error) if error else None,
        metadata=state.get("metadata") or {},
        websocket=SimpleNamespace(**ws) if ws else None,
        live=False,  # a stored state is the flow as it was published: ended, or with its end in it
        intercepted=state.get("intercepted", False),
    )
    return summarize(view)  # type: ignore[arg-type]

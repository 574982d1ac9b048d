"""HAR 1.2 (HTTP Archive), written as browsers write it, streamed: entry by entry, never the whole capture in memory
(``har_reader`` reads it back, and other tools' files).

mitmproxy's ``savehar`` builds the whole archive in memory, and its entries for failed flows, its request bodies
and its timings break the HAR rules (no ``response.content.size``, binary bodies as lossy text, a ``time`` that is
not the sum of its parts); its HAR loader reads the whole file too, and drops request encodings, timings and
client addresses. So both directions are written here; mitmproxy's loader reading the files written here is
tested.

What HAR cannot say goes into ``_``-prefixed custom fields (the HAR convention): ``_clientIPAddress`` and
``_clientPort``, ``_flowId`` and ``_replayOf`` (a replay's original), ``_error`` on the response (as Chrome
writes it), Chrome's ``_webSocketMessages`` and ``_resourceType``, ``_encoding`` on a request body that is not text
(as a response's ``encoding``), ``_undecoded`` on a body whose Content-Encoding could not be undone.
"""

from __future__ import annotations

import base64
import json
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any, BinaryIO

from mitmproxy import http
from mitmproxy.addons.savehar import SaveHar
from mitmproxy.net.http.http1 import assemble

from proxycap import __version__
from proxycap.capture.summary import META_REPLAY_OF, META_STREAMED, peer
from proxycap.query.bodies import body_text, decoded

_SEEN_CONNECTIONS = 10_000  # server connections remembered, to give the connect time to the first flow on each
_savehar = SaveHar()  # its cookie and name/value list formatting, which need no state


class HarWriter:
    """``add`` flows one by one to an open binary file; ``close`` ends the archive."""

    needs_flow = True

    def __init__(self, fo: BinaryIO) -> None:
        self.fo = fo
        self.count = 0
        self._seen: OrderedDict[str, None] = OrderedDict()
        creator = {"name": "proxycap", "version": __version__}
        fo.write(b'{"log": {"version": "1.2", "creator": ' + json.dumps(creator).encode() + b', "entries": [\n')

    def add(self, flow: http.HTTPFlow, row: dict[str, Any] | None = None) -> None:
        entry = json.dumps(self.entry(flow), ensure_ascii=False)
        try:
            data = entry.encode()
        except UnicodeEncodeError:  # bytes mitmproxy kept as lone surrogates (headers that are not UTF-8)
            data = entry.encode("utf-8", "surrogateescape").decode("latin-1").encode()
        self.fo.write((b",\n" if self.count else b"") + data)
        self.count += 1

    def close(self) -> None:
        self.fo.write(b"\n]}}\n")

    def entry(self, flow: http.HTTPFlow) -> dict[str, Any]:
        req, resp = flow.request, flow.response
        timings = self._timings(flow)
        entry: dict[str, Any] = {
            "startedDateTime": _iso(req.timestamp_start),
            "time": round(sum(v for k, v in timings.items() if v > 0 and k != "ssl"), 3),  # ssl is within connect
            "request": {
                "method": req.method,
                "url": req.pretty_url,
                "httpVersion": req.http_version,
                "cookies": _savehar.format_multidict(req.cookies),
                "headers": _savehar.format_multidict(req.headers),
                "queryString": _savehar.format_multidict(req.query),
                "headersSize": _head_size(req),
                "bodySize": _body_size(flow, "request"),
            },
            "response": self._response(flow) if resp else _no_response(flow),
            "cache": {},
            "timings": timings,
        }
        post = _content(req, "request")
        if post is not None:
            entry["request"]["postData"] = post
        if flow.server_conn.peername:
            entry["serverIPAddress"] = peer(flow.server_conn.peername)[0]
        client_ip, client_port = peer(flow.client_conn.peername)
        if client_ip:
            entry["_clientIPAddress"], entry["_clientPort"] = client_ip, client_port
        entry["_flowId"] = flow.id
        if replay_of := flow.metadata.get(META_REPLAY_OF):
            entry["_replayOf"] = replay_of
        if flow.websocket is not None:
            entry["_resourceType"] = "websocket"
            entry["_webSocketMessages"] = [
                {
                    "type": "send" if m.from_client else "receive",
                    "time": m.timestamp,
                    "opcode": m.type.value,
                    "data": m.text if m.is_text else base64.b64encode(m.content).decode(),
                }
                for m in flow.websocket.messages
            ]
        return entry

    def _response(self, flow: http.HTTPFlow) -> dict[str, Any]:
        resp = flow.response
        assert resp is not None
        content = _content(resp, "response")
        try:
            cookies = _savehar.format_response_cookies(resp)
        except ValueError:  # a Set-Cookie mitmproxy cannot parse
            cookies = []
        out = {
            "status": resp.status_code,
            "statusText": resp.reason,
            "httpVersion": resp.http_version,
            "cookies": cookies,
            "headers": _savehar.format_multidict(resp.headers),
            "content": content or {"size": 0, "mimeType": resp.headers.get("content-type", "") or "x-unknown"},
            "redirectURL": resp.headers.get("location", ""),
            "headersSize": _head_size(resp),
            "bodySize": _body_size(flow, "response"),
        }
        if flow.error:
            out["_error"] = flow.error.msg
        return out

    def _timings(self, flow: http.HTTPFlow) -> dict[str, float]:
        """The phases in ms, each >= 0 or -1 (does not apply), and ``time`` their sum. The connection's setup counts
        for the first flow on it, if it was set up during the flow (once the proxy had read the request): it is then
        taken out of the wait. A connection opened earlier (at the client's CONNECT) is not part of the request's
        time, as for a reused one."""
        req, resp, server = flow.request, flow.response, flow.server_conn
        start = req.timestamp_start
        sent = max(req.timestamp_end or start, start)
        connect = ssl = -1.0
        first = server.id not in self._seen
        if first:
            self._seen[server.id] = None
            if len(self._seen) > _SEEN_CONNECTIONS:
                self._seen.popitem(last=False)
        if first and server.timestamp_start and server.timestamp_tcp_setup and server.timestamp_start >= start:
            ready = max(server.timestamp_tls_setup or server.timestamp_tcp_setup, server.timestamp_start)
            connect = _ms(ready - server.timestamp_start)
            if server.timestamp_tls_setup:
                ssl = _ms(server.timestamp_tls_setup - server.timestamp_tcp_setup)
        if resp is not None:
            answered = max(resp.timestamp_start, sent)
            wait = answered - sent
            receive = max((resp.timestamp_end or answered) - answered, 0.0)
        else:
            wait = max((flow.error.timestamp if flow.error else sent) - sent, 0.0)
            receive = 0.0
        return {
            "blocked": -1,
            "dns": -1,
            "connect": connect,
            "ssl": min(ssl, connect) if ssl >= 0 else -1,
            "send": _ms(sent - start),
            "wait": max(_ms(wait) - max(connect, 0), 0.0),
            "receive": _ms(receive),
        }


def _ms(seconds: float) -> float:
    return round(max(seconds, 0.0) * 1000, 3)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _head_size(message: http.Message) -> int:
    if not message.http_version.startswith("HTTP/1"):
        return -1  # HTTP/2 and 3 compress headers: browsers say -1 too
    try:
        if isinstance(message, http.Request):
            return len(assemble.assemble_request_head(message)) + 2
        return len(assemble.assemble_response_head(message)) + 2  # type: ignore[arg-type]
    except ValueError:
        return -1


def _body_size(flow: http.HTTPFlow, which: str) -> int:
    message: http.Message = getattr(flow, which)
    if message.raw_content is not None:
        return len(message.raw_content)
    streamed = (flow.metadata.get(META_STREAMED) or {}).get(which)
    return streamed if streamed is not None else -1


def _content(message: http.Message, which: str) -> dict[str, Any] | None:
    """A response's ``content`` or a request's ``postData`` (None for a request without a body): the body with its
    Content-Encoding undone, as text, or base64 if it is not text."""
    content, ok = decoded(message)
    mime = message.headers.get("content-type", "")
    if which == "request" and not content and content is not None:
        return None
    out: dict[str, Any] = {"mimeType": mime} if which == "request" else {"size": 0, "mimeType": mime or "x-unknown"}
    if content is None:
        out["comment"] = "body not captured (streamed)"
        return out
    if which == "response":
        out["size"] = len(content)
        if ok and message.raw_content is not None and len(content) != len(message.raw_content):
            out["compression"] = len(content) - len(message.raw_content)
    text = body_text(content, mime)
    if text is not None:
        out["text"] = text
    else:
        out["text"] = base64.b64encode(content).decode()
        out["encoding" if which == "response" else "_encoding"] = "base64"
    if not ok:
        out["_undecoded"] = True
    if which == "request" and isinstance(message, http.Request) and message.urlencoded_form:
        out["params"] = _savehar.format_multidict(message.urlencoded_form)
    return out


def _no_response(flow: http.HTTPFlow) -> dict[str, Any]:
    """A flow that got no response, as Chrome writes a failed request (status 0 and its ``_error``), with the
    fields the HAR rules require (mitmproxy's own ``savehar`` leaves ``content`` empty)."""
    return {
        "status": 0,
        "statusText": "",
        "httpVersion": "",
        "cookies": [],
        "headers": [],
        "content": {"size": 0, "mimeType": "x-unknown"},
        "redirectURL": "",
        "headersSize": -1,
        "bodySize": -1,
        "_error": flow.error.msg if flow.error else "no response",
    }

"""HAR 1.2 (HTTP Archive) read as browsers and other tools write it (Chrome, Firefox, Safari, Charles,
WebPageTest, Firebug), streamed entry by entry with ijson: never the whole file in memory. The ``_``-prefixed custom
fields ``har_writer`` writes are read back; a broken entry stops the import with its number and what is wrong.
"""

from __future__ import annotations

import base64
import binascii
import urllib.parse
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any, BinaryIO

import ijson
from mitmproxy import connection, http, websocket
from mitmproxy import flow as mflow
from mitmproxy.net.http import status_codes, url
from wsproto.frame_protocol import Opcode

from proxycap.capture.summary import META_REPLAY_OF
from proxycap.exchange import ExchangeError
from proxycap.exchange.messages import (
    client_connection,
    encode_as_sent,
    new_flow,
    not_captured,
    parse_time,
    server_connection,
)
from proxycap.query.bodies import text_bytes


class _EntryError(ValueError):
    """What is wrong with one entry (the reader adds which entry)."""


def read_har(fo: BinaryIO, name: str) -> Iterator[http.HTTPFlow]:
    """The flows of a HAR file (1.1 or 1.2, from browsers and other tools), one entry at a time: the file is
    streamed (memory stays bounded whatever its size). ExchangeError names the file and the entry at fault."""
    if fo.read(3) != b"\xef\xbb\xbf":  # the BOM some writers (Fiddler, Windows tools) put first
        fo.seek(0)
    start = fo.tell()
    ids: dict[str, str] = {}  # the file's flow ids → the new ones (imports get fresh ids; replays keep their link)
    conns = _Connections()
    n = 0
    try:
        for n, entry in enumerate(ijson.items(fo, "log.entries.item", use_float=True), 1):
            try:
                yield _entry_flow(entry, ids, conns)
            except (_EntryError, KeyError, TypeError, ValueError, AttributeError) as e:
                raise ExchangeError(f"{name}: entry {n}: {_why(e)}") from None
    except ijson.JSONError as e:
        where = f" after entry {n}" if n else ""
        if isinstance(e, ijson.IncompleteJSONError) and "premature EOF" in str(e):
            raise ExchangeError(f"{name}: the file ends too early{where} (truncated?)") from None
        raise ExchangeError(f"{name}: not valid JSON{where} ({_first_line(e)})") from None
    if n == 0:
        fo.seek(start)
        if not _has_entries(fo):
            raise ExchangeError(f"{name}: not a HAR file (no log.entries)")


def _has_entries(fo: BinaryIO) -> bool:
    try:
        return any(p == "log.entries" and e == "start_array" for p, e, _ in ijson.parse(fo))
    except ijson.JSONError:
        return False


def _first_line(e: Exception) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


def _why(e: Exception) -> str:
    if isinstance(e, KeyError):
        return f"{e.args[0]} is missing"
    return _first_line(e)


def _get(obj: dict[str, Any], path: str, kind: type | tuple[type, ...], default: Any = KeyError) -> Any:
    value: Any = obj
    for key in path.split("."):
        if not isinstance(value, dict):
            raise _EntryError(f"{path} is missing")
        if key not in value or value[key] is None:
            if default is KeyError:
                raise _EntryError(f"{path} is missing")
            return default
        value = value[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise _EntryError(f"{path} is not a {getattr(kind, '__name__', 'value of the right type')}: {value!r:.60}")
    return value


def _parse_time(text: str) -> float:
    try:
        return parse_time(text, naive_utc=True)
    except ValueError:
        raise _EntryError(f"startedDateTime is not a date and time: {text!r:.40}") from None


_VERSIONS = {"HTTP/2": "HTTP/2.0", "H2": "HTTP/2.0", "HTTP/2.0": "HTTP/2.0", "H3": "HTTP/3", "HTTP/3": "HTTP/3"}


def _version(text: str) -> str:
    v = text.strip().upper()
    if v in _VERSIONS:
        return _VERSIONS[v]
    return v if v in ("HTTP/1.0", "HTTP/1.1", "HTTP/0.9") else "HTTP/1.1"


def _headers(message: dict[str, Any], where: str) -> http.Headers:
    fields = []
    headers = message.get("headers") or []
    if not isinstance(headers, list):
        raise _EntryError(f"{where}.headers is not a list")
    for h in headers:
        if isinstance(h, dict):
            name, value = h.get("name"), h.get("value", "")
        elif isinstance(h, list | tuple) and len(h) == 2:  # [name, value], as some tools write them
            name, value = h
        else:
            raise _EntryError(f"{where}.headers has an entry that is not a name and value: {h!r:.60}")
        if not isinstance(name, str) or not isinstance(value, str):
            raise _EntryError(f"{where}.headers has a name or value that is not text: {h!r:.60}")
        if name.startswith(":"):  # HTTP/2 pseudo-headers (Chrome lists them): the URL and status say it
            continue
        fields.append((name.encode("utf-8", "surrogateescape"), value.encode("utf-8", "surrogateescape")))
    return http.Headers(fields)


def _body(body: dict[str, Any] | None, headers: http.Headers, where: str) -> tuple[bytes | None, int | None]:
    """A body as transferred (its Content-Encoding applied again), or None and its size if the file lacks it."""
    if body is None:
        return b"", None
    text = body.get("text")
    size = body.get("size")
    if text is None:
        return (b"", None) if not isinstance(size, int) or size <= 0 else (None, size)
    if not isinstance(text, str):
        raise _EntryError(f"{where}.text is not text")
    if (body.get("encoding") or body.get("_encoding")) == "base64":
        try:
            data = base64.b64decode(text, validate=False)
        except (binascii.Error, ValueError):
            raise _EntryError(f"{where}.text is not valid base64") from None
    else:
        data = text_bytes(text, body.get("mimeType") or headers.get("content-type", ""))
    return (data if body.get("_undecoded") else encode_as_sent(headers, data)), None


class _Connections:
    """The connections of a file's flows, shared as the file says they were: one per client address, and per server
    until an entry says it connected anew (``connect`` >= 0; browsers write -1 for a reused connection). Storing
    a connection once, not once per flow, is most of what a fast import is. Bounded: the most recent are kept."""

    LIMIT = 1000

    def __init__(self) -> None:
        self._clients: OrderedDict[Any, connection.Client] = OrderedDict()
        self._servers: OrderedDict[Any, connection.Server] = OrderedDict()

    def client(self, address: tuple[str, int] | None, start: float) -> connection.Client:
        conn = self._clients.get(address)
        if conn is None:
            conn = self._clients[address] = client_connection(address, start)
            self._trim(self._clients)
        return conn

    def server(self, ip: str, port: int, connect: float, ssl: float, request: http.Request) -> connection.Server:
        key = (ip, port, request.host)
        conn = self._servers.get(key)
        if conn is None or connect >= 0:
            conn = self._servers[key] = server_connection((ip, port) if ip else None)
            self._trim(self._servers)
            if connect >= 0 and ip:
                conn.timestamp_start = request.timestamp_end
                conn.timestamp_tcp_setup = conn.timestamp_start + max(connect - max(ssl, 0), 0) / 1000
                if ssl >= 0:
                    conn.timestamp_tls_setup = conn.timestamp_tcp_setup + ssl / 1000
        return conn

    def _trim(self, conns: OrderedDict[Any, Any]) -> None:
        if len(conns) > self.LIMIT:
            conns.popitem(last=False)


def _entry_flow(entry: Any, ids: dict[str, str], conns: _Connections) -> http.HTTPFlow:
    if not isinstance(entry, dict):
        raise _EntryError("not an object")
    started = _parse_time(_get(entry, "startedDateTime", str))
    req_json = _get(entry, "request", dict)
    method = _get(entry, "request.method", str)
    target = _get(entry, "request.url", str)
    req_headers = _headers(req_json, "request")
    version = _version(_get(entry, "request.httpVersion", str, ""))
    if not target.isascii():  # browsers write some URLs with their characters, not percent-encoded
        target = urllib.parse.quote(target, safe="!#$%&'()*+,-./:;=?@[]~_|^`{}")
    try:
        scheme, host, port, path = url.parse(target)
    except ValueError as e:
        raise _EntryError(f"request.url {target!r:.80} is not a URL ({e})") from None
    post = _get(entry, "request.postData", dict, None)
    req_body, req_missing = _body(post, req_headers, "request.postData")
    if post is None and _get(entry, "request.bodySize", int, 0) > 0:
        req_body, req_missing = None, req_json["bodySize"]

    timings = _get(entry, "timings", dict, {})
    part = {k: float(v) for k in ("blocked", "dns", "connect", "ssl", "send", "wait", "receive")
            if isinstance(v := timings.get(k), int | float) and not isinstance(v, bool)}  # fmt: skip
    total = _get(entry, "time", float, -1.0)
    if total < 0:
        total = sum(v for k, v in part.items() if v > 0 and k != "ssl")
    send = max(part.get("send", 0.0), 0.0) / 1000
    receive = min(max(part.get("receive", 0.0), 0.0) / 1000, total / 1000)
    request = http.Request(
        host=host.decode("utf-8", "surrogateescape"),
        port=port,
        method=method.encode(),
        scheme=scheme,
        authority=b"",
        path=path,
        http_version=version.encode(),
        headers=req_headers,
        content=req_body,
        trailers=None,
        timestamp_start=started,
        timestamp_end=started + min(send, total / 1000),
    )
    server_ip = _get(entry, "serverIPAddress", str, "").strip("[]")
    client_ip = _get(entry, "_clientIPAddress", str, "")
    client = (client_ip, _get(entry, "_clientPort", int, 0)) if client_ip else None
    connect, ssl = part.get("connect", -1.0), part.get("ssl", -1.0)
    flow = new_flow(request, conns.client(client, started), conns.server(server_ip, port, connect, ssl, request))
    if req_missing is not None:
        not_captured(flow, "request", req_missing)

    resp_json = _get(entry, "response", dict)
    status = _get(entry, "response.status", int)
    end = started + total / 1000
    error = resp_json.get("_error") or entry.get("_error")
    if status > 0:
        resp_headers = _headers(resp_json, "response")
        content = _get(entry, "response.content", dict, None)
        resp_body, resp_missing = _body(content, resp_headers, "response.content")
        stated = _get(entry, "response.httpVersion", str, "")
        resp_version = _version(stated) if stated else version
        reason = _get(entry, "response.statusText", str, "")
        if not resp_version.startswith("HTTP/1"):
            reason = ""  # HTTP/2 has no reason phrase (mitmproxy keeps it empty)
        elif not reason:
            reason = status_codes.RESPONSES.get(status, "")
        flow.response = http.Response(
            http_version=resp_version.encode(),
            status_code=status,
            reason=reason.encode("utf-8", "surrogateescape"),
            headers=resp_headers,
            content=resp_body,
            trailers=None,
            timestamp_start=max(end - receive, request.timestamp_end),
            timestamp_end=max(end, request.timestamp_end),
        )
        if resp_missing is not None:
            not_captured(flow, "response", resp_missing)
    elif not error:
        error = "no response"
    if error:
        flow.error = mflow.Error(str(error), timestamp=max(end, request.timestamp_end))
    if isinstance(messages := entry.get("_webSocketMessages"), list):
        flow.websocket = _websocket(messages, end)
    if isinstance(own_id := entry.get("_flowId"), str):
        ids[own_id] = flow.id
    if isinstance(replay_of := entry.get("_replayOf"), str):
        flow.metadata[META_REPLAY_OF] = ids.get(replay_of, replay_of)
    return flow


def _websocket(messages: list[Any], end: float) -> websocket.WebSocketData:
    data = websocket.WebSocketData()
    for i, m in enumerate(messages, 1):
        if not isinstance(m, dict) or not isinstance(m.get("data", ""), str):
            raise _EntryError(f"_webSocketMessages[{i}] is not a message")
        opcode = m.get("opcode", 1)
        if opcode not in (1, 2):
            continue  # control frames: mitmproxy keeps only messages
        text = m.get("data", "")
        try:
            content = text.encode() if opcode == 1 else base64.b64decode(text)
        except (binascii.Error, ValueError):
            raise _EntryError(f"_webSocketMessages[{i}].data is not valid base64") from None
        ts = m.get("time")
        data.messages.append(
            websocket.WebSocketMessage(
                Opcode(opcode), m.get("type") == "send", content, float(ts) if isinstance(ts, int | float) else end
            )
        )
    data.timestamp_end = end
    return data

"""Fiddler Session Archives (``.saz``): a zip of ``raw/N_c.txt`` (the request, an absolute URL in its request line),
``raw/N_s.txt`` (the response, its body as transferred), ``raw/N_m.xml`` (timers and flags), ``raw/N_w.txt``
(WebSocket messages), with ``[Content_Types].xml`` and ``_index.htm``; as Fiddler Classic and Fiddler Everywhere
write them, and read from them and from other writers (numbers padded or not, ``_m.xml`` with a BOM or absent, no
``_index.htm``, thousands separators in flag values, chunked or compressed responses, binary bodies).

What Fiddler's files cannot say travels in ``x-proxycap-*`` session flags: the flow's error, that it got no response
(its ``_s.txt`` is then a 502 saying why, as Fiddler writes for a failed session), bodies that were not captured,
its id and the original of a replay.
"""

from __future__ import annotations

import contextlib
import html
import re
import shutil
import tempfile
import time
import xml.etree.ElementTree as ET
import zipfile
import zlib
from collections import OrderedDict
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, BinaryIO

from mitmproxy import flow as mflow
from mitmproxy import http, websocket
from mitmproxy.net.http import status_codes, url
from wsproto.frame_protocol import Opcode

from proxycap.capture.summary import META_REPLAY_OF, META_STREAMED, peer
from proxycap.exchange import ExchangeError
from proxycap.exchange.messages import client_connection, new_flow, not_captured, parse_time, server_connection

META_PROCESS = "proxycap.import.process"  # Fiddler's x-processinfo, for the importer's summary ("name (pid)")
_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="utf-8" ?>\r\n'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">\r\n'
    '<Default Extension="htm" ContentType="text/html" />\r\n'
    '<Default Extension="xml" ContentType="application/xml" />\r\n'
    '<Default Extension="txt" ContentType="text/plain" />\r\n'
    "</Types>"
)
_INDEX_HEAD = (
    "\ufeff<html><head><style>body,thead,td,a,p{font-family:verdana,sans-serif;font-size: 10px;}</style></head>"
    "<body><table cols=12><thead><tr><th>&nbsp;</th><th>#</th><th>Result</th><th>Protocol</th><th>Host</th>"
    "<th>URL</th><th>Body</th><th>Caching</th><th>Content-Type</th><th>Process</th><th>Comments</th>"
    "<th>Custom</th></tr></thead><tbody>"
)
_INDEX_TAIL = "</tbody></table></body></html>"
_NO_TIME = "0001-01-01T00:00:00"  # .NET's DateTime.MinValue: a timer that did not run
_IS_HTTPS = 0x1  # Fiddler's SessionFlags.IsHTTPS
_SEEN_CONNECTIONS = 10_000


class SazWriter:
    """``add`` flows one by one to an open, seekable binary file; ``close`` writes the index and ends the zip.
    Each session's files are built in memory, one session at a time; the index rows wait in a temporary file."""

    needs_flow = True

    def __init__(self, fo: BinaryIO) -> None:
        self.zip = zipfile.ZipFile(fo, "w", zipfile.ZIP_DEFLATED)
        self.zip.writestr(zipfile.ZipInfo("raw/"), b"")  # Fiddler lists the folder first
        self.count = 0
        self._index = tempfile.TemporaryFile()  # noqa: SIM115 - closed by close()
        self._seen: OrderedDict[str, None] = OrderedDict()

    def add(self, flow: http.HTTPFlow, row: dict[str, Any] | None = None) -> None:
        self.count += 1
        n, ts = self.count, flow.request.timestamp_start
        flags: dict[str, str] = {}
        self._write(f"raw/{n}_c.txt", ts, _request_bytes(flow, flags))
        self._write(f"raw/{n}_s.txt", ts, _response_bytes(flow, flags))
        if flow.websocket is not None:
            self._write(f"raw/{n}_w.txt", ts, _websocket_bytes(flow.websocket))
        self._write(f"raw/{n}_m.xml", ts, self._metadata(n, flow, flags, row))
        self._index.write(_index_row(n, flow, row).encode("utf-8", "surrogateescape"))

    def close(self) -> None:
        self._index.seek(0)
        with self.zip.open("_index.htm", "w") as out:
            out.write(_INDEX_HEAD.encode())
            shutil.copyfileobj(self._index, out)
            out.write(_INDEX_TAIL.encode())
        self._index.close()
        self.zip.writestr("[Content_Types].xml", _CONTENT_TYPES.encode())
        self.zip.close()

    def _write(self, name: str, ts: float, data: bytes) -> None:
        when = time.localtime(max(ts, 315532800 + 86400))[:6]  # a zip cannot date anything before 1980
        self.zip.writestr(zipfile.ZipInfo(name, date_time=when), data, zipfile.ZIP_DEFLATED)

    def _metadata(self, n: int, flow: http.HTTPFlow, flags: dict[str, str], row: dict[str, Any] | None) -> bytes:
        req, resp, server = flow.request, flow.response, flow.server_conn
        reused = server.id in self._seen
        self._seen[server.id] = None
        if len(self._seen) > _SEEN_CONNECTIONS:
            self._seen.popitem(last=False)
        ended = resp.timestamp_end if resp else (flow.error.timestamp if flow.error else None)
        connect = tls = 0
        if not reused and server.timestamp_start and server.timestamp_tcp_setup:
            connect = round((server.timestamp_tcp_setup - server.timestamp_start) * 1000)
            if server.timestamp_tls_setup:
                tls = round((server.timestamp_tls_setup - server.timestamp_tcp_setup) * 1000)
        timers = {
            "ClientConnected": _net_time(flow.client_conn.timestamp_start),
            "ClientBeginRequest": _net_time(req.timestamp_start),
            "GotRequestHeaders": _net_time(req.timestamp_start),
            "ClientDoneRequest": _net_time(req.timestamp_end),
            "GatewayTime": "0",
            "DNSTime": "0",
            "TCPConnectTime": str(max(connect, 0)),
            "HTTPSHandshakeTime": str(max(tls, 0)),
            "ServerConnected": _net_time(server.timestamp_tls_setup or server.timestamp_tcp_setup),
            "FiddlerBeginRequest": _net_time(req.timestamp_end),
            "ServerGotRequest": _net_time(req.timestamp_end),
            "ServerBeginResponse": _net_time(resp.timestamp_start if resp else None),
            "GotResponseHeaders": _net_time(resp.timestamp_start if resp else None),
            "ServerDoneResponse": _net_time(ended),
            "ClientBeginResponse": _net_time(resp.timestamp_start if resp else None),
            "ClientDoneResponse": _net_time(ended),
        }
        client_ip, client_port = peer(flow.client_conn.peername)
        if client_ip:
            flags["x-clientip"], flags["x-clientport"] = client_ip, str(client_port or 0)
        if server_ip := peer(server.peername)[0]:
            flags["x-hostip"] = server_ip
        if resp is not None and resp.raw_content is not None:
            flags["x-responsebodytransferlength"] = f"{len(resp.raw_content):,}"  # as Fiddler writes it
        if row and row.get("process"):
            flags["x-processinfo"] = re.sub(r"^(.*) \((\d+)\)$", r"\1:\2", row["process"])
        if flow.error:
            flags["x-proxycap-error"] = flow.error.msg
            flags["ui-comments"] = flow.error.msg  # Fiddler shows it in its Comments column
        flags["x-proxycap-id"] = flow.id
        if replay_of := flow.metadata.get(META_REPLAY_OF):
            flags["x-proxycap-replay-of"] = replay_of
        session = ET.Element("Session", SID=str(n), BitFlags=format(_IS_HTTPS if req.scheme == "https" else 0, "x"))
        ET.SubElement(session, "SessionTimers", timers)
        ET.SubElement(session, "PipeInfo", {"Reused": "true"} if reused else {})
        flag_list = ET.SubElement(session, "SessionFlags")
        for name, value in flags.items():
            ET.SubElement(flag_list, "SessionFlag", N=name, V=_xml_text(value))
        ET.indent(session)
        text = ET.tostring(session, encoding="unicode").replace("\n", "\r\n")
        return b'\xef\xbb\xbf<?xml version="1.0" encoding="utf-8"?>\r\n' + text.encode("utf-8", "surrogateescape")


def _xml_text(value: str) -> str:
    return re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f]", "?", value)


def _net_time(ts: float | None) -> str:
    """.NET's round-trip format ("o"), as Fiddler writes its timers: 7 decimals and an offset."""
    if not ts:
        return _NO_TIME
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0+00:00"


def _chunked(body: bytes) -> bytes:
    return (f"{len(body):x}\r\n".encode() + body + b"\r\n" if body else b"") + b"0\r\n\r\n"


def _is_chunked(headers: http.Headers) -> bool:
    return "chunked" in headers.get("transfer-encoding", "").lower()


def _request_bytes(flow: http.HTTPFlow, flags: dict[str, str]) -> bytes:
    req = flow.request
    headers = req.headers.copy()
    if req.method == "CONNECT":
        target = req.authority or f"{req.host}:{req.port}"
    else:
        target = req.url
        if not req.http_version.startswith("HTTP/1") and "host" not in headers:  # Fiddler expects one
            headers.insert(0, "Host", req.authority or url.hostport(req.scheme, req.host, req.port))
    body = req.raw_content
    if body is None:
        flags["x-proxycap-request-not-captured"] = str(_streamed(flow, "request"))
        body = b""
    elif _is_chunked(headers):
        body = _chunked(body)
    line = f"{req.method} {target} {req.http_version}\r\n"
    return line.encode("utf-8", "surrogateescape") + bytes(headers) + b"\r\n" + body


def _response_bytes(flow: http.HTTPFlow, flags: dict[str, str]) -> bytes:
    resp = flow.response
    if resp is None:  # as Fiddler answers a session that failed: a 502 saying why
        flags["x-proxycap-no-response"] = "true"
        text = f"[proxycap] {flow.error.msg if flow.error else 'no response'}".encode("utf-8", "surrogateescape")
        return (
            b"HTTP/1.1 502 Connection Failed\r\nContent-Type: text/plain; charset=utf-8\r\n"
            + f"Content-Length: {len(text)}\r\n\r\n".encode()
            + text
        )
    body = resp.raw_content
    if body is None:
        flags["x-proxycap-response-not-captured"] = str(_streamed(flow, "response"))
        body = b""
    elif _is_chunked(resp.headers):
        body = _chunked(body)
    reason = resp.reason or status_codes.RESPONSES.get(resp.status_code, "")
    line = f"{resp.http_version} {resp.status_code} {reason}\r\n"
    return line.encode("utf-8", "surrogateescape") + bytes(resp.headers) + b"\r\n" + body


def _streamed(flow: http.HTTPFlow, which: str) -> int:
    size = (flow.metadata.get(META_STREAMED) or {}).get(which)
    return size if size is not None else -1


def _websocket_bytes(ws: websocket.WebSocketData) -> bytes:
    """Fiddler's ``_w.txt``: a blank line, then per message a header block (direction and length, id, flags,
    timers) and the message as one unmasked frame, followed by a line end."""
    out = [b"\r\n"]
    for i, m in enumerate(ws.messages, 1):
        payload = m.content
        n = len(payload)
        if n < 126:
            head = bytes([0x80 | m.type.value, n])
        elif n < 65536:
            head = bytes([0x80 | m.type.value, 126]) + n.to_bytes(2, "big")
        else:
            head = bytes([0x80 | m.type.value, 127]) + n.to_bytes(8, "big")
        t = _net_time(m.timestamp)
        side = "Request" if m.from_client else "Response"
        meta = f"{side}-Length: {len(head) + n}\r\nID: {i}\r\nBitFlags: 0\r\nDoneRead: {t}\r\nBeginSend: {t}\r\n"
        out += [f"{meta}DoneSend: {t}\r\n\r\n".encode(), head, payload, b"\r\n"]
    return b"".join(out)


def _index_row(n: int, flow: http.HTTPFlow, row: dict[str, Any] | None) -> str:
    req, resp = flow.request, flow.response
    cells = [
        f"<a href='raw\\{n}_c.txt'>C</a>&nbsp;<a href='raw\\{n}_s.txt'>S</a>&nbsp;<a href='raw\\{n}_m.xml'>M</a>",
        str(n),
        str(resp.status_code) if resp else "502",
        req.scheme.upper(),
        html.escape(req.pretty_host),
        html.escape(req.path if req.method != "CONNECT" else req.pretty_url),
        f"{len(resp.raw_content):,}" if resp and resp.raw_content is not None else "0",
        html.escape(resp.headers.get("cache-control", "")) if resp else "",
        html.escape(resp.headers.get("content-type", "")) if resp else "",
        html.escape((row or {}).get("process") or ""),
        html.escape(flow.error.msg) if flow.error else "",
        "",
    ]
    return "<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"


# --- reading ---------------------------------------------------------------------------------------------------

_PART = re.compile(r"^raw[/\\](\d+)_([csmw])\.(txt|xml)$", re.IGNORECASE)


class _SessionError(ValueError):
    pass


def read_saz(fo: BinaryIO, name: str) -> Iterator[http.HTTPFlow]:
    """The sessions of a SAZ file as flows, in their order (N), one at a time. ExchangeError names the file and the
    session at fault."""
    try:
        archive = zipfile.ZipFile(fo)
    except (zipfile.BadZipFile, OSError) as e:
        raise ExchangeError(f"{name}: not a SAZ file (not a zip archive, or truncated: {e})") from None
    sessions: dict[int, dict[str, zipfile.ZipInfo]] = {}
    for info in archive.infolist():
        if m := _PART.match(info.filename):
            sessions.setdefault(int(m[1]), {})[m[2].lower()] = info
    if not any("c" in parts for parts in sessions.values()):
        raise ExchangeError(f"{name}: not a SAZ file (no raw/N_c.txt requests in it)")
    ids: dict[str, str] = {}
    for n in sorted(sessions):
        parts = sessions[n]
        where = parts.get("c", next(iter(parts.values()))).filename
        try:
            if "c" not in parts:
                raise _SessionError("its request (_c.txt) is missing")
            yield _session(archive, parts, ids)
        except (_SessionError, ValueError, KeyError, IndexError) as e:
            raise ExchangeError(f"{name}: session {where}: {e}") from None
        except (zipfile.BadZipFile, zlib.error, EOFError) as e:
            raise ExchangeError(f"{name}: session {where}: damaged in the zip ({e})") from None
        except RuntimeError as e:  # zipfile: an encrypted member
            raise ExchangeError(f"{name}: session {where}: {e} (password-protected archives are not read)") from None


def _read(archive: zipfile.ZipFile, info: zipfile.ZipInfo | None) -> bytes | None:
    return archive.read(info) if info is not None else None


def _session(archive: zipfile.ZipFile, parts: dict[str, zipfile.ZipInfo], ids: dict[str, str]) -> http.HTTPFlow:
    meta = _metadata(_read(archive, parts.get("m")))
    flags: dict[str, str] = meta["flags"]
    timers: dict[str, float | None] = meta["timers"]
    zipped = time.mktime((*parts["c"].date_time, 0, 0, -1))
    request_start = timers.get("ClientBeginRequest") or timers.get("GotRequestHeaders") or zipped
    request = _parse_request(_read(archive, parts["c"]) or b"", flags, meta["https"])
    request.timestamp_start = request_start
    request.timestamp_end = max(timers.get("ClientDoneRequest") or request_start, request_start)
    client = (flags["x-clientip"], _number(flags.get("x-clientport"))) if flags.get("x-clientip") else None
    server = (flags["x-hostip"], request.port) if flags.get("x-hostip") else None
    flow = new_flow(
        request,
        client_connection(client, timers.get("ClientConnected") or request_start),
        server_connection(server),
    )
    _server_timers(flow, timers)
    if "x-proxycap-request-not-captured" in flags:
        request.raw_content = None
        not_captured(flow, "request", _number(flags["x-proxycap-request-not-captured"]))
    response_data = _read(archive, parts.get("s"))
    if response_data and flags.get("x-proxycap-no-response") != "true":
        flow.response = response = _parse_response(response_data)
        response.timestamp_start = max(
            timers.get("ServerBeginResponse") or timers.get("GotResponseHeaders") or request.timestamp_end,
            request.timestamp_end,
        )
        ended = timers.get("ServerDoneResponse") or timers.get("ClientDoneResponse") or response.timestamp_start
        response.timestamp_end = max(ended, response.timestamp_start)
        if "x-proxycap-response-not-captured" in flags:
            response.raw_content = None
            not_captured(flow, "response", _number(flags["x-proxycap-response-not-captured"]))
        if (ws := _read(archive, parts.get("w"))) is not None:
            flow.websocket = _parse_websocket(ws, response.timestamp_end)
    if error := flags.get("x-proxycap-error") or (None if flow.response else "no response"):
        ended = timers.get("ClientDoneResponse") or timers.get("ServerDoneResponse") or request.timestamp_end
        flow.error = mflow.Error(error, timestamp=max(ended, request.timestamp_end))
    if process := flags.get("x-processinfo"):
        flow.metadata[META_PROCESS] = re.sub(r"^(.*):(\d+)$", r"\1 (\2)", process)
    if own_id := flags.get("x-proxycap-id"):
        ids[own_id] = flow.id
    if replay_of := flags.get("x-proxycap-replay-of"):
        flow.metadata[META_REPLAY_OF] = ids.get(replay_of, replay_of)
    return flow


def _number(text: str | None) -> int:
    """A flag's number, with or without thousands separators ("35,588", "35.588", "35 588")."""
    digits = re.sub(r"[^\d-]", "", text or "")
    try:
        return int(digits)
    except ValueError:
        raise _SessionError(f"flag value {text!r} is not a number") from None


def _metadata(data: bytes | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"flags": {}, "timers": {}, "https": False}
    if data is None:  # some writers leave it out
        return meta
    try:
        root = ET.fromstring(data.removeprefix(b"\xef\xbb\xbf"))
    except ET.ParseError as e:
        raise _SessionError(f"its _m.xml is not XML ({e})") from None
    if root.tag != "Session":
        raise _SessionError(f"its _m.xml is not a Fiddler session (<{root.tag}>)")
    with contextlib.suppress(ValueError):  # a writer's own flags: only the HTTPS bit matters here
        meta["https"] = bool(int(root.get("BitFlags", "0"), 16) & _IS_HTTPS)
    if (timers := root.find("SessionTimers")) is not None:
        for key, value in timers.attrib.items():
            meta["timers"][key] = _parse_net_time(value) if "T" in value else None
        for key in ("TCPConnectTime", "HTTPSHandshakeTime"):
            meta["timers"][key] = _number(timers.get(key, "0")) / 1000
    for flag in root.iter("SessionFlag"):
        if flag.get("N"):
            meta["flags"][flag.get("N", "").lower()] = flag.get("V", "")
    if "https-client-version" in meta["flags"]:
        meta["https"] = True
    return meta


def _parse_net_time(text: str) -> float | None:
    if text.startswith("0001-01-01"):
        return None
    try:
        return parse_time(text, naive_utc=False)
    except ValueError:
        raise _SessionError(f"timer {text!r} is not a date and time") from None


def _server_timers(flow: http.HTTPFlow, timers: dict[str, Any]) -> None:
    connected, tcp, tls = timers.get("ServerConnected"), timers.get("TCPConnectTime"), timers.get("HTTPSHandshakeTime")
    if connected and (tcp or tls):
        # The session opened its connection: within its own span, as proxycap times a flow, even where the timers
        # put the connect before the request began.
        connected = max(connected, flow.request.timestamp_start + (tcp or 0) + (tls or 0))
        server = flow.server_conn
        server.timestamp_tcp_setup = connected - (tls or 0)
        server.timestamp_start = server.timestamp_tcp_setup - (tcp or 0)
        if tls:
            server.timestamp_tls_setup = connected


def _split(data: bytes) -> tuple[list[bytes], bytes]:
    """Head lines and body of a raw message (CRLF, or bare LF from some writers)."""
    for sep in (b"\r\n\r\n", b"\n\n"):
        head, found, body = data.partition(sep)
        if found:
            break
    else:
        head, body = data, b""
    lines = head.replace(b"\r\n", b"\n").split(b"\n")
    while lines and not lines[0].strip():  # stray blank lines before the start line
        lines.pop(0)
    if not lines:
        raise _SessionError("it is empty")
    return lines, body


def _headers(lines: list[bytes]) -> http.Headers:
    fields: list[list[bytes]] = []
    for line in lines:
        if line[:1] in (b" ", b"\t") and fields:  # a folded header line
            fields[-1][1] += b" " + line.strip()
            continue
        name, colon, value = line.partition(b":")
        if not colon or not name.strip():
            raise _SessionError(f"header line {line[:60]!r} is not Name: value")
        fields.append([name.strip(), value.strip()])
    return http.Headers([(n, v) for n, v in fields])


def _unchunk(body: bytes) -> bytes:
    out, pos = [], 0
    while True:
        end = body.find(b"\r\n", pos)
        if end < 0:
            raise _SessionError("its chunked body ends early")
        size_text = body[pos:end].split(b";")[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise _SessionError(f"its chunked body has a bad chunk size {size_text[:20]!r}") from None
        if size == 0:
            return b"".join(out)
        if end + 2 + size > len(body):
            raise _SessionError("its chunked body ends early")
        out.append(body[end + 2 : end + 2 + size])
        pos = end + 2 + size + 2


def _body(headers: http.Headers, body: bytes) -> bytes:
    return _unchunk(body) if _is_chunked(headers) else body


def _parse_request(data: bytes, flags: dict[str, str], https: bool) -> http.Request:
    lines, body = _split(data)
    parts = lines[0].split()
    if len(parts) != 3 or not parts[2].upper().startswith(b"HTTP/"):
        raise _SessionError(f"request line {lines[0][:80]!r} is not METHOD URL HTTP/VERSION")
    method, target, version = parts
    headers = _headers(lines[1:])
    authority = b""
    if method.upper() == b"CONNECT":
        host, _, port_text = target.decode("latin-1").rpartition(":")
        scheme, host_b, port, path = b"http", host.strip("[]").encode(), _number(port_text or "443"), b""
        authority = target
    else:
        if target.startswith(b"/"):  # origin-form: the Host header and the flags say where
            host_header = headers.get("host", "")
            if not host_header:
                raise _SessionError("a relative request URL without a Host header")
            target = f"{'https' if https else 'http'}://{host_header}".encode() + target
        try:
            scheme, host_b, port, path = url.parse(target)
        except ValueError as e:
            raise _SessionError(f"request URL {target[:80]!r} is not a URL ({e})") from None
        if not version.startswith(b"HTTP/1") and headers.get("host") == url.hostport(
            scheme.decode(), host_b.decode(), port
        ):
            del headers["host"]  # added for Fiddler: an HTTP/2 request carries its authority, not a Host header
    return http.Request(
        host=host_b.decode("utf-8", "surrogateescape"),
        port=port,
        method=method,
        scheme=scheme,
        authority=authority,
        path=path,
        http_version=version,
        headers=headers,
        content=_body(headers, body),
        trailers=None,
        timestamp_start=0.0,
        timestamp_end=None,
    )


def _parse_response(data: bytes) -> http.Response:
    lines, body = _split(data)
    version, _, rest = lines[0].partition(b" ")
    status_text, _, reason = rest.partition(b" ")
    if not version.upper().startswith(b"HTTP/") or not status_text.isdigit():
        raise _SessionError(f"response line {lines[0][:80]!r} is not HTTP/VERSION STATUS REASON")
    headers = _headers(lines[1:])
    return http.Response(
        http_version=version,
        status_code=int(status_text),
        reason=reason.strip() if version.startswith(b"HTTP/1") else b"",
        headers=headers,
        content=_body(headers, body),
        trailers=None,
        timestamp_start=0.0,
        timestamp_end=None,
    )


def _parse_websocket(data: bytes, end: float) -> websocket.WebSocketData:
    ws = websocket.WebSocketData()
    pos = 0
    while True:
        while data[pos : pos + 2] == b"\r\n":
            pos += 2
        if pos >= len(data):
            break
        head_end = data.find(b"\r\n\r\n", pos)
        if head_end < 0:
            raise _SessionError("its _w.txt ends inside a message's header")
        fields = dict(
            line.split(": ", 1) for line in data[pos:head_end].decode("latin-1").split("\r\n") if ": " in line
        )
        outbound = "Request-Length" in fields
        size = _number(fields.get("Request-Length") or fields.get("Response-Length"))
        frame = data[head_end + 4 : head_end + 4 + size]
        if len(frame) != size:
            raise _SessionError("its _w.txt ends inside a message")
        pos = head_end + 4 + size
        opcode, payload = _frame(frame)
        ts = _parse_net_time(fields.get("DoneRead", _NO_TIME)) or end
        if opcode == 0 and ws.messages:  # a continuation of the message before
            ws.messages[-1].content += payload
        elif opcode in (1, 2):
            ws.messages.append(websocket.WebSocketMessage(Opcode(opcode), outbound, payload, ts))
    ws.timestamp_end = end
    return ws


def _frame(frame: bytes) -> tuple[int, bytes]:
    if len(frame) < 2:
        raise _SessionError("its _w.txt holds a message shorter than a frame header")
    opcode, masked, n = frame[0] & 0x0F, frame[1] & 0x80, frame[1] & 0x7F
    pos = 2
    if n == 126:
        n, pos = int.from_bytes(frame[2:4], "big"), 4
    elif n == 127:
        n, pos = int.from_bytes(frame[2:10], "big"), 10
    key = frame[pos : pos + 4] if masked else b""
    pos += len(key)
    payload = frame[pos : pos + n]
    if key:
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return opcode, payload

"""Fiddler Session Archives (``.saz``) read as Fiddler Classic, Fiddler Everywhere and other writers write them:
numbers padded or not, ``_m.xml`` with a BOM or absent, no ``_index.htm``, thousands separators in flag values,
chunked or compressed responses, binary bodies. The ``x-proxycap-*`` session flags ``saz_writer`` writes are read
back; a broken session stops the import with its number and what is wrong.
"""

from __future__ import annotations

import contextlib
import re
import time
import xml.etree.ElementTree as ET
import zipfile
import zlib
from collections.abc import Iterator
from typing import Any, BinaryIO

from mitmproxy import flow as mflow
from mitmproxy import http, websocket
from mitmproxy.net.http import url
from wsproto.frame_protocol import Opcode

from proxycap.capture.summary import META_PROCESS, META_REPLAY_OF
from proxycap.exchange import ExchangeError
from proxycap.exchange.messages import (
    client_connection,
    is_chunked,
    new_flow,
    not_captured,
    parse_time,
    server_connection,
)
from proxycap.exchange.saz_writer import IS_HTTPS, NO_TIME

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
        meta["https"] = bool(int(root.get("BitFlags", "0"), 16) & IS_HTTPS)
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
    return _unchunk(body) if is_chunked(headers) else body


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
        ts = _parse_net_time(fields.get("DoneRead", NO_TIME)) or end
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

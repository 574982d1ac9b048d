"""Fiddler Session Archives (``.saz``): a zip of ``raw/N_c.txt`` (the request, an absolute URL in its request line),
``raw/N_s.txt`` (the response, its body as transferred), ``raw/N_m.xml`` (timers and flags), ``raw/N_w.txt``
(WebSocket messages), with ``[Content_Types].xml`` and ``_index.htm``; as Fiddler Classic and Fiddler Everywhere
write them (``saz_reader`` reads them back, and other writers' files).

What Fiddler's files cannot say travels in ``x-proxycap-*`` session flags: the flow's error, that it got no response
(its ``_s.txt`` is then a 502 saying why, as Fiddler writes for a failed session), bodies that were not captured,
its id and the original of a replay.
"""

from __future__ import annotations

import html
import re
import shutil
import tempfile
import time
import xml.etree.ElementTree as ET
import zipfile
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any, BinaryIO

from mitmproxy import http, websocket
from mitmproxy.net.http import status_codes, url

from proxycap.capture.summary import META_REPLAY_OF, META_STREAMED, peer
from proxycap.exchange.messages import is_chunked

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
NO_TIME = "0001-01-01T00:00:00"  # .NET's DateTime.MinValue: a timer that did not run
IS_HTTPS = 0x1  # Fiddler's SessionFlags.IsHTTPS
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
        session = ET.Element("Session", SID=str(n), BitFlags=format(IS_HTTPS if req.scheme == "https" else 0, "x"))
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
        return NO_TIME
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0+00:00"


def _chunked(body: bytes) -> bytes:
    return (f"{len(body):x}\r\n".encode() + body + b"\r\n" if body else b"") + b"0\r\n\r\n"


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
    elif is_chunked(headers):
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
    elif is_chunked(resp.headers):
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

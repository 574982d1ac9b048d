"""A deterministic capture store for TUI snapshot tests: fixed ids, timestamps, clients and bodies.

Flows are real mitmproxy ``HTTPFlow`` objects (built with ``mitmproxy.test.tflow``) written through
``Store.write`` exactly as the store writer would, so the UI reads them like any capture.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

from mitmproxy import http
from mitmproxy.test import tflow
from origins import HTML_BODY, PNG_BYTES, XML_BODY

from proxycap.capture.summary import META_STREAMED, summarize
from proxycap.storage.store import Store

BASE_TS = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC
CURL = "curl/8.5.0"
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
PHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Version/17.5 Safari/604.1"
JSON_BODY = {"user": {"id": 42, "name": "Ada", "roles": ["admin", "dev"]}, "active": True, "score": 9.5}

# (client ip, user agent, method, url, status, content type, response body, request body)
FLOWS: list[tuple[str, str, str, str, int | None, str, bytes, bytes]] = [
    (
        "127.0.0.2",
        CURL,
        "GET",
        "https://api.example.com/v1/users/42",
        200,
        "application/json",
        json.dumps(JSON_BODY).encode(),
        b"",
    ),
    ("127.0.0.3", FIREFOX, "GET", "https://www.example.org/", 200, "text/html; charset=utf-8", HTML_BODY, b""),
    ("127.0.0.3", FIREFOX, "GET", "https://www.example.org/logo.png", 200, "image/png", PNG_BYTES, b""),
    (
        "127.0.0.2",
        CURL,
        "POST",
        "https://api.example.com/v1/login",
        401,
        "application/json",
        b'{"error": "bad credentials"}',
        b"user=ada&password=secret",
    ),
    ("10.0.0.7", PHONE, "GET", "http://cdn.example.net/feed.xml", 304, "application/xml", XML_BODY, b""),
    ("127.0.0.2", CURL, "DELETE", "https://api.example.com/v1/users/7", 503, "text/plain", b"overloaded\n", b""),
    (
        "127.0.0.3",
        FIREFOX,
        "GET",
        "https://www.example.org/search?q=proxy+debugging&page=2",
        200,
        "application/json",
        json.dumps({"results": [{"title": f"hit {i}"} for i in range(3)]}).encode(),
        b"",
    ),
    (
        "10.0.0.7",
        PHONE,
        "GET",
        "http://cdn.example.net/app.bin",
        200,
        "application/octet-stream",
        bytes(range(64)),
        b"",
    ),
]


def _flow(
    i: int, ip: str, ua: str, method: str, url: str, status: int | None, ctype: str, body: bytes, request_body: bytes
) -> http.HTTPFlow:
    ts = BASE_TS + i * 1.25
    f = tflow.tflow(resp=True)
    f.live = False
    f.id = f"00000000-0000-4000-8000-{i:012d}"
    f.client_conn.peername = (ip, 50000 + i)
    f.client_conn.timestamp_start = ts - 0.05
    headers = {"user-agent": ua, "accept": "*/*"}
    if request_body:
        headers["content-type"] = "application/x-www-form-urlencoded"
    f.request = http.Request.make(method, url, request_body, headers)
    f.request.timestamp_start, f.request.timestamp_end = ts, ts + 0.001
    f.server_conn.address = (f.request.host, f.request.port)
    f.server_conn.peername = ("93.184.216.34", f.request.port)
    f.server_conn.timestamp_start, f.server_conn.timestamp_tcp_setup = ts - 0.04, ts - 0.03
    f.server_conn.timestamp_tls_setup = ts - 0.01 if url.startswith("https") else None
    if status is None:
        f.response = None
        return f
    resp_headers = {"content-type": ctype, "server": "origin/1.0"}
    f.response = http.Response.make(status, body, resp_headers)
    f.response.timestamp_start, f.response.timestamp_end = ts + 0.020 + i / 1000, ts + 0.035 + i / 100
    return f


def flows() -> list[http.HTTPFlow]:
    out = [_flow(i + 1, *spec) for i, spec in enumerate(FLOWS)]
    n = len(out)
    gz = _flow(n + 1, "127.0.0.2", CURL, "GET", "https://api.example.com/v1/report", 200, "application/json", b"", b"")
    assert gz.response is not None
    gz.response.headers["content-encoding"] = "gzip"
    gz.response.raw_content = gzip.compress(json.dumps({"report": list(range(20))}).encode(), mtime=0)
    failed = _flow(n + 2, "127.0.0.3", FIREFOX, "GET", "https://down.example.com/", None, "", b"", b"")
    failed.error = tflow.terr("Server connection to down.example.com:443 failed: connection refused")
    failed.error.timestamp = failed.request.timestamp_start + 0.004
    live = _flow(n + 3, "127.0.0.2", CURL, "GET", "https://api.example.com/v1/stream", None, "", b"", b"")
    streamed = _flow(n + 4, "10.0.0.7", PHONE, "GET", "http://cdn.example.net/video.mp4", 200, "video/mp4", b"", b"")
    assert streamed.response is not None
    streamed.response.raw_content = None
    streamed.metadata[META_STREAMED] = {"response": 52_428_800}
    ws = tflow.twebsocketflow()
    ws.live = False
    ws.id = f"00000000-0000-4000-8000-{n + 5:012d}"
    ws.client_conn.peername = ("127.0.0.3", 50100)
    ws.request.headers["user-agent"] = FIREFOX
    ts = BASE_TS + (n + 5) * 1.25
    ws.request.timestamp_start, ws.request.timestamp_end = ts, ts + 0.001
    assert ws.response is not None and ws.websocket is not None
    ws.response.timestamp_start, ws.response.timestamp_end = ts + 0.01, ts + 0.02
    for k, m in enumerate(ws.websocket.messages):
        m.timestamp = ts + 0.1 * (k + 1)
    ws.websocket.timestamp_end = ts + 1.0
    return [*out, gz, failed, live, streamed, ws]


def build_store(path: Path, extra: int = 0) -> Path:
    """Write the fixed flows (plus ``extra`` generated ones, for scrolling), clients, labels and events."""
    store = Store(path)
    try:
        fs = flows()
        rows: list[tuple[dict[str, Any], dict[str, Any]]] = [(summarize(f), f.get_state()) for f in fs]
        for k in range(extra):
            f = _flow(
                len(fs) + 1 + k,
                "127.0.0.2",
                CURL,
                "GET",
                f"https://api.example.com/v1/items/{k}",
                200,
                "application/json",
                b'{"ok": true}',
                b"",
            )
            rows.append((summarize(f), f.get_state()))
        clients = [
            ("127.0.0.2", BASE_TS + 40, CURL, 3),
            ("127.0.0.3", BASE_TS + 30, FIREFOX, 2),
            ("10.0.0.7", BASE_TS + 20, PHONE, 1),
        ]
        logs = [
            (
                BASE_TS + 2,
                "WARNING",
                "TLS handshake with client 10.0.0.7 for api.example.com failed: unknown ca; "
                "run `proxycap ca` for how to trust proxycap's CA on that device",
                "10.0.0.7",
                None,
            ),
            (
                BASE_TS + 9,
                "ERROR",
                "Server connection to down.example.com:443 failed: connection refused",
                "127.0.0.3",
                None,
            ),
        ]
        store.write(rows, logs, clients)
        store.set_label("10.0.0.7", "Ada's phone")
    finally:
        store.close()
    return path

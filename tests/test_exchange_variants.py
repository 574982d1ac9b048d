"""Files from other tools: HAR as Chrome, Firefox, Safari, Charles, WebPageTest and Firebug write it, SAZ as Fiddler
Classic, Fiddler Everywhere and other writers do, and mitmproxy flow files from mitmproxy 9 to 12. Each is imported
through the CLI into a real store and read back."""

from __future__ import annotations

import base64
import gzip
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from mitmproxy import http
from test_cli import assert_one_line_error, run

from proxycap.storage.store import Store

DATA = Path(__file__).parent / "data"
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")  # a 1x1 GIF


def _import(tmp_path: Path, *files: Path) -> list[tuple[dict[str, Any], http.HTTPFlow]]:
    store = tmp_path / "s.db"
    run("import", *map(str, files), "--store", str(store))
    s = Store(store, readonly=True)
    try:
        return [(row, s.load_flow(row["seq"])) for row in s.iter_rows()]
    finally:
        s.close()


def _har(tmp_path: Path, name: str, log: dict[str, Any], bom: bool = False) -> Path:
    path = tmp_path / name
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + json.dumps({"log": log}, indent=2).encode())
    return path


def _entry(url: str, **over: Any) -> dict[str, Any]:
    entry = {
        "startedDateTime": "2024-05-01T10:00:00.123Z",
        "time": 50,
        "request": {"method": "GET", "url": url, "httpVersion": "HTTP/1.1", "cookies": [], "headers": [],
                    "queryString": [], "headersSize": -1, "bodySize": 0},
        "response": {"status": 200, "statusText": "OK", "httpVersion": "HTTP/1.1", "cookies": [], "headers": [],
                     "content": {"size": 5, "mimeType": "text/plain", "text": "hello"}, "redirectURL": "",
                     "headersSize": -1, "bodySize": 5},
        "cache": {},
        "timings": {"blocked": -1, "dns": -1, "connect": -1, "send": 1, "wait": 40, "receive": 9, "ssl": -1},
    }  # fmt: skip
    for path, value in over.items():
        *parents, key = path.split("__")
        target = entry
        for p in parents:
            target = target[p]
        target[key] = value
    return entry


def test_chrome_har(tmp_path: Path) -> None:
    """BOM, HTTP/2 pseudo-headers, -1 sizes, base64 bodies, a failed request, WebSocket messages, IPv6 server."""
    gz = gzip.compress(b'{"a": 1}')
    entries = [
        _entry(
            "https://example.com/api?x=1",
            request__httpVersion="http/2.0",
            request__headers=[{"name": ":authority", "value": "example.com"}, {"name": "accept", "value": "*/*"}],
            response__httpVersion="http/2.0",
            response__headers=[{"name": "content-encoding", "value": "gzip"}],
            response__content={"size": 8, "mimeType": "application/json", "text": '{"a": 1}'},
            response__bodySize=-1,
            serverIPAddress="[2001:db8::1]",
            _initiator={"type": "other"},
            _priority="High",
            time=51.234,
        ),
        _entry("https://example.com/pixel.gif",
               response__content={"size": len(PIXEL), "mimeType": "image/gif", "encoding": "base64",
                                  "text": base64.b64encode(PIXEL).decode()}),
        _entry("https://down.example.com/", response__status=0, response__statusText="",
               response__content={"size": 0, "mimeType": "x-unknown"}, response___error="net::ERR_NAME_NOT_RESOLVED"),
        _entry("wss://example.com/socket", response__status=101, _resourceType="websocket",
               _webSocketMessages=[{"type": "send", "time": 1714557600.5, "opcode": 1, "data": "hi"},
                                   {"type": "receive", "time": 1714557600.6, "opcode": 2,
                                    "data": base64.b64encode(b"\x00\x01").decode()}]),
    ]  # fmt: skip
    creator = {"name": "WebInspector", "version": "537.36"}
    log = {"version": "1.2", "creator": creator, "pages": [{"id": "page_1", "title": "x"}], "entries": entries}
    path = _har(tmp_path, "chrome.har", log, bom=True)
    (r1, api), (_, gif), (r3, failed), (_, ws) = _import(tmp_path, path)
    assert api.request.http_version == "HTTP/2.0" and ":authority" not in api.request.headers
    assert api.response.content == b'{"a": 1}' and gzip.decompress(api.response.raw_content) == b'{"a": 1}'
    assert gz  # the body is stored encoded again, as the header says it was sent
    assert api.server_conn.peername[0] == "2001:db8::1" and r1["duration_ms"] == pytest.approx(51.234)
    assert r1["ts"] == pytest.approx(1714557600.123) and r1["source"] == str(path.resolve())
    assert gif.response.content == PIXEL
    assert failed.response is None and failed.error.msg == "net::ERR_NAME_NOT_RESOLVED" and r3["state"] == "error"
    assert [(m.from_client, m.content) for m in ws.websocket.messages] == [(True, b"hi"), (False, b"\x00\x01")]


def test_firefox_safari_charles_har(tmp_path: Path) -> None:
    """Firefox: no text for an image (size > 0), form params, HTTP/2 spelled HTTP/2; Safari: empty httpVersion;
    Charles: local offsets in dates, base64 with an empty charset, numbers as integers."""
    firefox = _har(tmp_path, "firefox.har", {"version": "1.2", "creator": {"name": "Firefox", "version": "125"},
        "entries": [
            _entry("https://example.com/logo.png", response__content={"size": 1234, "mimeType": "image/png"},
                   response__httpVersion="HTTP/2"),
            _entry("https://example.com/login", request__method="POST",
                   request__postData={"mimeType": "application/x-www-form-urlencoded", "text": "u=me&p=x",
                                      "params": [{"name": "u", "value": "me"}, {"name": "p", "value": "x"}]}),
        ]})  # fmt: skip
    safari = _har(tmp_path, "safari.har", {"version": "1.2", "creator": {"name": "WebKit Web Inspector", "version": ""},
        "entries": [_entry("https://example.com/", request__httpVersion="", response__httpVersion="",
                           startedDateTime="2024-05-01T10:00:00.123456Z")]})  # fmt: skip
    charles = _har(tmp_path, "charles.har", {"version": "1.2", "creator": {"name": "Charles Proxy", "version": "4.6"},
        "entries": [_entry("http://example.com:8080/x.bin", startedDateTime="2024-05-01T03:00:00.000-07:00",
                           serverIPAddress="93.184.216.34", response___charlesStatus="COMPLETE",
                           response__content={"size": 3, "mimeType": "application/octet-stream",
                                              "encoding": "base64", "text": "AAEC"})]})  # fmt: skip
    rows = _import(tmp_path, firefox, safari, charles)
    (_, logo), (_, login), (_, page), (crow, binary) = rows
    assert logo.response.raw_content is None and logo.response.http_version == "HTTP/2.0"
    assert logo.metadata["proxycap.streamed"] == {"response": 1234}  # "body not captured" in the UI
    assert login.request.content == b"u=me&p=x" and login.request.method == "POST"
    assert page.request.http_version == "HTTP/1.1" and page.request.timestamp_start % 1 == pytest.approx(0.123456)
    assert crow["ts"] == pytest.approx(1714557600.0) and binary.response.content == b"\x00\x01\x02"
    assert binary.request.port == 8080 and crow["server_ip"] == "93.184.216.34"


def test_webpagetest_and_firebug_har(tmp_path: Path) -> None:
    """WebPageTest: bodies left out, -1 everywhere, pages with custom fields; Firebug: HAR 1.1 without ssl timings,
    dates without milliseconds."""
    wpt = _har(tmp_path, "wpt.har", {"version": "1.1", "creator": {"name": "WebPagetest", "version": "1.8"},
        "pages": [{"id": "page_1_0_1", "_URL": "https://example.com/", "pageTimings": {"onLoad": 800}}],
        "entries": [_entry("https://example.com/", pageref="page_1_0_1", _full_url="https://example.com/",
                           request__bodySize=-1, response__bodySize=-1, response__headersSize=-1,
                           response__content={"size": -1, "mimeType": "text/html"}, time=-1)]})  # fmt: skip
    firebug = _har(tmp_path, "firebug.har", {"version": "1.1", "creator": {"name": "Firebug", "version": "1.5"},
        "browser": {"name": "Firefox", "version": "3.6"},
        "entries": [_entry("http://example.com/a", startedDateTime="2010-01-02T15:38:15+01:00",
                           timings={"dns": 0, "connect": 12, "blocked": 0, "send": 0, "wait": 30,
                                    "receive": 8})]})  # fmt: skip
    (wrow, page), (frow, a) = _import(tmp_path, wpt, firebug)
    assert page.response.status_code == 200 and not page.response.raw_content
    assert wrow["duration_ms"] == pytest.approx(50.0)  # time -1: the sum of the timings
    assert frow["ts"] == pytest.approx(1262443095.0) and a.response.content == b"hello"


def test_har_variants_that_are_broken(tmp_path: Path) -> None:
    bad_b64 = _har(tmp_path, "b64.har", {"version": "1.2", "creator": {"name": "x", "version": "1"}, "entries": [
        _entry("https://example.com/"),
        _entry("https://example.com/", response__content={"size": 1, "mimeType": "x", "encoding": "base64",
                                                          "text": "not base64!"})]})  # fmt: skip
    bad_date = _har(tmp_path, "date.har", {"version": "1.2", "creator": {"name": "x", "version": "1"},
                    "entries": [_entry("https://example.com/", startedDateTime="yesterday")]})  # fmt: skip
    for path, needle in ((bad_b64, "entry 2: response.content.text is not valid base64"),
                         (bad_date, "entry 1: startedDateTime is not a date and time")):  # fmt: skip
        assert_one_line_error(run("import", str(path), "--store", str(tmp_path / "s.db"), check=False), needle)


# --- SAZ -------------------------------------------------------------------------------------------------------

_FIDDLER_META = (
    '\ufeff<?xml version="1.0" encoding="utf-8"?>\r\n<Session SID="{sid}" BitFlags="19">\r\n'
    '  <SessionTimers ClientConnected="2025-08-30T11:33:29.356942-07:00" '
    'ClientBeginRequest="2025-08-30T11:34:28.6859373-07:00" GotRequestHeaders="2025-08-30T11:34:28.686944-07:00" '
    'ClientDoneRequest="2025-08-30T11:34:28.686944-07:00" GatewayTime="0" DNSTime="0" TCPConnectTime="15" '
    'HTTPSHandshakeTime="42" ServerConnected="2025-08-30T11:34:28.7000000-07:00" '
    'FiddlerBeginRequest="2025-08-30T11:34:28.686944-07:00" ServerGotRequest="2025-08-30T11:34:28.686944-07:00" '
    'ServerBeginResponse="2025-08-30T11:34:28.8119049-07:00" GotResponseHeaders="2025-08-30T11:34:28.8119049-07:00" '
    'ServerDoneResponse="2025-08-30T11:34:28.9119049-07:00" ClientBeginResponse="2025-08-30T11:34:28.8119049-07:00" '
    'ClientDoneResponse="2025-08-30T11:34:28.9119049-07:00" />\r\n'
    '  <PipeInfo CltReuse="true" Reused="true" />\r\n  <SessionFlags>\r\n'
    '    <SessionFlag N="x-responsebodytransferlength" V="35,588" />\r\n'
    '    <SessionFlag N="x-clientport" V="{port}" />\r\n'
    '    <SessionFlag N="x-clientip" V="192.168.1.20" />\r\n'
    '    <SessionFlag N="x-hostip" V="44.195.242.49" />\r\n'
    '    <SessionFlag N="x-processinfo" V="msedge:12140" />\r\n'
    "  </SessionFlags>\r\n</Session>"
)


def _saz(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(name, data)
    return path


def test_saz_from_fiddler_and_other_writers(tmp_path: Path) -> None:
    jpeg = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256))
    body = json.dumps({"ok": True}).encode()
    chunked_gzip = gzip.compress(body)
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(chunked_gzip), chunked_gzip)
    classic = _saz(tmp_path / "classic.saz", {
        "raw/": b"",
        "raw/01_c.txt": b"GET https://httpbin.org/image/jpeg HTTP/1.1\r\nHost: httpbin.org\r\n\r\n",
        "raw/01_s.txt": b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpeg) + jpeg,
        "raw/01_m.xml": _FIDDLER_META.format(sid=6, port="53,010").encode("utf-8"),
        "raw/02_c.txt": b"POST https://httpbin.org/post HTTP/1.1\r\nHost: httpbin.org\r\nContent-Length: 3\r\n\r\na=1",
        "raw/02_s.txt": b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
                        b"Content-Encoding: gzip\r\n\r\n" + chunked,
        "raw/02_m.xml": _FIDDLER_META.format(sid=7, port="53011").encode("utf-8")[3:],  # no BOM
        "_index.htm": b"<html></html>",
        "[Content_Types].xml": b"<Types/>",
    })  # fmt: skip
    other = _saz(tmp_path / "other.saz", {  # unpadded, no _m.xml, no _index.htm, an origin-form request line
        "raw/1_c.txt": b"GET /plain HTTP/1.1\r\nHost: example.com:8080\r\n\r\n",
        "raw/1_s.txt": b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
        "raw/10_c.txt": b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
        "raw/10_s.txt": b"HTTP/1.1 200 Connection Established\r\n\r\n",
        "raw/2_c.txt": b"GET http://example.com/second HTTP/1.1\r\nHost: example.com\r\n\r\n",
    })  # fmt: skip
    rows = _import(tmp_path, classic, other)
    (r1, image), (r2, post), (r3, plain), (_, second), (_, connect) = rows
    assert image.response.content == jpeg and r1["client_ip"] == "192.168.1.20" and r1["client_port"] == 53010
    assert r1["process"] == "msedge (12140)" and r1["server_ip"] == "44.195.242.49"
    assert r1["ts"] == pytest.approx(1756579468.6859373) and r1["ttfb_ms"] == pytest.approx(124.961, abs=0.01)
    assert r1["tls_ms"] == pytest.approx(42) and r1["connect_ms"] == pytest.approx(15)
    assert post.request.content == b"a=1" and post.response.raw_content == chunked_gzip
    assert post.response.content == body and r2["client_port"] == 53011
    assert plain.request.url == "http://example.com:8080/plain" and plain.response.status_code == 404
    assert second.request.path == "/second" and second.response is None and second.error.msg == "no response"
    assert connect.request.method == "CONNECT" and connect.request.port == 443
    assert r3["source"] == str(other.resolve())


def test_saz_variants_that_are_broken(tmp_path: Path) -> None:
    cases = [
        ({"raw/1_c.txt": b"GET http://x/ HTTP/1.1\r\n\r\n", "raw/1_s.txt": b"HTTP/1.1 200 OK\r\n"
          b"Transfer-Encoding: chunked\r\n\r\nzz\r\n"}, "session raw/1_c.txt: its chunked body has a bad chunk size"),
        ({"raw/1_c.txt": b"hello\r\n\r\n"}, "session raw/1_c.txt: request line b'hello'"),
        ({"raw/1_s.txt": b"HTTP/1.1 200 OK\r\n\r\n"}, "not a SAZ file (no raw/N_c.txt"),
        ({"raw/1_c.txt": b"GET http://x/ HTTP/1.1\r\n\r\n", "raw/1_m.xml": b"<Session"}, "_m.xml is not XML"),
    ]  # fmt: skip
    for i, (files, needle) in enumerate(cases):
        path = _saz(tmp_path / f"bad{i}.saz", files)
        assert_one_line_error(run("import", str(path), "--store", str(tmp_path / "s.db"), check=False), needle)


# --- mitmproxy flow files from older versions -----------------------------------------------------------------


@pytest.mark.parametrize("version", ["9", "10"])
def test_mitmproxy_flow_files_from_older_versions(tmp_path: Path, version: str) -> None:
    """Written by ``mitmdump -w`` of mitmproxy 9.0.1 and 10.4.2 (tests/data/README.md says how)."""
    rows = _import(tmp_path, DATA / f"mitmdump-{version}.mitm")
    assert [(r["method"], r["path"], r["status"]) for r, _ in rows] == [
        ("GET", "/json", 200),
        ("POST", "/echo", 200),
        ("GET", "/image.png", 200),
    ]
    assert rows[1][1].request.content == bytes(range(256))
    assert rows[0][0]["client_ip"] == "127.0.0.1" and rows[0][0]["source"].endswith(f"mitmdump-{version}.mitm")

"""Direct checks of the test origins (no proxy), so proxy test failures can't be origin bugs."""

from __future__ import annotations

import gzip
import hashlib
import struct
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from origins import (
    CHUNKED_TEXT,
    FORM_BODY,
    HTML_BODY,
    JSON_BYTES,
    JSON_DOC,
    PNG_BYTES,
    XML_BODY,
    HangServer,
    OriginServer,
    ResetServer,
    TestPKI,
    pattern_bytes,
    refused_port,
)
from websockets.sync.client import connect


@pytest.fixture(scope="module", params=["http", "https"])
def origin(request: pytest.FixtureRequest, pki: TestPKI) -> Iterator[OriginServer]:
    with OriginServer(pki if request.param == "https" else None) as server:
        yield server


@pytest.fixture
def client(origin: OriginServer, pki: TestPKI) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=origin.url, verify=pki.client_context(), timeout=10) as c:
        yield c


def test_pki_files(pki: TestPKI) -> None:
    for path in (pki.ca_pem, pki.cert_pem, pki.key_pem):
        assert Path(path).read_bytes().startswith(b"-----BEGIN")


def test_json(client: httpx.Client) -> None:
    r = client.get("/json")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert r.json() == JSON_DOC


def test_echo(client: httpx.Client, origin: OriginServer) -> None:
    r = client.post("/echo?x=1&y=%C3%A9", content="héllo", headers={"X-Test": "Yes"})
    echo = r.json()
    assert echo["method"] == "POST"
    assert echo["path"] == "/echo"
    assert echo["query"] == "x=1&y=%C3%A9"
    assert echo["headers"]["x-test"] == "Yes"
    assert echo["body"] == "héllo"
    assert echo["body_length"] == len("héllo".encode())
    assert echo["http_version"] == "1.1"
    assert echo["scheme"] == origin.url.split(":")[0]


def test_status(client: httpx.Client) -> None:
    for code in (201, 204, 404, 418, 500, 503):
        assert client.get(f"/status/{code}").status_code == code
    assert client.get("/status/418").text == "status 418\n"


def test_bytes(client: httpx.Client) -> None:
    assert client.get("/bytes/0").content == b""
    assert client.get("/bytes/1000").content == pattern_bytes(1000)
    n = 20 * 1024 * 1024
    start = time.monotonic()
    r = client.get(f"/bytes/{n}")
    assert time.monotonic() - start < 5
    assert r.headers["content-length"] == str(n)
    assert r.headers["content-type"] == "application/octet-stream"
    assert hashlib.sha256(r.content).digest() == hashlib.sha256(pattern_bytes(n)).digest()


def test_head_has_no_body(client: httpx.Client) -> None:
    r = client.head("/bytes/5000")
    assert r.headers["content-length"] == "5000"
    assert r.content == b""


def test_chunked(client: httpx.Client) -> None:
    r = client.get("/chunked")
    assert r.text == CHUNKED_TEXT
    assert r.headers["content-type"] == "text/plain"
    assert "content-length" not in r.headers
    assert r.headers["transfer-encoding"] == "chunked"


def test_gzip_and_br(client: httpx.Client) -> None:
    r = client.get("/gzip")
    assert r.headers["content-encoding"] == "gzip"
    assert r.json() == JSON_DOC
    r = client.get("/br")
    assert r.headers["content-encoding"] == "br"
    assert r.json() == JSON_DOC


def test_gzip_raw_bytes(client: httpx.Client) -> None:
    """The wire body really is gzip (httpx decodes transparently otherwise)."""
    with client.stream("GET", "/gzip") as r:
        raw = b"".join(r.iter_raw())
    assert gzip.decompress(raw) == JSON_BYTES


@pytest.mark.parametrize(
    ("path", "content_type", "body"),
    [
        ("/html", "text/html; charset=utf-8", HTML_BODY),
        ("/xml", "application/xml", XML_BODY),
        ("/form", "application/x-www-form-urlencoded", FORM_BODY),
        ("/image.png", "image/png", PNG_BYTES),
    ],
    ids=["html", "xml", "form", "png"],
)
def test_static(client: httpx.Client, path: str, content_type: str, body: bytes) -> None:
    r = client.get(path)
    assert r.headers["content-type"] == content_type
    assert r.content == body


def test_png_is_valid() -> None:
    assert PNG_BYTES.startswith(b"\x89PNG\r\n\x1a\n")
    pos, chunks = 8, {}
    while pos < len(PNG_BYTES):
        (length,) = struct.unpack(">I", PNG_BYTES[pos : pos + 4])
        tag, data = PNG_BYTES[pos + 4 : pos + 8], PNG_BYTES[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", PNG_BYTES[pos + 8 + length : pos + 12 + length])
        assert zlib.crc32(tag + data) == crc
        chunks[tag] = data
        pos += 12 + length
    width, height = struct.unpack(">II", chunks[b"IHDR"][:8])
    assert (width, height) == (3, 2)
    assert len(zlib.decompress(chunks[b"IDAT"])) == height * (1 + width * 3)
    assert list(chunks) == [b"IHDR", b"IDAT", b"IEND"]


def test_slow(client: httpx.Client) -> None:
    start = time.monotonic()
    assert client.get("/slow?ms=200").text == "slow"
    assert time.monotonic() - start >= 0.2


def test_not_found(client: httpx.Client) -> None:
    assert client.get("/nope").status_code == 404
    assert client.post("/json").status_code == 405


def test_http2_over_tls(tls_origin: OriginServer, pki: TestPKI) -> None:
    with httpx.Client(http2=True, verify=pki.client_context()) as c:
        r = c.get(f"{tls_origin.url}/echo")
        assert r.http_version == "HTTP/2"
        assert r.json()["http_version"] == "2"
        r = c.get(f"{tls_origin.url}/bytes/{3 * 1024 * 1024}")
        assert r.content == pattern_bytes(3 * 1024 * 1024)


def test_websocket_echo(origin: OriginServer, pki: TestPKI) -> None:
    ssl_ctx = pki.client_context() if origin.url.startswith("https") else None
    with connect(origin.ws_url, ssl=ssl_ctx, open_timeout=5) as ws:
        ws.send("hi")
        assert ws.recv(timeout=5) == "echo:hi"
        ws.send(b"\x00\x01\xff")
        assert ws.recv(timeout=5) == b"\x00\x01\xff"


def test_refused() -> None:
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{refused_port()}/", timeout=2)


def test_reset() -> None:
    with ResetServer() as server, pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        httpx.get(f"{server.url}/", timeout=2)


def test_hang() -> None:
    with HangServer() as server:
        start = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            httpx.get(f"{server.url}/", timeout=0.5)
        assert time.monotonic() - start < 2
    start = time.monotonic()
    server.stop()  # idempotent
    assert time.monotonic() - start < 1

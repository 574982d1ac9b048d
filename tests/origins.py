"""Real origin servers for the test suite (no mocks).

The proxy is exercised end-to-end against these: a hypercorn-served ASGI app
(plain HTTP and TLS with ALPN h2/http1.1) covering the body shapes a debugging
proxy must get right, plus raw-socket origins that misbehave on purpose
(refuse, reset, hang) so error paths can be tested deterministically.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gzip
import json
import os
import socket
import ssl
import struct
import threading
import time
import zlib
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs

import trustme
from hypercorn.asyncio import serve
from hypercorn.config import Config

try:
    import brotli
except ImportError:  # pragma: no cover - mitmproxy depends on brotli
    brotli = None

Message = MutableMapping[str, Any]
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# --- Canned bodies, exported so tests can compare what comes through the proxy.

JSON_DOC: dict[str, Any] = {"hello": "world", "items": [1, 2, 3], "nested": {"ok": True}}
JSON_BYTES = json.dumps(JSON_DOC).encode()
CHUNKS: list[bytes] = [f"chunk-{i}\n".encode() for i in range(10)]
CHUNKED_TEXT = b"".join(CHUNKS).decode()
HTML_BODY = b"<!doctype html>\n<html><head><title>proxycap</title></head><body><h1>Hello</h1></body></html>\n"
XML_BODY = b'<?xml version="1.0" encoding="utf-8"?>\n<root><item id="1">one</item><item id="2">two</item></root>\n'
FORM_BODY = b"a=1&b=two"
BYTES_PATTERN = b"0123456789abcdef"
BYTES_CHUNK_SIZE = 256 * 1024  # multiple of len(BYTES_PATTERN), so every chunk starts in phase


# Every HTTP request the origins received, as "METHOD path?query", newest last: a test that must show a request never
# reached the origin looks for its unique path here.
SEEN: collections.deque[str] = collections.deque(maxlen=10_000)


def pattern_bytes(n: int) -> bytes:
    """The exact body `/bytes/{n}` returns, for comparisons in tests."""
    reps = -(-n // len(BYTES_PATTERN))
    return (BYTES_PATTERN * reps)[:n]


def _make_png(width: int, height: int) -> bytes:
    """A valid RGB PNG built by hand, so there is no PIL dependency."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit truecolour
    rows = b"".join(
        b"\x00" + b"".join(bytes(((x * 120) % 256, (y * 200) % 256, 90)) for x in range(width)) for y in range(height)
    )
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


PNG_BYTES = _make_png(3, 2)


# --- PKI


class TestPKI:
    """A throwaway CA and a localhost server cert, written to `directory`.

    Files on disk (rather than in-memory objects) because both hypercorn and
    the proxy under test (upstream trust options) take paths.
    """

    __test__ = False  # not a pytest test class despite the name

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.ca = trustme.CA()
        self.server_cert = self.ca.issue_cert("localhost", "127.0.0.1", "::1")
        self.ca_pem = str(directory / "ca.pem")
        self.cert_pem = str(directory / "server.pem")
        self.key_pem = str(directory / "server.key")
        self.ca.cert_pem.write_to_path(self.ca_pem)
        Path(self.cert_pem).write_bytes(b"".join(blob.bytes() for blob in self.server_cert.cert_chain_pems))
        self.server_cert.private_key_pem.write_to_path(self.key_pem)

    def client_context(self) -> ssl.SSLContext:
        """Client SSL context trusting only this CA (httpx deprecates `verify=<path>`)."""
        return ssl.create_default_context(cafile=self.ca_pem)


# --- ASGI app


def _headers(content_type: str, length: int | None = None, **extra: str) -> list[tuple[bytes, bytes]]:
    headers = [(b"content-type", content_type.encode())]
    if length is not None:
        headers.append((b"content-length", str(length).encode()))
    headers += [(k.replace("_", "-").encode(), v.encode()) for k, v in extra.items()]
    return headers


async def _respond(send: Send, status: int, body: bytes, content_type: str, **extra: str) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": _headers(content_type, len(body), **extra),
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _read_body(receive: Receive) -> bytes:
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        body += message.get("body", b"")
        if not message.get("more_body", False):
            break
    return bytes(body)


def _strip_body(send: Send) -> Send:
    """HEAD responses keep their headers (incl. Content-Length) but must carry no body."""

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.body":
            message = {**message, "body": b""}
        await send(message)

    return wrapped


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _websocket(scope: Scope, receive: Receive, send: Send) -> None:
    """Echo server: text comes back as "echo:<text>", binary unchanged."""
    message = await receive()  # websocket.connect
    if scope["path"] != "/ws":
        await send({"type": "websocket.close", "code": 1008})
        return
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": "echo:" + message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message.get("bytes") or b""})


async def _send_bytes(send: Send, n: int, chunked: bool = False) -> None:
    """Stream n pattern bytes in chunks, announcing Content-Length up front unless ``chunked``."""
    length = None if chunked else n
    await send({"type": "http.response.start", "status": 200, "headers": _headers("application/octet-stream", length)})
    block = BYTES_PATTERN * (BYTES_CHUNK_SIZE // len(BYTES_PATTERN))
    sent = 0
    while sent < n:
        size = min(BYTES_CHUNK_SIZE, n - sent)
        sent += size
        await send({"type": "http.response.body", "body": block[:size], "more_body": sent < n})
    if n == 0:
        await send({"type": "http.response.body", "body": b""})


async def origin_app(scope: Scope, receive: Receive, send: Send) -> None:
    """The test origin. Routes are listed in the module's public API summary."""
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    if scope["type"] == "websocket":
        return await _websocket(scope, receive, send)

    method: str = scope["method"]
    path: str = scope["path"]
    query = scope.get("query_string", b"").decode("latin-1")
    body = await _read_body(receive)
    SEEN.append(f"{method} {path}?{query}" if query else f"{method} {path}")
    if method == "HEAD":
        send = _strip_body(send)

    if path == "/json":
        if method not in ("GET", "HEAD"):
            return await _respond(send, 405, b"method not allowed\n", "text/plain", allow="GET, HEAD")
        return await _respond(send, 200, JSON_BYTES, "application/json")
    if path == "/echo":
        headers: dict[str, str] = {}
        for raw_name, raw_value in scope["headers"]:
            name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        echo = {
            "method": method,
            "path": path,
            "query": query,
            "headers": headers,
            "body": body.decode("utf-8", errors="replace"),
            "body_length": len(body),
            "http_version": scope["http_version"],
            "scheme": scope["scheme"],
        }
        return await _respond(send, 200, json.dumps(echo).encode(), "application/json")
    if path.startswith("/status/") and path[8:].isdigit() and 200 <= int(path[8:]) <= 599:
        code = int(path[8:])
        text = b"" if code in (204, 304) else f"status {code}\n".encode()
        return await _respond(send, code, text, "text/plain")
    if path.startswith("/bytes/") and path[7:].isdigit():
        return await _send_bytes(send, int(path[7:]), chunked="chunked" in parse_qs(query))
    if path == "/chunked":
        await send({"type": "http.response.start", "status": 200, "headers": _headers("text/plain")})
        for piece in CHUNKS:
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        return await send({"type": "http.response.body", "body": b""})
    if path == "/gzip":
        return await _respond(send, 200, gzip.compress(JSON_BYTES), "application/json", content_encoding="gzip")
    if path == "/br":
        if brotli is None:  # pragma: no cover
            return await _respond(send, 501, b"brotli not available\n", "text/plain")
        return await _respond(send, 200, brotli.compress(JSON_BYTES), "application/json", content_encoding="br")
    if path == "/html":
        return await _respond(send, 200, HTML_BODY, "text/html; charset=utf-8")
    if path == "/xml":
        return await _respond(send, 200, XML_BODY, "application/xml")
    if path == "/form":
        return await _respond(send, 200, FORM_BODY, "application/x-www-form-urlencoded")
    if path == "/image.png":
        return await _respond(send, 200, PNG_BYTES, "image/png")
    if path == "/slow":
        try:
            ms = int(parse_qs(query).get("ms", ["1000"])[0])
        except ValueError:
            return await _respond(send, 400, b"bad ms\n", "text/plain")
        await asyncio.sleep(ms / 1000)
        return await _respond(send, 200, b"slow", "text/plain")
    return await _respond(send, 404, b"not found\n", "text/plain")


# --- hypercorn runner


def _quiet_cancellation(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """Requests still running after the graceful timeout get cancelled on stop(); on 3.11
    asyncio's stream callback then logs a spurious CancelledError traceback. Drop just those."""
    if not isinstance(context.get("exception"), asyncio.CancelledError):
        loop.default_exception_handler(context)


class OriginServer:
    """Serves an ASGI app with hypercorn on a private thread + event loop.

    The listening socket is bound here (port 0) and handed to hypercorn as
    `fd://` so the port is known without a find-free-port race. Pass `pki` for
    TLS with ALPN h2/http1.1; otherwise plain HTTP/1.1.
    """

    def __init__(self, pki: TestPKI | None = None, app: ASGIApp = origin_app, host: str = "127.0.0.1") -> None:
        self.pki = pki
        self.app = app
        self.host = host
        self.port = 0
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._shutdown: asyncio.Event | None = None
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        """Base URL; TLS uses "localhost" so the hostname matches the cert like a real client would."""
        if self.pki is not None:
            return f"https://localhost:{self.port}"
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return self.url.replace("http", "ws", 1) + "/ws"

    def _config(self, fd: int) -> Config:
        config = Config()
        config.bind = [f"fd://{fd}"]
        config.accesslog = None
        config.errorlog = None
        config.graceful_timeout = 1.0
        if self.pki is not None:
            config.certfile = self.pki.cert_pem
            config.keyfile = self.pki.key_pem
            config.alpn_protocols = ["h2", "http/1.1"]
        return config

    def _run(self, config: Config) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._loop.set_exception_handler(_quiet_cancellation)
            self._shutdown = asyncio.Event()
            await serve(self.app, config, shutdown_trigger=self._shutdown.wait)  # type: ignore[arg-type]

        try:
            asyncio.run(main())
        except BaseException as e:  # surfaced by start()
            self._error = e

    def start(self, timeout: float = 10.0) -> Self:
        """Start serving; returns once hypercorn is listening on the socket."""
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET, socket.SOCK_STREAM)
        sock.bind((self.host, 0))
        self._sock = sock
        self.port = sock.getsockname()[1]
        # hypercorn owns the dup; our fd lets us see when it starts listening.
        config = self._config(os.dup(sock.fileno()))
        self._thread = threading.Thread(target=self._run, args=(config,), name=f"origin-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._thread.is_alive():
            if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
                return self
            time.sleep(0.005)
        self.stop()
        raise RuntimeError(f"origin server failed to start on port {self.port}") from self._error

    def stop(self) -> None:
        """Graceful hypercorn shutdown, then join the thread and release the socket."""
        if self._thread is not None:
            if self._loop is not None and self._shutdown is not None:
                with contextlib.suppress(RuntimeError):  # loop already closed
                    self._loop.call_soon_threadsafe(self._shutdown.set)
            self._thread.join(timeout=10)
            self._thread = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


# --- misbehaving raw-socket origins


def refused_port() -> int:
    """A 127.0.0.1 port with nothing listening (bound then closed), so connects get refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _RawServer:
    """Accept loop on a daemon thread; subclasses decide what to do per connection."""

    def __init__(self) -> None:
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._stopping = threading.Event()
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        self._listener.listen(64)
        self._listener.settimeout(0.05)  # lets the accept loop notice stop() promptly
        self._spawn(self._accept_loop)
        return self

    def _spawn(self, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(None)
            with self._lock:
                if self._stopping.is_set():
                    conn.close()
                    return
                self._conns.add(conn)
            self._spawn(self._handle, conn)

    @staticmethod
    def _read_head(conn: socket.socket) -> bytes:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
        return data

    def _handle(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def _forget(self, conn: socket.socket) -> None:
        with self._lock:
            self._conns.discard(conn)

    def stop(self) -> None:
        self._stopping.set()
        self._listener.close()
        with self._lock:
            conns, self._conns = self._conns, set()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)  # wakes a recv() blocked in a handler
            conn.close()
        for thread in self._threads:
            thread.join(timeout=2)
        self._threads.clear()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class ResetServer(_RawServer):
    """Reads the request head, then aborts with a TCP RST (SO_LINGER 0) instead of answering."""

    def _handle(self, conn: socket.socket) -> None:
        try:
            self._read_head(conn)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        finally:
            self._forget(conn)
            conn.close()


class HangServer(_RawServer):
    """Reads whatever arrives but never answers; sockets stay open until stop()."""

    def _handle(self, conn: socket.socket) -> None:
        try:
            while conn.recv(65536):
                pass
        except OSError:
            pass

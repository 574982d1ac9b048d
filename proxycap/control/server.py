"""The control API served to UIs in other processes (``proxycap tui --attach``, the browser view).

A running capture listens on a Unix socket in the user's runtime folder, readable by its owner only, named after the
proxy's port; and, only when asked, on a loopback TCP port that wants a random token. The wire is JSON, a line a
message. A connection first says what it is for: calls (``{"method", "args"}`` answered by ``{"result"}`` or
``{"error"}``, one at a time) or a feed (the events ``LocalControl.subscribe`` delivers, written as they come). Each
connection has a thread of its own; the proxy's thread never waits for one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hmac
import json
import logging
import os
import secrets
import socket
import socketserver
import stat
import threading
import warnings
from pathlib import Path
from typing import Any

import platformdirs

from proxycap.capture.bus import Event
from proxycap.control.api import FEED_KINDS, Control, Outcome
from proxycap.control.local import LocalControl
from proxycap.paths import APP, private_dir

logger = logging.getLogger(__name__)

PROTOCOL = 1
FEED_INTERVAL = 0.05  # seconds between a feed's writes while events come
SOCKET_SUFFIX = ".sock"
# What a call may name: the Control protocol's methods, no more (subscribe is a connection of its own).
CALLS = frozenset(name for name in vars(Control) if not name.startswith("_")) - {"subscribe"}
EVENTS = {cls.__name__: cls for cls in FEED_KINDS}


class ControlError(Exception):
    """The control channel cannot be used; the message is one line for the user."""


def runtime_dir() -> Path:
    """Where running captures offer their control sockets: the user's runtime folder, private to them."""
    with warnings.catch_warnings():  # no XDG_RUNTIME_DIR (a container, a cron job): platformdirs' /tmp fallback
        warnings.simplefilter("ignore")
        folder = Path(platformdirs.user_runtime_dir(APP))
    private_dir(folder)
    info = folder.stat()
    if info.st_uid != os.getuid() or stat.S_IMODE(info.st_mode) & 0o077:
        raise ControlError(f"{folder} is not private to you (owner or mode): remove it, or set XDG_RUNTIME_DIR")
    return folder


def socket_path(port: int) -> Path:
    return runtime_dir() / f"proxy-{port}{SOCKET_SUFFIX}"


def encode(value: Any) -> Any:
    """A call's result or an event as JSON data."""
    if isinstance(value, Outcome):
        return {"outcome": dataclasses.asdict(value)}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"event": type(value).__name__, "fields": dataclasses.asdict(value)}
    return value


def decode(value: Any) -> Any:
    if isinstance(value, dict) and "outcome" in value:
        return Outcome(**value["outcome"])
    if isinstance(value, dict) and "event" in value:
        fields = {k: v for k, v in value["fields"].items() if k != "kind"}
        return EVENTS[value["event"]](**fields)
    return value


def send(stream: Any, message: dict[str, Any]) -> None:
    stream.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")
    stream.flush()


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        self.server.connections.add(self.connection)
        try:
            hello = json.loads(self.rfile.readline() or b"null")
            if not isinstance(hello, dict) or hello.get("protocol") != PROTOCOL:
                return send(self.wfile, {"error": "not a proxycap control client of this version"})
            token = self.server.token
            if token is not None and not hmac.compare_digest(str(hello.get("token", "")), token):
                return send(self.wfile, {"error": "wrong or missing token"})
            send(self.wfile, {"ok": True})
            if hello.get("feed"):
                self._feed(str(hello.get("name", "remote")), int(hello.get("limit", 50_000)))
            else:
                self._calls()
        except (OSError, ValueError) as e:  # a client gone, or talking nonsense: only its connection ends
            logger.debug(f"control connection ended: {e}")
        finally:
            self.server.connections.discard(self.connection)

    def _calls(self) -> None:
        control = self.server.control
        while line := self.rfile.readline():
            request = json.loads(line)
            method = request.get("method")
            if method not in CALLS:
                send(self.wfile, {"error": f"no such call: {method!r}"})
                continue
            try:
                result = getattr(control, method)(*request.get("args", ()))
            except Exception as e:  # the caller hears it in one line; the capture goes on
                logger.warning(f"control call {method} failed: {e}")
                send(self.wfile, {"error": str(e) or type(e).__name__})
            else:
                send(self.wfile, {"result": encode(result)})

    def _feed(self, name: str, limit: int) -> None:
        feed = self.server.control.subscribe(name, limit)
        stop = self.server.stopping
        try:
            with contextlib.suppress(OSError):  # EOF from the client shows as a failed write
                while not stop.wait(FEED_INTERVAL):
                    if feed.take_lagged():
                        send(self.wfile, {"lagged": True})
                    events: list[Event] = feed.drain()
                    if events:
                        send(self.wfile, {"events": [encode(e) for e in events]})
        finally:
            feed.close()


class _Server(socketserver.ThreadingMixIn, socketserver.BaseServer):
    daemon_threads = True
    control: LocalControl
    token: str | None
    stopping: threading.Event
    connections: set[socket.socket]


class _UnixServer(_Server, socketserver.UnixStreamServer):
    pass


class _TCPServer(_Server, socketserver.TCPServer):
    allow_reuse_address = True


class ControlServer:
    """Serves ``control`` on ``path`` (a Unix socket, 0600), and on ``127.0.0.1:tcp_port`` with a token if given."""

    def __init__(self, control: LocalControl, path: Path, tcp_port: int | None = None) -> None:
        self.control = control
        self.path = path
        self.tcp_port = tcp_port
        self.token: str | None = None
        self.stopping = threading.Event()
        self._servers: list[_Server] = []

    def start(self) -> None:
        """Listen; raises ControlError with a one-line reason (another capture on the same port answering there)."""
        if self.path.exists():
            if answers(self.path):
                raise ControlError(f"another proxycap already offers its control socket at {self.path}")
            self.path.unlink()  # left by a capture that did not stop cleanly
        old_umask = os.umask(0o177)  # the socket is made 0600, not readable by others for a moment first
        try:
            unix = _UnixServer(str(self.path), _Handler)
        finally:
            os.umask(old_umask)
        self._serve(unix, None)
        if self.tcp_port is not None:
            self.token = secrets.token_urlsafe(24)
            try:
                tcp = _TCPServer(("127.0.0.1", self.tcp_port), _Handler)
            except OSError as e:
                self.stop()
                raise ControlError(f"cannot offer the control API on 127.0.0.1:{self.tcp_port}: {e.strerror}") from None
            self.tcp_port = tcp.server_address[1]
            self._serve(tcp, self.token)

    def _serve(self, server: _Server, token: str | None) -> None:
        server.control, server.token, server.stopping, server.connections = self.control, token, self.stopping, set()
        self._servers.append(server)
        threading.Thread(target=server.serve_forever, args=(0.05,), name="proxycap-control", daemon=True).start()

    def stop(self) -> None:
        """Stop answering: feeds end (attached windows see the proxy stopped), the socket goes."""
        self.stopping.set()
        for server in self._servers:
            server.shutdown()
            server.server_close()
            for connection in list(server.connections):  # windows waiting on a call hear the end at once
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
        self._servers.clear()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def answers(path: Path) -> bool:
    """Whether a capture listens on the control socket at ``path`` (else it is left from one that did not stop)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(str(path))
        except OSError:
            return False
        return True

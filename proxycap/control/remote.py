"""The control API of a capture running in another process, over its control channel (``server.py``).

``RemoteControl`` offers the same calls as ``LocalControl``; its feed reads events on a thread of its own and keeps
them for the UI to drain, as a bus subscription would. When the capture stops, the feed says so (``ended``) and calls
fail with ``ControlError``: the window stays, reading the store.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import socket
import threading
from typing import Any

from proxycap.capture.bus import Event
from proxycap.control.server import (
    CALLS,
    PROTOCOL,
    SOCKET_SUFFIX,
    ControlError,
    answers,
    decode,
    runtime_dir,
    send,
    socket_path,
)

CONNECT_TIMEOUT = 5.0
CALL_TIMEOUT = 30.0  # a replay waits for the engine's loop; nothing answers slower than that


def find(address: str | None) -> str:
    """The control address to attach to: ``address`` (a port, a socket's path, or HOST:PORT for TCP), or else the
    one capture running. ControlError with a one-line reason if there is none, or several to choose from."""
    if address:
        if address.isdigit():
            return str(socket_path(int(address)))
        return address
    folder = runtime_dir()
    running = [str(p) for p in sorted(folder.glob(f"*{SOCKET_SUFFIX}")) if answers(p)]
    if not running:
        raise ControlError(f"no proxycap is running (no control socket in {folder}); start proxycap record or tui")
    if len(running) > 1:
        raise ControlError(f"several proxycap captures run: choose one with --attach ({', '.join(running)})")
    return running[0]


def _connect(address: str, hello: dict[str, Any]) -> socket.socket:
    try:
        if ":" in address and not address.startswith(("/", ".")):  # HOST:PORT
            host, _, port = address.rpartition(":")
            sock = socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT)
            hello = {**hello, "token": os.environ.get("PROXYCAP_TOKEN", "")}
        else:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(CONNECT_TIMEOUT)
            sock.connect(address)
    except (OSError, ValueError) as e:
        raise ControlError(f"no proxycap answers at {address} ({getattr(e, 'strerror', None) or e})") from None
    stream = sock.makefile("rwb")
    send(stream, {"protocol": PROTOCOL, **hello})
    answer = json.loads(stream.readline() or b"{}")
    if not answer.get("ok"):
        sock.close()
        raise ControlError(f"{address}: {answer.get('error', 'the capture closed the connection')}")
    sock.settimeout(None)
    return sock


class RemoteFeed:
    """Events from the capture, queued for the UI; at most ``limit`` (then it lags, and the UI reloads)."""

    def __init__(self, address: str, name: str, limit: int) -> None:
        self._sock = _connect(address, {"feed": True, "name": name, "limit": limit})
        self._limit = limit
        self._queue: collections.deque[Event] = collections.deque()
        self._lagged = False
        self.ended = False  # the capture stopped (or the channel broke)
        threading.Thread(target=self._read, name="proxycap-feed", daemon=True).start()

    def _read(self) -> None:
        with contextlib.suppress(OSError, ValueError), self._sock.makefile("rb") as stream:
            for line in stream:
                message = json.loads(line)
                if message.get("lagged"):
                    self._lagged = True
                for event in message.get("events", ()):
                    if len(self._queue) >= self._limit:
                        self._lagged = True
                        break
                    self._queue.append(decode(event))
        self.ended = True

    def drain(self, max_items: int | None = None) -> list[Event]:
        n = len(self._queue) if max_items is None else min(max_items, len(self._queue))
        return [self._queue.popleft() for _ in range(n)]

    def take_lagged(self) -> bool:
        lagged, self._lagged = self._lagged, False
        return lagged

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()


class RemoteControl:
    """A capture's control API over its control channel: the calls of ``Control``, one at a time."""

    in_process = False

    def __init__(self, address: str) -> None:
        self.address = address
        self._sock = _connect(address, {})
        self._stream = self._sock.makefile("rwb")
        self._lock = threading.Lock()

    def _call(self, method: str, *args: Any) -> Any:
        with self._lock:
            try:
                self._sock.settimeout(CALL_TIMEOUT)
                send(self._stream, {"method": method, "args": list(args)})
                answer = json.loads(self._stream.readline() or b"{}")
            except (OSError, ValueError):
                answer = {}
        if "result" in answer:
            return decode(answer["result"])
        raise ControlError(answer.get("error") or "the proxy stopped")

    def __getattr__(self, name: str) -> Any:
        if name not in CALLS:
            raise AttributeError(name)
        return lambda *args: self._call(name, *args)

    def subscribe(self, name: str, limit: int) -> RemoteFeed:
        return RemoteFeed(self.address, name, limit)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.close()

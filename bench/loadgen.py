"""Closed-loop load generator: worker processes, each with a few threads, one proxy connection per thread.

Shapes: HTTP keep-alive, HTTP with a new connection per request, HTTPS through CONNECT with keep-alive.
Raw sockets and a minimal HTTP/1.1 reader keep the client cheap (it shares the 2 cores with the proxy).
Every loop is bounded by a deadline and an optional request count; only loopback addresses are used.
"""

from __future__ import annotations

import array
import dataclasses
import multiprocessing as mp
import os
import socket
import ssl
import statistics
import threading
import time
from typing import Any

CONNECT_TIMEOUT = 5.0
IO_TIMEOUT = 30.0
SPAWN_ALLOWANCE = 0.6  # seconds for the spawned workers to import before the common start
SOURCES = tuple(f"127.0.2.{i}" for i in range(1, 9))  # client addresses: the "devices" of the memory and UI stores


@dataclasses.dataclass(frozen=True)
class Shape:
    name: str
    tls: bool
    keepalive: bool
    size: int


SHAPES: dict[str, Shape] = {
    s.name: s
    for s in (
        Shape("http-ka-1k", False, True, 1024),
        Shape("http-new-1k", False, False, 1024),
        Shape("https-ka-1k", True, True, 1024),
        Shape("http-ka-64k", False, True, 65536),
        Shape("http-new-64k", False, False, 65536),
        Shape("https-ka-64k", True, True, 65536),
    )
}


@dataclasses.dataclass(frozen=True)
class LoadSpec:
    proxy_port: int
    origin_port: int
    origin_tls_port: int
    shape: Shape
    duration: float = 10.0  # measured seconds (after warmup); also the hard bound for count-based runs
    warmup: float = 1.0
    max_requests: int | None = None  # stop after this many measured requests (all workers together)
    procs: int = 2
    conns: int = 2  # threads (= proxy connections) per process
    hosts: tuple[str, ...] = ("127.0.0.1",)  # origin addresses; connection i targets hosts[i % n]
    sources: tuple[str, ...] = ("127.0.0.1",)  # client source addresses; connection i binds sources[i % n]
    proxy_ca: str | None = None  # PEM the client trusts for HTTPS through the proxy
    proxy_host: str = "127.0.0.1"
    rotate_every: int = 0  # keep-alive: move to the next (host, source) pair after this many requests

    def pair(self, index: int) -> tuple[str, str]:
        """The origin host and client source address of connection number ``index``."""
        nh = len(self.hosts)
        return self.hosts[index % nh], self.sources[(index // nh + index) % len(self.sources)]

    def __post_init__(self) -> None:
        for a in (*self.hosts, *self.sources, self.proxy_host):
            if not a.startswith("127."):
                raise ValueError(f"loopback addresses only: {a}")


@dataclasses.dataclass
class LoadResult:
    requests: int
    errors: int
    elapsed: float
    latencies_ms: list[float]
    last_error: str = ""
    total_requests: int = 0  # including warmup: pairs with the proxy's CPU time over the whole run

    @property
    def rps(self) -> float:
        return self.requests / self.elapsed if self.elapsed > 0 else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        if len(self.latencies_ms) == 1:
            return self.latencies_ms[0]
        return statistics.quantiles(self.latencies_ms, n=1000, method="inclusive")[round(q * 1000) - 1]

    @property
    def p50(self) -> float:
        return self.percentile(0.5)

    @property
    def p99(self) -> float:
        return self.percentile(0.99)


class _Conn:
    """One client connection to the proxy (plain or a CONNECT tunnel with TLS)."""

    def __init__(self, spec: LoadSpec, host: str, source: str, ctx: ssl.SSLContext | None) -> None:
        self.spec, self.host, self.source, self.ctx = spec, host, source, ctx
        self.sock: socket.socket | None = None
        self.buf = bytearray()
        port = spec.origin_tls_port if spec.shape.tls else spec.origin_port
        target = f"{host}:{port}"
        path = f"/size/{spec.shape.size}"
        close = "" if spec.shape.keepalive else "Connection: close\r\n"
        if spec.shape.tls:
            self.request = f"GET {path} HTTP/1.1\r\nHost: {target}\r\n{close}\r\n".encode()
        else:
            self.request = f"GET http://{target}{path} HTTP/1.1\r\nHost: {target}\r\n{close}\r\n".encode()
        self.connect_line = f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode()

    def open(self) -> None:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.settimeout(CONNECT_TIMEOUT)
        if self.source != "127.0.0.1":
            s.bind((self.source, 0))
        s.connect((self.spec.proxy_host, self.spec.proxy_port))
        s.settimeout(IO_TIMEOUT)
        self.buf.clear()
        if self.spec.shape.tls:
            assert self.ctx is not None
            s.sendall(self.connect_line)
            status, _ = self._read(s, head_only=True)
            if status != 200:
                s.close()
                raise ConnectionError(f"CONNECT answered {status}")
            s = self.ctx.wrap_socket(s, server_hostname=self.host)
        self.sock = s

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None

    def _read(self, s: socket.socket, head_only: bool = False) -> tuple[int, int]:
        buf = self.buf
        while (end := buf.find(b"\r\n\r\n")) < 0:
            chunk = s.recv(262144)
            if not chunk:
                raise ConnectionError("connection closed before the response head")
            buf += chunk
        head = bytes(buf[:end]).decode("latin-1")
        del buf[: end + 4]
        lines = head.split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        if head_only:
            return status, 0
        length = -1
        for ln in lines[1:]:
            k, _, v = ln.partition(":")
            if k.strip().lower() == "content-length":
                length = int(v)
        if length < 0:
            raise ConnectionError("response without Content-Length")
        while len(buf) < length:
            chunk = s.recv(262144)
            if not chunk:
                raise ConnectionError("connection closed in the body")
            buf += chunk
        del buf[:length]
        return status, length

    def request_once(self) -> int:
        """One request/response; opens the connection when needed. Returns the body size."""
        if self.sock is None:
            self.open()
        assert self.sock is not None
        self.sock.sendall(self.request)
        status, n = self._read(self.sock)
        if status != 200 or n != self.spec.shape.size:
            raise ConnectionError(f"unexpected response: {status}, {n} bytes")
        if not self.spec.shape.keepalive:
            self.close()
        return n


def _thread_loop(
    spec: LoadSpec, index: int, quota: int | None, out: dict[str, Any], progress: Any, start: float, stop: Any
) -> None:
    ctx = None
    if spec.shape.tls:
        ctx = ssl.create_default_context(cafile=spec.proxy_ca)
    conn = _Conn(spec, *spec.pair(index), ctx)
    stride = spec.procs * spec.conns
    lat = array.array("d")
    errors, done, last_error, total = 0, 0, "", 0
    time.sleep(max(0.0, start - time.monotonic()))
    measure_from = start + spec.warmup
    deadline = measure_from + spec.duration
    first = last = 0.0
    unreported = 0
    while True:
        now = time.monotonic()
        if now >= deadline or (quota is not None and done >= quota) or stop.is_set():
            break
        try:
            if spec.shape.keepalive or conn.sock is None:
                t0 = time.perf_counter()
            conn.request_once()
            t1 = time.perf_counter()
            total += 1
        except (OSError, ConnectionError, ValueError, IndexError) as e:
            conn.close()
            if now >= measure_from:
                errors += 1
                last_error = f"{type(e).__name__}: {e}"
            time.sleep(0.01)
            continue
        if now >= measure_from:
            if not first:
                first = now
            last = time.monotonic()
            lat.append((t1 - t0) * 1000)
            done += 1
            unreported += 1
            if spec.rotate_every and done % spec.rotate_every == 0:
                conn.close()
                index += stride
                conn = _Conn(spec, *spec.pair(index), ctx)
            if progress is not None and unreported >= 50:
                with progress.get_lock():
                    progress.value += unreported
                unreported = 0
    conn.close()
    if progress is not None and unreported:
        with progress.get_lock():
            progress.value += unreported
    out.update(lat=lat, errors=errors, first=first, last=last, done=done, last_error=last_error, total=total)


def _worker(spec: LoadSpec, proc: int, quota: int | None, results: Any, progress: Any, start: float, stop: Any) -> None:
    outs: list[dict[str, Any]] = [{} for _ in range(spec.conns)]
    per_thread = None if quota is None else -(-quota // spec.conns)
    threads = [
        threading.Thread(
            target=_thread_loop, args=(spec, proc * spec.conns + i, per_thread, outs[i], progress, start, stop)
        )
        for i in range(spec.conns)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lat = array.array("d")
    for o in outs:
        lat.extend(o.get("lat", array.array("d")))
    firsts = [o["first"] for o in outs if o.get("first")]
    lasts = [o["last"] for o in outs if o.get("last")]
    results.put(
        {
            "lat": lat.tobytes(),
            "errors": sum(o.get("errors", 0) for o in outs),
            "first": min(firsts) if firsts else 0.0,
            "last": max(lasts) if lasts else 0.0,
            "last_error": next((o["last_error"] for o in outs if o.get("last_error")), ""),
            "total": sum(o.get("total", 0) for o in outs),
            "pid": os.getpid(),
        }
    )


class LoadGen:
    """Runs a ``LoadSpec`` in worker processes; ``progress`` counts measured requests while it runs."""

    def __init__(self, spec: LoadSpec) -> None:
        self.spec = spec
        self._ctx = mp.get_context("spawn")  # no fork of a threaded harness
        self._results: Any = self._ctx.Queue()
        self._progress: Any = self._ctx.Value("q", 0)
        self._stop: Any = self._ctx.Event()
        self._procs: list[Any] = []
        self._started = 0.0

    def start(self) -> LoadGen:
        spec = self.spec
        quota = None if spec.max_requests is None else -(-spec.max_requests // spec.procs)
        # CLOCK_MONOTONIC is system-wide: every worker starts its warmup at the same instant.
        self._started = time.monotonic() + SPAWN_ALLOWANCE
        for i in range(spec.procs):
            p = self._ctx.Process(
                target=_worker,
                args=(spec, i, quota, self._results, self._progress, self._started, self._stop),
                daemon=True,
            )
            p.start()
            self._procs.append(p)
        return self

    @property
    def progress(self) -> int:
        return int(self._progress.value)

    def running(self) -> bool:
        return any(p.is_alive() for p in self._procs) and self._results.qsize() < len(self._procs)

    def stop(self) -> LoadResult:
        """End the run now (before its deadline) and collect what was measured."""
        self._stop.set()
        return self.wait()

    def wait(self) -> LoadResult:
        spec = self.spec
        limit = self._started + spec.warmup + spec.duration + IO_TIMEOUT + 30
        parts: list[dict[str, Any]] = []
        for _ in self._procs:
            try:
                parts.append(self._results.get(timeout=max(1.0, limit - time.monotonic())))
            except Exception:
                break
        for p in self._procs:
            p.join(timeout=5)
            if p.is_alive():
                p.kill()
                p.join(timeout=5)
        lat: list[float] = []
        for part in parts:
            a = array.array("d")
            a.frombytes(part["lat"])
            lat.extend(a)
        lasts = [p["last"] for p in parts if p["last"]]
        measure_from = self._started + spec.warmup
        elapsed = max(lasts, default=measure_from) - measure_from
        if spec.max_requests is None and lat and not self._stop.is_set():
            elapsed = max(elapsed, spec.duration)  # every worker ran until the common deadline
        return LoadResult(
            requests=len(lat),
            errors=sum(p["errors"] for p in parts),
            elapsed=elapsed,
            latencies_ms=lat,
            last_error=next((p["last_error"] for p in parts if p["last_error"]), ""),
            total_requests=sum(p["total"] for p in parts),
        )


def run_load(spec: LoadSpec) -> LoadResult:
    return LoadGen(spec).start().wait()

"""A fast HTTP/1.1 origin for the benchmark: plain and TLS, keep-alive, fixed-size JSON-like bodies.

Runs in its own process (``python -m bench.origin``, started by ``start_origin``) so its CPU is not the
harness's. It binds loopback addresses only. ``GET /size/N`` answers N bytes of JSON-like text (compressible about
as much as a real API response). On start it prints one JSON line: the plain and TLS ports and the CA path to trust
upstream.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import random
import signal
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from bench.targets import ROOT

HOSTS = tuple(f"127.0.1.{i}" for i in range(1, 9))  # origin addresses besides 127.0.0.1: "hosts" to filter by
_BODIES: dict[int, bytes] = {}
MAX_BODY = 16 * 1024 * 1024


def body(size: int) -> bytes:
    """Deterministic JSON of exactly ``size`` bytes: an array of records with varied values (~4x compressible)."""
    if size not in _BODIES:
        rnd = random.Random(size)
        recs: list[str] = []
        n, i = 4, 0
        while True:
            rec = (
                f'{{"id": {i}, "user": "user-{rnd.randrange(10**6):06d}", "score": {rnd.random():.6f}, '
                f'"tags": ["t{rnd.randrange(50)}", "t{rnd.randrange(50)}"], "ok": {str(rnd.random() > 0.1).lower()}}}'
            )
            if n + len(rec) + 2 > size:
                break
            recs.append(rec)
            n += len(rec) + 2
            i += 1
        text = "[\n" + ",\n".join(recs)
        _BODIES[size] = (text + " " * (size - len(text) - 2) + "\n]").encode()[:size] if size >= 4 else b"x" * size
    return _BODIES[size]


class HttpOrigin(asyncio.Protocol):
    """Minimal HTTP/1.1: GET/HEAD/POST (request bodies by Content-Length), keep-alive unless asked to close."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.buf = b""
        self.need_body = 0

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            if self.need_body:
                take = min(self.need_body, len(self.buf))
                self.buf = self.buf[take:]
                self.need_body -= take
                if self.need_body:
                    return
                self._respond()
                continue
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head, self.buf = self.buf[:end].decode("latin-1"), self.buf[end + 4 :]
            lines = head.split("\r\n")
            parts = lines[0].split(" ")
            if len(parts) != 3:
                self.transport.close()
                return
            headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
            self.close = headers.get("connection", "").lower() == "close" or parts[2] == "HTTP/1.0"
            self.path = parts[1]
            self.head = parts[0] == "HEAD"
            self.need_body = int(headers.get("content-length", "0") or 0)
            if not self.need_body:
                self._respond()

    def _respond(self) -> None:
        path = self.path.split("?", 1)[0]
        status, payload = "200 OK", b""
        if path.startswith("/size/") and path[6:].isdigit() and int(path[6:]) <= MAX_BODY:
            payload = body(int(path[6:]))
        elif path != "/":
            status, payload = "404 Not Found", b"not found\n"
        head = (
            f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
            f"{'Connection: close' + chr(13) + chr(10) if self.close else ''}\r\n"
        ).encode()
        self.transport.write(head if self.head else head + payload)
        if self.close:
            self.transport.close()


def make_pki(directory: Path, hosts: list[str]) -> tuple[ssl.SSLContext, Path]:
    """A throwaway CA (trustme) and a server certificate for ``hosts``; returns the server context and CA path."""
    import trustme

    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", *hosts)
    ca_path = directory / "origin-ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(ctx)
    return ctx, ca_path


async def serve(hosts: list[str], port: int, tls_port: int, pki_dir: Path) -> None:
    for h in hosts:
        if not h.startswith("127."):
            raise SystemExit(f"origin: refusing to bind a non-loopback address {h}")
    ctx, ca_path = make_pki(pki_dir, hosts)
    loop = asyncio.get_running_loop()
    servers: list[asyncio.Server] = []
    ports: list[int] = []
    for want, tls_ctx in ((port, None), (tls_port, ctx)):
        # The first host picks the port (0: any free one); the other loopback hosts share it.
        for i, h in enumerate(hosts):
            srv = await loop.create_server(
                HttpOrigin, h, ports[-1] if i else want, ssl=tls_ctx, reuse_address=True, backlog=1024
            )
            if not i:
                ports.append(srv.sockets[0].getsockname()[1])
            servers.append(srv)
    port, tls_port = ports
    print(json.dumps({"port": port, "tls_port": tls_port, "ca": str(ca_path), "hosts": hosts}), flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for srv in servers:
        srv.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--hosts", default="127.0.0.1", help="comma-separated loopback addresses to bind")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--tls-port", type=int, default=0)
    p.add_argument("--pki", type=Path, required=True, help="folder for the origin's CA and certificate")
    args = p.parse_args(argv)
    try:
        asyncio.run(serve(args.hosts.split(","), args.port, args.tls_port, args.pki))
    except OSError as e:
        print(f"origin: {e}", file=sys.stderr)
        return 1
    return 0


@dataclasses.dataclass
class Origin:
    port: int
    tls_port: int
    ca: Path
    proc: subprocess.Popen[str]


@contextlib.contextmanager
def start_origin(workdir: Path) -> Iterator[Origin]:
    """The origin in its own process, on 127.0.0.1 and the HOSTS addresses, until the block ends."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.origin",
            "--pki",
            str(workdir / "origin-pki"),
            "--hosts",
            ",".join(("127.0.0.1", *HOSTS)),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError("the bench origin did not start")
        info = json.loads(line)
        yield Origin(info["port"], info["tls_port"], Path(info["ca"]), proc)
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


if __name__ == "__main__":
    sys.exit(main())

"""Shared fixtures: a real proxycap capture session on an ephemeral port, real origins, real clients."""

from __future__ import annotations

import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpcore
import httpx
import pytest
from origins import HangServer, OriginServer, ResetServer, TestPKI

from proxycap.capture.engine import EngineConfig
from proxycap.control.session import CaptureSession
from proxycap.storage.store import Store


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPKI:
    return TestPKI(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def confdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One proxycap CA for the whole run (RSA key generation is slow)."""
    return tmp_path_factory.mktemp("confdir")


@pytest.fixture(scope="session")
def origin() -> Iterator[OriginServer]:
    with OriginServer() as server:
        yield server


@pytest.fixture(scope="session")
def tls_origin(pki: TestPKI) -> Iterator[OriginServer]:
    with OriginServer(pki) as server:
        yield server


@pytest.fixture
def reset_server() -> Iterator[ResetServer]:
    with ResetServer() as server:
        yield server


@pytest.fixture
def hang_server() -> Iterator[HangServer]:
    with HangServer() as server:
        yield server


class _FromAddress(httpcore.SyncBackend):
    """Connects from a given loopback address, so one test machine plays several client devices."""

    def __init__(self, source_ip: str) -> None:
        self.source_ip = source_ip

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):  # type: ignore[override]
        return super().connect_tcp(host, port, timeout, self.source_ip, socket_options)


@dataclass
class Proxy:
    """A running capture session plus helpers to drive real clients through it."""

    session: CaptureSession
    store_path: Path
    confdir: Path

    @property
    def port(self) -> int:
        return self.session.engine.listen_addrs[0][1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ca_pem(self) -> Path:
        return self.confdir / "mitmproxy-ca-cert.pem"

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_pem))

    def client(self, source_ip: str = "127.0.0.1", http2: bool = False, **kw: Any) -> httpx.Client:
        """An httpx client that uses the proxy from ``source_ip`` (a distinct loopback "device")."""
        ctx = self.ssl_context()
        transport = httpx.HTTPTransport(verify=ctx, http2=http2)
        # Neither httpx nor httpcore's HTTPProxy apply local_address to proxy connections; a backend does.
        transport._pool = httpcore.HTTPProxy(
            proxy_url=self.url,
            ssl_context=ctx,
            network_backend=_FromAddress(source_ip),
            http1=True,
            http2=http2,
        )
        return httpx.Client(transport=transport, timeout=kw.pop("timeout", 10), **kw)

    def curl(self, url: str, *args: str, source_ip: str = "127.0.0.1", timeout: float = 60) -> str:
        """curl through the proxy from ``source_ip``: the response's status line, headers and body (``-i``)."""
        cmd = ["curl", "-sS", "-i", "--interface", source_ip, "-x", self.url, "--cacert", str(self.ca_pem), *args, url]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout).stdout

    def wait_flows(self, n: int, timeout: float = 15, done: bool = True) -> list[dict[str, Any]]:
        """Poll the store until at least ``n`` flows are there (and finished, if ``done``)."""
        deadline = time.monotonic() + timeout
        rows: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            store = Store(self.store_path, readonly=True)
            try:
                rows = list(store.iter_rows())
            finally:
                store.close()
            if len(rows) >= n and (not done or all(r["state"] != "live" for r in rows)):
                return rows
            time.sleep(0.05)
        raise AssertionError(f"expected {n} flows in the store, found {len(rows)}: {rows}")


def start_proxy(tmp_path: Path, confdir: Path, pki: TestPKI, trusted_ca: str | None = None, **config: Any) -> Proxy:
    """A capture session on an ephemeral loopback port, trusting the test origins' CA (or ``trusted_ca``) upstream.
    Loopback aliases (127.0.0.2, …) play devices: all are allowed unless ``allow`` says otherwise."""
    sets = [f"ssl_verify_upstream_trusted_ca={trusted_ca or pki.ca_pem}", *config.pop("sets", [])]
    config.setdefault("allow", ["127.0.0.0/8"])
    cfg = EngineConfig(listen_port=0, confdir=str(confdir), sets=sets, **config)
    store_path = tmp_path / "captures.db"
    session = CaptureSession(cfg, store_path, tmp_path / "proxycap.log")
    session.start()
    return Proxy(session, store_path, confdir)


@pytest.fixture
def proxy(tmp_path: Path, confdir: Path, pki: TestPKI) -> Iterator[Proxy]:
    p = start_proxy(tmp_path, confdir, pki)
    try:
        yield p
    finally:
        p.session.stop()


@pytest.fixture
def proxy_with(tmp_path: Path, confdir: Path, pki: TestPKI) -> Iterator[Callable[..., Proxy]]:
    """Starts a proxy with the given ``EngineConfig`` fields (one per test)."""
    started: list[Proxy] = []

    def start(**config: Any) -> Proxy:
        started.append(start_proxy(tmp_path, confdir, pki, **config))
        return started[-1]

    try:
        yield start
    finally:
        for p in started:
            p.session.stop()


@pytest.fixture
def gated(tmp_path: Path, confdir: Path, pki: TestPKI) -> Iterator[Proxy]:
    """A proxy that allows one loopback alias, 127.0.0.2, besides this machine: 127.0.0.3 plays a device that is not
    allowed. Clients allowed and remembered go to its own settings file."""
    p = start_proxy(tmp_path, confdir, pki, allow=["127.0.0.2"], settings=str(tmp_path / "config" / "settings.toml"))
    try:
        yield p
    finally:
        p.session.stop()

"""Who may use the proxy: this machine always, other clients when allowed (at start or at runtime). Refused clients get
a 403 page, are announced once, and nothing of theirs is forwarded or stored. Proxy credentials are never stored."""

from __future__ import annotations

import base64
import http.client
import socket
import stat
import subprocess
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Proxy, start_proxy
from origins import OriginServer, TestPKI, origin_app

from proxycap.addons.access import Access, Policy, parse_networks
from proxycap.capture.bus import ClientRefusedEvent
from proxycap.capture.engine import EngineError
from proxycap.storage.store import Store, decode_state

ALLOWED, DEVICE = "127.0.0.2", "127.0.0.3"  # loopback aliases playing an allowed device and one that is not


class CountingOrigin(OriginServer):
    """The test origin, counting the requests that reach it: the proof that a refused request went nowhere."""

    def __init__(self, pki: TestPKI | None = None) -> None:
        self.requests = 0

        async def app(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                self.requests += 1
            await origin_app(scope, receive, send)

        super().__init__(pki, app=app)


@pytest.fixture
def counted() -> Iterator[CountingOrigin]:
    with CountingOrigin() as server:
        yield server


@pytest.fixture
def counted_tls(pki: TestPKI) -> Iterator[CountingOrigin]:
    with CountingOrigin(pki) as server:
        yield server


def raw(proxy: Proxy, source_ip: str, request: bytes, method: str = "GET") -> http.client.HTTPResponse:
    """Send one raw request to the proxy from ``source_ip``; the response, body read."""
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=10, source_address=(source_ip, 0))
    with sock:
        sock.sendall(request)
        resp = http.client.HTTPResponse(sock, method=method)
        resp.begin()
        resp.body = resp.read()  # type: ignore[attr-defined]
        return resp


def on_engine(proxy: Proxy, fn: Any) -> Any:
    """Call ``fn`` on the proxy's loop, as a control API would."""

    async def call() -> Any:
        return fn()

    return proxy.session.engine.submit(call).result(10)


def refused_events(sub: Any) -> list[ClientRefusedEvent]:
    return [ev for ev in sub.drain() if isinstance(ev, ClientRefusedEvent)]


# --- the policy -------------------------------------------------------------------------------------


def test_only_this_machine_by_default() -> None:
    policy = Policy()
    assert policy.check("127.0.0.1") and policy.check("::1") and policy.check("::ffff:127.0.0.1")
    assert not policy.check("127.0.0.2")  # another loopback address is a device like any other
    assert not policy.check("192.168.1.20") and not policy.check("100.64.0.1") and not policy.check("8.8.8.8")


def test_allowed_networks_and_denied_addresses() -> None:
    policy = Policy(tuple(parse_networks(["192.168.1.0/24, 10.0.0.7", "fd00::/8"])), denied=frozenset({"192.168.1.9"}))
    assert policy.check("192.168.1.20") and policy.check("10.0.0.7") and policy.check("fd00::1")
    assert not policy.check("192.168.2.1") and not policy.check("10.0.0.70")
    assert not policy.check("192.168.1.9")  # denied wins over the network
    policy = Policy(tuple(parse_networks(["any"])))
    assert policy.check("8.8.8.8") and policy.check("2001:db8::1")


def test_bad_network_is_named() -> None:
    with pytest.raises(ValueError, match=r"'10\.0\.0\.300'"):
        parse_networks(["10.0.0.0/8,10.0.0.300"])


def test_runtime_calls_check_the_address() -> None:
    access = Access()
    with pytest.raises(ValueError, match="not an IP address"):
        access.allow("phone")
    with pytest.raises(ValueError, match="always allowed"):
        access.deny("127.0.0.1")
    with pytest.raises(ValueError, match="no settings file"):
        access.allow("192.168.1.5", remember=True)


# --- refused clients, for real -------------------------------------------------------------------------


def test_refused_device_gets_a_403_page_and_nothing_is_forwarded(
    gated: Proxy, counted: CountingOrigin, counted_tls: CountingOrigin
) -> None:
    sub = gated.session.bus.subscribe("test", limit=10_000, kinds=(ClientRefusedEvent,))
    with gated.client(ALLOWED) as c:
        assert c.get(f"{counted.url}/json").status_code == 200
        assert c.get(f"{counted_tls.url}/json").status_code == 200
    assert (counted.requests, counted_tls.requests) == (1, 1)

    with gated.client(DEVICE) as c:
        refused = c.get(f"{counted.url}/json")
        assert refused.status_code == 403
        assert "proxycap refused this device" in refused.text and f"--allow {DEVICE}" in refused.text
        assert c.post(f"{counted.url}/echo", content=b"x" * 10_000).status_code == 403
        with pytest.raises(httpx.ProxyError, match="403"):
            c.get(f"{counted_tls.url}/json")
    host = counted_tls.url.removeprefix("https://")
    tunnel = raw(gated, DEVICE, f"CONNECT {host} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode(), method="CONNECT")
    assert tunnel.status == 403 and b"proxycap refused this device" in tunnel.body  # type: ignore[attr-defined]
    assert (counted.requests, counted_tls.requests) == (1, 1)  # nothing reached an origin

    # Announced once, with its first request; neither its flows nor a client row are stored.
    [event] = refused_events(sub)
    assert (event.client_ip, event.request) == (DEVICE, f"GET {counted.url}/json")
    [pending] = gated.session.access.pending()
    assert (pending.ip, pending.requests) == (DEVICE, 4)
    rows = gated.wait_flows(2)
    assert {r["client_ip"] for r in rows} == {ALLOWED}
    store = Store(gated.store_path, readonly=True)
    try:
        assert DEVICE not in {c.ip for c in store.clients()}
        assert DEVICE not in {ip for (ip,) in store._read("SELECT ip FROM clients")}
    finally:
        store.close()
    log = (gated.store_path.parent / "proxycap.log").read_text()
    assert f"refused client {DEVICE} (GET {counted.url}/json)" in log


def test_allowing_a_device_at_runtime_lets_its_next_request_through(gated: Proxy, counted: CountingOrigin) -> None:
    sub = gated.session.bus.subscribe("test", limit=10_000, kinds=(ClientRefusedEvent,))
    access = gated.session.access
    with gated.client(DEVICE) as c:  # one keep-alive connection throughout
        assert c.get(f"{counted.url}/json").status_code == 403
        assert counted.requests == 0
        on_engine(gated, lambda: access.allow(DEVICE))
        assert access.pending() == []
        assert c.get(f"{counted.url}/json").status_code == 200
        assert counted.requests == 1
        [row] = gated.wait_flows(1)
        assert row["client_ip"] == DEVICE

        on_engine(gated, lambda: access.deny(DEVICE))
        denied = c.get(f"{counted.url}/json")
        assert denied.status_code == 403 and "It was denied in proxycap" in denied.text
        assert counted.requests == 1
    assert len(refused_events(sub)) == 1  # a denied client is not announced again
    assert access.pending() == []
    assert f"{DEVICE} (this session)" not in access.describe()


def test_allow_and_remember_keeps_the_client_in_the_settings_file(
    tmp_path: Path, confdir: Path, pki: TestPKI, origin: OriginServer
) -> None:
    settings = tmp_path / "config" / "proxycap" / "settings.toml"  # its folders do not exist yet
    first = start_proxy(tmp_path / "a", confdir, pki, allow=[], settings=str(settings))
    try:
        with first.client(DEVICE) as c:
            assert c.get(f"{origin.url}/json").status_code == 403
            # From a worker thread, as the UI's control API would (it writes the file: not on the proxy's loop).
            worker = threading.Thread(target=first.session.access.allow, args=(DEVICE, True))
            worker.start()
            worker.join()
            assert c.get(f"{origin.url}/json").status_code == 200
        assert first.session.access.describe() == f"localhost, {DEVICE} (remembered)"
    finally:
        first.session.stop()
    assert tomllib.loads(settings.read_text()) == {"clients": {"allow": [DEVICE]}}
    assert stat.S_IMODE(settings.stat().st_mode) == 0o600
    assert stat.S_IMODE(settings.parent.stat().st_mode) == 0o700

    settings.write_text(settings.read_text() + '\n[rules]\nkept = "yes"\n')  # other settings in the file stay
    second = start_proxy(tmp_path / "b", confdir, pki, allow=[], settings=str(settings))
    try:
        with second.client(DEVICE) as c:
            assert c.get(f"{origin.url}/json").status_code == 200  # remembered from the last run
        second.session.access.deny(DEVICE)
    finally:
        second.session.stop()
    assert tomllib.loads(settings.read_text()) == {"clients": {"allow": []}, "rules": {"kept": "yes"}}


def test_damaged_settings_file_is_refused_at_start(tmp_path: Path, confdir: Path, pki: TestPKI) -> None:
    settings = tmp_path / "settings.toml"
    for text, needle in (('[clients]\nallow = ["10.0.0.300"]\n', "10.0.0.300"), ("[clients\n", "not valid TOML")):
        settings.write_text(text)
        with pytest.raises(EngineError, match=needle) as e:
            start_proxy(tmp_path, confdir, pki, settings=str(settings))
        assert str(settings) in str(e.value)


def test_listening_beyond_loopback_warns_and_still_serves_this_machine(
    tmp_path: Path, confdir: Path, pki: TestPKI, origin: OriginServer
) -> None:
    p: Proxy = start_proxy(tmp_path, confdir, pki, listen_host="0.0.0.0", allow=[])
    try:
        with p.client(source_ip="127.0.0.1") as c:
            assert c.get(f"{origin.url}/json").status_code == 200
        p.wait_flows(1)
    finally:
        p.session.stop()
    log = (tmp_path / "proxycap.log").read_text()
    assert "listening on all interfaces; only clients on this machine are allowed" in log


# --- proxy credentials ----------------------------------------------------------------------------------


def test_proxyauth_answers_407_and_no_credentials_are_stored(
    tmp_path: Path, confdir: Path, pki: TestPKI, counted: CountingOrigin, counted_tls: CountingOrigin
) -> None:
    p = start_proxy(tmp_path, confdir, pki, proxyauth="user:secret")
    ctx = p.ssl_context()

    def client(credentials: str = "") -> httpx.Client:
        return httpx.Client(proxy=f"http://{credentials}127.0.0.1:{p.port}", verify=ctx, timeout=10)

    try:
        for credentials in ("", "user:wrong@"):
            with client(credentials) as c:
                assert c.get(f"{counted.url}/json").status_code == 407
                with pytest.raises(httpx.ProxyError, match="407"):
                    c.get(f"{counted_tls.url}/json")
        assert (counted.requests, counted_tls.requests) == (0, 0)
        with client("user:secret@") as c:
            assert c.get(f"{counted.url}/echo").json()["headers"].get("proxy-authorization") is None
            assert c.get(f"{counted_tls.url}/json").status_code == 200
        assert (counted.requests, counted_tls.requests) == (1, 1)
        rows = p.wait_flows(6)
    finally:
        p.session.stop()
    assert sorted(r["status"] for r in rows) == [200, 200, 407, 407, 407, 407]
    secrets = [base64.b64encode(s).decode() for s in (b"user:wrong", b"user:secret")] + ["secret"]
    store = Store(p.store_path, readonly=True)
    try:
        for (blob,) in store._read("SELECT flow FROM flow_data"):
            state = repr(decode_state(blob))
            assert not any(s in state for s in secrets), state
            assert "proxy-authorization" not in state.lower() and "'proxyauth'" not in state
    finally:
        store.close()


def test_bad_proxyauth_is_one_line(tmp_path: Path, confdir: Path) -> None:
    from test_cli import assert_one_line_error, run

    store = str(tmp_path / "s.db")
    p = run("record", "-p", "0", "--store", store, "--confdir", str(confdir), "--proxyauth", "x", check=False)
    assert_one_line_error(p, "--proxyauth")


def test_bad_allow_logs_no_warning_before_its_error(tmp_path: Path, confdir: Path) -> None:
    from test_cli import assert_one_line_error, run

    log = tmp_path / "p.log"
    p = run(
        "record",
        "-p",
        "0",
        "--store",
        str(tmp_path / "s.db"),
        "--confdir",
        str(confdir),
        "--log-file",
        str(log),
        "--allow",
        "300.1.2.3",
        check=False,
    )
    assert_one_line_error(p, "--allow", "300.1.2.3")
    assert "listening on" not in (log.read_text() if log.exists() else "")


def test_record_prints_refused_clients_once(tmp_path: Path, confdir: Path, pki: TestPKI, origin: OriginServer) -> None:
    from test_cli import Recording

    rec = Recording(tmp_path, confdir, pki, "-q", "--allow", ALLOWED)
    try:
        for ip in (DEVICE, DEVICE, ALLOWED):
            curl = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--interface", ip]
            proxy = ["-x", f"http://127.0.0.1:{rec.port}", f"{origin.url}/json"]
            proc = subprocess.run([*curl, *proxy], capture_output=True, text=True, timeout=30)
            assert proc.stdout == ("200" if ip == ALLOWED else "403")
    finally:
        out, err = rec.stop()
    assert out == ""
    refused = [line for line in err.splitlines() if line.startswith("refused client")]
    assert refused == [
        f"refused client {DEVICE} (GET {origin.url}/json): not allowed; to let it in, start proxycap with "
        f"--allow {DEVICE}"
    ]

"""Naming clients and explaining failures: User-Agent labels, the programs behind local connections, and the hint for
an origin whose certificate proxycap cannot verify."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import psutil
import pytest
from conftest import Proxy, start_proxy
from origins import OriginServer, TestPKI

from proxycap.capture import processes
from proxycap.capture.bus import LogEvent
from proxycap.capture.hints import upstream_tls_hint
from proxycap.query.naming import ua_label
from proxycap.storage.store import Store

AGENTS = {
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/126.0.6478.126 "
    "Safari/537.36": "HeadlessChrome 126 on Linux",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36": (
        "Chrome 126 on Linux"
    ),
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.0.0 "
    "Safari/537.36 Edg/125.0.2535.67": "Edge 125 on Windows",
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0": "Firefox 128 on Linux",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 "
    "Safari/605.1.15": "Safari 17 on macOS",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 "
    "Mobile/15E148 Safari/604.1": "Mobile Safari 17 on iOS",
    "Mozilla/5.0 (Linux; Android 14; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.6478.122 Mobile "
    "Safari/537.36": "Chrome Mobile 126 on Android",
    "okhttp/4.12.0": "okhttp 4.12",
    "MyApp/1.2.3 CFNetwork/1496.0.7 Darwin/23.5.0": "MyApp 1.2 on iOS",
    "Dalvik/2.1.0 (Linux; U; Android 13; Pixel 7 Build/TQ3A.230805.001)": "Android app (Dalvik) on Android 13",
    "curl/8.5.0": "curl 8.5",
    "python-httpx/0.27.0": "python-httpx 0.27",
    "python-requests/2.32.3": "Python Requests 2.32",
    "Python-urllib/3.11": "Python-urllib 3.11",
    "git/2.43.0": "git 2.43",
}


@pytest.mark.parametrize(("agent", "label"), AGENTS.items())
def test_ua_labels(agent: str, label: str) -> None:
    assert ua_label(agent) == label


def test_no_agent_no_label() -> None:
    assert ua_label(None) is None and ua_label("  ") is None


@pytest.mark.parametrize("table", ["kernel", "psutil"])
@pytest.mark.parametrize("ip", ["127.0.0.1", "::1"])
def test_process_names_of_local_connections(table: str, ip: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A connection this process opened is named after this process, looked up in the lookup thread: from the
    kernel's socket table (Linux), or psutil's (elsewhere)."""
    if table == "psutil":
        monkeypatch.setattr(processes, "TABLES", ("/nonexistent/tcp", "/nonexistent/tcp6"))
    elif not Path(processes.TABLES[0]).exists():
        pytest.skip("no /proc/net/tcp here")
    results: list[dict[str, str | None]] = []
    got = threading.Event()

    def deliver(names: dict[str, str | None]) -> None:
        results.append(names)
        got.set()

    names = processes.ProcessNames(deliver)
    try:
        server = socket.create_server((ip, 0), family=socket.AF_INET6 if ":" in ip else socket.AF_INET)
    except OSError:
        pytest.skip(f"no {ip} here")
    with server:
        port = server.getsockname()[1]
        with socket.create_connection((ip, port)) as client:
            names.lookup("c1", client.getsockname()[:2], (ip, port))
            names.lookup("c2", (ip, 1), (ip, port))  # nobody's
            assert got.wait(30)
    names.close()
    merged = {k: v for r in results for k, v in r.items()}
    me = psutil.Process()
    assert merged == {"c1": f"{me.name()} ({me.pid})", "c2": None}


def test_a_connection_closed_before_its_turn_is_not_looked_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under a stream of short connections, each lookup would scan a table of thousands of closed sockets for one
    that is gone: a closed connection leaves the queue instead."""
    first_started, go_on = threading.Event(), threading.Event()
    looked_up: list[set[processes.Key]] = []

    def resolve(self: processes.ProcessNames, wanted: set[processes.Key]) -> dict[processes.Key, str]:
        looked_up.append(wanted)
        first_started.set()
        assert go_on.wait(30)
        return {}

    monkeypatch.setattr(processes.ProcessNames, "_resolve", resolve)
    delivered: list[dict[str, str | None]] = []
    names = processes.ProcessNames(delivered.append)
    try:
        names.lookup("c1", ("127.0.0.1", 40001), ("127.0.0.1", 8080))
        assert first_started.wait(30)
        names.lookup("c2", ("127.0.0.1", 40002), ("127.0.0.1", 8080))
        names.lookup("c3", ("127.0.0.1", 40003), ("127.0.0.1", 8080))
        assert names.forget("c2") and not names.forget("c1")  # c1's lookup had started
        go_on.set()
        deadline = time.monotonic() + 30
        while len(delivered) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        names.close()
    assert looked_up == [{("127.0.0.1", 40001, "127.0.0.1", 8080)}, {("127.0.0.1", 40003, "127.0.0.1", 8080)}]
    assert delivered == [{"c1": None}, {"c3": None}]


def test_a_local_flow_is_stored_at_once_and_named_when_its_program_is_known(
    proxy: Proxy, origin: OriginServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing waits for the lookup: the flow is listed while its program is looked up, then gets its name."""
    looked_up = threading.Event()
    real = processes.ProcessNames._resolve

    def slow(self: processes.ProcessNames, wanted: set[processes.Key]) -> dict[processes.Key, str]:
        assert looked_up.wait(30)
        return real(self, wanted)

    monkeypatch.setattr(processes.ProcessNames, "_resolve", slow)
    with proxy.client() as c:  # open until its name is found: a closed connection has no program
        assert c.get(f"{origin.url}/json").status_code == 200
        [row] = proxy.wait_flows(1)
        assert row["status"] == 200 and row["process"] is None
        looked_up.set()
        me = psutil.Process()
        deadline = time.monotonic() + 15
        while (row := proxy.wait_flows(1)[0])["process"] is None and time.monotonic() < deadline:
            time.sleep(0.05)
    assert (row["process"], row["status"], row["seq"]) == (f"{me.name()} ({me.pid})", 200, 1)


def test_upstream_tls_hint_texts() -> None:
    assert upstream_tls_hint("Connection refused") is None and upstream_tls_hint(None) is None
    unknown = upstream_tls_hint("Certificate verify failed: unable to get local issuer certificate")
    assert unknown and "--set ssl_verify_upstream_trusted_ca=" in unknown and "--set ssl_insecure=true" in unknown
    expired = upstream_tls_hint("Certificate verify failed: certificate has expired")
    assert expired and "ssl_verify_upstream_trusted_ca" not in expired and "--set ssl_insecure=true" in expired


def test_untrusted_origin_says_how_to_trust_it(tmp_path: Path, confdir: Path, pki: TestPKI, tls_origin: OriginServer):
    """An origin signed by a CA proxycap does not know (here: trust is pointed at another CA) fails with a hint in the
    event log on trusting its CA or skipping verification."""
    other_ca = TestPKI(tmp_path / "other").ca_pem
    p = start_proxy(tmp_path, confdir, pki, trusted_ca=other_ca)
    sub = p.session.bus.subscribe("test", limit=1000, kinds=(LogEvent,))
    try:
        with p.client() as c:
            assert c.get(f"{tls_origin.url}/json").status_code == 502
        [row] = p.wait_flows(1)
        deadline = time.monotonic() + 15
        logs: list[LogEvent] = []
        while time.monotonic() < deadline and not logs:
            logs = [ev for ev in sub.drain() if "TLS handshake with server" in ev.message]
            time.sleep(0.05)
    finally:
        p.session.stop()
    [log] = logs
    assert "localhost" in log.message and "--set ssl_verify_upstream_trusted_ca=" in log.message
    assert "--set ssl_insecure=true" in log.message and log.client_ip == "127.0.0.1"
    assert upstream_tls_hint(row["error"]) is not None  # what the inspector's Details show for the flow
    store = Store(p.store_path, readonly=True)
    try:
        assert [m for _, _, m, *_ in store.events() if "Server TLS handshake failed" in m] == []  # said once
        assert any("ssl_verify_upstream_trusted_ca" in m for _, _, m, *_ in store.events())
    finally:
        store.close()

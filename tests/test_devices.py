"""Getting clients onto the proxy: the setup page, CA and PAC file the proxy serves on its own port, `proxycap setup`,
and programs on this machine through `proxycap run`, `proxycap env` and `proxycap browser`, named by their process."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Proxy, start_proxy
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from origins import JSON_DOC, OriginServer, TestPKI, origin_app
from test_access import DEVICE
from test_cli import PROXYCAP, Recording, assert_one_line_error

from proxycap.capture.bus import ClientRefusedEvent
from proxycap.devices import browser, local
from proxycap.devices.lan import hostport, listening_note, reachable_addresses
from proxycap.devices.setup import qr_lines, setup_for, setup_info
from proxycap.storage.store import Store

PIPES: dict[str, Any] = {
    "stdin": subprocess.DEVNULL,
    "stdout": subprocess.PIPE,
    "stderr": subprocess.PIPE,
    "text": True,
}


@pytest.fixture
def recording(tmp_path: Path, confdir: Path, pki: TestPKI) -> Iterator[Recording]:
    rec = Recording(tmp_path, confdir, pki, "-q")
    yield rec
    if rec.proc.poll() is None:
        rec.stop()


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a user's shell: no proxy or CA variables of the test machine's, a private cache."""
    names = {*local.PROXY_VARS, *local.BUNDLE_VARS, *local.CA_VARS, *local.NO_PROXY_VARS, local.MARK}
    env = {k: v for k, v in os.environ.items() if k not in names and not k.startswith(local.SAVED)}
    return {**env, "XDG_CACHE_HOME": str(tmp_path / "cache"), **extra}


def proxycap(*args: str, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess[str]:
    p = subprocess.run([*PROXYCAP, *args], capture_output=True, text=True, timeout=120, env=env)
    if check:
        assert p.returncode == 0, p.stderr
    return p


class GateOrigin(OriginServer):
    """The TLS test origin with a route, /gate, that answers only once the test opens the gate: the client's
    connection stays open until the test has seen what it waits for (the program's name on the flow)."""

    def __init__(self, pki: TestPKI) -> None:
        self.gate = threading.Event()

        async def app(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http" and scope["path"] == "/gate":
                await asyncio.get_running_loop().run_in_executor(None, self.gate.wait, 60)
                await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/html")]})
                return await send({"type": "http.response.body", "body": b"<title>opened</title>"})
            await origin_app(scope, receive, send)

        super().__init__(pki, app=app)


@pytest.fixture
def gate_origin(pki: TestPKI) -> Iterator[GateOrigin]:
    with GateOrigin(pki) as server:
        yield server


def named_while_waiting(proxy: Proxy, origin: GateOrigin, timeout: float = 60) -> str:
    """Wait for the request to /gate to be listed (its request announced alone, as a slow one is) with the name of
    the program that sent it; open the gate; that name."""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            store = Store(proxy.store_path, readonly=True)
            try:
                named = [r["process"] for r in store.iter_rows() if r["path"] == "/gate" and r["process"]]
            finally:
                store.close()
            if named:
                return named[0]
            time.sleep(0.05)
        raise AssertionError("the request to /gate was not listed with its program's name")
    finally:
        origin.gate.set()


# --- the setup pages, on the proxy's own port ----------------------------------------------------------


def direct(source_ip: str) -> httpx.Client:
    """A client that talks to the proxy's port as to a web server (a phone with no proxy set yet)."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=source_ip), trust_env=False, timeout=10)


def test_setup_page_ca_and_pac_are_served_on_the_proxy_port(gated: Proxy, confdir: Path) -> None:
    sub = gated.session.bus.subscribe("test", limit=1000, kinds=(ClientRefusedEvent,))
    base = gated.url
    with direct(DEVICE) as c:
        page = c.get(f"{base}/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert f"This device ({DEVICE}) is not allowed yet" in page.text and "/ca.crt" in page.text
        pem = c.get(f"{base}/ca.pem")
        assert pem.content == (confdir / "mitmproxy-ca-cert.pem").read_bytes()  # mitmproxy's file, as it is
        crt = c.get(f"{base}/ca.crt")
        assert crt.headers["content-type"] == "application/x-x509-ca-cert"
        cert = x509.load_pem_x509_certificate(pem.content)
        assert crt.content == cert.public_bytes(serialization.Encoding.DER)
        pac = c.get(f"{base}/proxy.pac")
        assert pac.headers["content-type"] == "application/x-ns-proxy-autoconfig"
        assert f'return "PROXY 127.0.0.1:{gated.port}; DIRECT";' in pac.text
        assert c.get(f"{base}/nothing").status_code == 404
    with gated.client("127.0.0.2") as c:  # through the proxy, from an allowed device
        assert "may use the proxy" in c.get(f"{base}/").text
        assert c.get(f"{base}/ca.pem").content == pem.content
    with direct("127.0.0.1") as c:
        info = c.get(f"{base}/proxycap.json").json()
        assert info["listen"] == [["127.0.0.1", gated.port]] and info["allowed"] == "localhost, 127.0.0.2/32"
    # The device that is not allowed yet is announced (the UI lists it as waiting); none of this is recorded.
    [event] = [ev for ev in sub.drain() if isinstance(ev, ClientRefusedEvent)]
    assert (event.client_ip, event.request) == (DEVICE, f"GET {base}/")
    store = Store(gated.store_path, readonly=True)
    try:
        assert store.count() == 0
    finally:
        store.close()


def test_setup_info_and_qr_payload() -> None:
    info = setup_info("0.0.0.0", 8080)
    if not info.reachable:
        pytest.skip("this machine has no LAN address")
    assert info.setup_url == f"http://{info.host}:8080/"
    assert info.qr_text == info.setup_url  # the QR code opens the setup page
    assert info.url("/ca.crt") == f"http://{info.host}:8080/ca.crt"
    steps = dict(info.steps())
    assert set(steps) == {"iOS / iPadOS", "Android", "macOS", "Windows", "Linux"}
    assert any("ignore user-installed CAs" in s for s in steps["Android"])
    assert any(f"{info.host}, port 8080" in s for s in steps["iOS / iPadOS"])
    assert not setup_info("127.0.0.1", 8080).reachable
    lines = qr_lines(info.qr_text)
    assert len(lines) > 10 and len({len(line) for line in lines}) == 1


def test_setup_command(recording: Recording, origin: OriginServer, tmp_path: Path) -> None:
    p = proxycap("setup", "-p", str(recording.port), env=clean_env(tmp_path))
    assert "devices cannot reach it" in p.stdout.splitlines()[0]  # the recording listens on loopback only
    assert "Allowed: localhost" in p.stdout and "Android" in p.stdout and "█" in p.stdout
    other = proxycap("setup", "-p", str(origin.port), env=clean_env(tmp_path), check=False)  # a web server
    assert_one_line_error(other, f"127.0.0.1:{origin.port} does not answer as proxycap does")


# --- programs on this machine -------------------------------------------------------------------------


@pytest.mark.parametrize("program", ["curl", "python"])
def test_run_sends_a_program_through_the_proxy_named_as_itself(
    proxy: Proxy, gate_origin: GateOrigin, tmp_path: Path, program: str
) -> None:
    env = clean_env(tmp_path, NO_PROXY="localhost,127.0.0.1,example.internal")
    url = f"{gate_origin.url}/gate"
    script = (
        "import json, os, urllib.request\n"
        f"body = urllib.request.urlopen('{url}').read()\n"
        "print(json.dumps([body.decode(), os.environ.get('NO_PROXY')]))\n"
    )
    command = ["curl", "-sS", url] if program == "curl" else [sys.executable, "-c", script]
    run = subprocess.Popen([*PROXYCAP, "run", "-p", str(proxy.port), "--", *command], **PIPES, env=env)
    name = named_while_waiting(proxy, gate_origin)
    out, err = run.communicate(timeout=60)
    assert run.returncode == 0, err
    if program == "curl":
        assert out == "<title>opened</title>"  # no --cacert: the CA bundle comes from the environment
    else:  # and loopback no longer skips the proxy
        assert json.loads(out) == ["<title>opened</title>", "example.internal"]
    # exec'd: the program has proxycap run's pid
    assert name.startswith("curl (" if program == "curl" else "python") and name.endswith(f" ({run.pid})")
    [row] = proxy.wait_flows(1)
    assert (row["status"], row["process"]) == (200, name)
    bundle = next((tmp_path / "cache" / "proxycap").glob("ca-bundle-*.pem"))
    assert stat.S_IMODE(bundle.stat().st_mode) == 0o600
    assert bundle.read_bytes().count(b"BEGIN CERTIFICATE") > 1  # the system's CAs and proxycap's


def test_run_passes_on_the_exit_status(recording: Recording, tmp_path: Path) -> None:
    p = proxycap("run", "-p", str(recording.port), "--", "sh", "-c", "exit 7", env=clean_env(tmp_path), check=False)
    assert p.returncode == 7
    missing = proxycap("run", "-p", str(recording.port), "no-such-program", env=clean_env(tmp_path), check=False)
    assert missing.returncode == 127 and "no-such-program: command not found" in missing.stderr


def test_run_without_a_proxy_fails_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: nobody answers there
        p = proxycap("run", "-p", str(port), "--", "true", env=clean_env(tmp_path), check=False)
    assert_one_line_error(p, f"no proxycap listens on 127.0.0.1:{port}")
    assert_one_line_error(proxycap("run", env=clean_env(tmp_path), check=False), "name a command")


def test_env_in_bash_and_unset(recording: Recording, tls_origin: OriginServer, tmp_path: Path) -> None:
    env = clean_env(tmp_path, SSL_CERT_FILE="/before/bundle.pem")
    cmd = " ".join(PROXYCAP)
    script = (
        f'eval "$({cmd} env -p {recording.port} --shell bash)"\n'
        f"curl -sS {tls_origin.url}/json\n"
        'echo; echo "[$PROXYCAP_PROXY]"\n'
        f'eval "$({cmd} env --unset --shell bash)"\n'
        'echo "[$https_proxy][$SSL_CERT_FILE][$PROXYCAP_PROXY]"\n'
    )
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=120, env=env, check=True)
    body, mark, after = out.stdout.strip().splitlines()
    assert json.loads(body) == JSON_DOC  # no --cacert: the CA comes from the environment
    assert mark == f"[http://127.0.0.1:{recording.port}]"
    assert after == "[][/before/bundle.pem][]"  # undone: what was set before is back


def test_env_for_fish_and_zsh(recording: Recording, tmp_path: Path) -> None:
    env = clean_env(tmp_path)
    fish = proxycap("env", "-p", str(recording.port), "--shell", "fish", env=env).stdout
    assert f"set -gx https_proxy http://127.0.0.1:{recording.port}\n" in fish
    assert "set -e PROXYCAP_PROXY\n" in proxycap("env", "--unset", "--shell", "fish", env=env).stdout
    zsh = proxycap("env", "-p", str(recording.port), "--shell", "zsh", env=env).stdout
    for shell, text, check in (("fish", fish, ["--no-execute"]), ("zsh", zsh, ["-n"])):
        if shutil.which(shell):
            subprocess.run([shell, *check, "-c", text], check=True, timeout=30)


# --- browsers -------------------------------------------------------------------------------------------


def test_chromium_loads_https_through_the_proxy(
    tmp_path: Path, confdir: Path, pki: TestPKI, gate_origin: GateOrigin
) -> None:
    if not (shutil.which("chromium") or shutil.which("chromium-browser")):
        pytest.skip("chromium is not installed (apt-get install chromium)")
    # Chromium's own background requests (Google's time and update services) must not leave this machine: they are
    # refused before any upstream connection.
    p = start_proxy(tmp_path, confdir, pki, sets=["connection_strategy=lazy", "block_list=/!~d localhost/444"])
    # Chromium's singleton socket goes in TMPDIR, and a Unix socket's path has ~100 characters at most: a short one.
    short = Path(tempfile.mkdtemp(prefix="pc-", dir="/tmp"))
    env = clean_env(tmp_path, TMPDIR=str(short))
    headless = ["--headless", "--disable-gpu", "--disable-sync", "--disable-component-update", "--dump-dom"]
    cmd = [*PROXYCAP, "browser", "-p", str(p.port), "chromium", f"{gate_origin.url}/gate", "--", *headless]
    try:
        browser_run = subprocess.Popen(cmd, **PIPES, env=env)
        name = named_while_waiting(p, gate_origin)
        out, err = browser_run.communicate(timeout=120)
        rows = [r for r in p.wait_flows(1, done=False) if r["path"] == "/gate"]
    finally:
        p.session.stop()
    assert browser_run.returncode == 0, err
    assert "<title>opened</title>" in out and "chrome-error" not in out  # the origin's page, no certificate error
    assert not list(short.glob("proxycap-browser-*"))  # the throwaway profile is gone
    shutil.rmtree(short, ignore_errors=True)
    assert name.startswith("chrom") and rows[0]["process"] == name
    assert "HeadlessChrome" in rows[0]["user_agent"]


def test_firefox_profile_trusts_the_ca(tmp_path: Path, confdir: Path, pki: TestPKI) -> None:
    ca_pem = (confdir / "mitmproxy-ca-cert.pem").read_bytes() if (confdir / "mitmproxy-ca-cert.pem").exists() else None
    if ca_pem is None:
        from proxycap.capture.ca import ensure_ca

        ca_pem = ensure_ca(confdir).cert_path.read_bytes()
    proxy = local.RunningProxy("127.0.0.1", 8080, ca_pem, {})
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(ca_pem)
    if not shutil.which("certutil"):
        with pytest.raises(browser.BrowserError, match="certutil"):
            browser.firefox_profile(proxy, ca_file, tmp_path)
        pytest.skip("certutil is not installed (libnss3-tools)")
    profile = tmp_path / "profile"
    profile.mkdir()
    browser.firefox_profile(proxy, ca_file, profile)
    listed = subprocess.run(["certutil", "-L", "-d", f"sql:{profile}"], capture_output=True, text=True, check=True)
    assert any(line.split()[:1] == ["proxycap"] and line.split()[-1] == "C,," for line in listed.stdout.splitlines())
    prefs = (profile / "user.js").read_text()
    assert 'user_pref("network.proxy.ssl", "127.0.0.1");' in prefs and 'user_pref("network.proxy.type", 1);' in prefs


def test_firefox_without_certutil_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(browser.BrowserError, match="certutil") as e:
        browser.firefox_profile(local.RunningProxy("127.0.0.1", 8080, b"", {}), tmp_path / "ca.pem", tmp_path)
    assert "\n" not in str(e.value)


def test_chromium_flags_pin_the_ca(confdir: Path) -> None:
    from proxycap.capture.ca import ensure_ca

    pem = ensure_ca(confdir).cert_path.read_bytes()
    cmd = browser.chromium_command("chromium", local.RunningProxy("127.0.0.1", 8080, pem, {}), Path("/p"), "u", [])
    assert "--proxy-server=http://127.0.0.1:8080" in cmd and "--proxy-bypass-list=<-loopback>" in cmd
    assert f"--ignore-certificate-errors-spki-list={browser.spki_pin(pem)}" in cmd and cmd[-1] == "u"
    assert "--user-data-dir=/p" in cmd and "--no-first-run" in cmd


# --- listening beyond loopback --------------------------------------------------------------------------


def test_listening_note() -> None:
    assert listening_note([("127.0.0.1", 8080), ("::1", 8080)], "localhost") is None
    lan = reachable_addresses("0.0.0.0")
    note = listening_note([("0.0.0.0", 8080)], "localhost, 192.168.1.0/24")
    assert note is not None and note.startswith("listening beyond loopback: devices reach this proxy at ")
    assert all(f"{hostport(ip, 8080)}" in note for ip in lan) and (lan or "no LAN address found" in note)
    assert note.splitlines()[1].startswith("allowed: localhost, 192.168.1.0/24; any other client gets a 403 page")
    short = listening_note([("0.0.0.0", 8080)], "localhost", short=True)
    assert short == f"LAN {', '.join(hostport(ip, 8080) for ip in lan) or 'no LAN address found'} · allowed: localhost"
    assert setup_for([("127.0.0.1", 8080), ("0.0.0.0", 9090)]).port == (9090 if lan else 8080)


def test_record_says_it_listens_beyond_loopback(tmp_path: Path, confdir: Path) -> None:
    cmd = [*PROXYCAP, "record", "-q", "-p", "0", "--listen-host", "0.0.0.0", "--allow", "192.168.1.0/24"]
    cmd += ["--store", str(tmp_path / "s.db"), "--confdir", str(confdir), "--log-file", str(tmp_path / "l.log")]
    proc = subprocess.Popen(cmd, **PIPES, env=clean_env(tmp_path))
    try:
        banner, where, allowed = (proc.stderr.readline() for _ in range(3))  # type: ignore[union-attr]
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    assert "listening on 0.0.0.0:" in banner
    assert where.startswith("listening beyond loopback: devices reach this proxy at ")
    assert allowed.startswith("allowed: localhost, 192.168.1.0/24;")

"""The command line as a user meets it: real processes, real signals, one-line errors."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import Proxy
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from origins import OriginServer, TestPKI

from proxycap.capture.summary import FIELDS
from proxycap.storage.store import Store

PROXYCAP = [sys.executable, "-m", "proxycap"]
REPO = Path(__file__).resolve().parent.parent


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    p = subprocess.run([*PROXYCAP, *args], capture_output=True, text=True, timeout=60)
    if check:
        assert p.returncode == 0, p.stderr
    return p


def assert_one_line_error(p: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert p.returncode == 2
    assert "Traceback" not in p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("proxycap: error: "), p.stderr
    for needle in needles:
        assert needle in lines[0]


class Recording:
    """``proxycap record`` in a subprocess, listening on an ephemeral port."""

    def __init__(self, tmp_path: Path, confdir: Path, pki: TestPKI, *extra: str) -> None:
        self.store = tmp_path / "rec.db"
        cmd = [
            *PROXYCAP,
            "record",
            "-p",
            "0",
            "--store",
            str(self.store),
            "--confdir",
            str(confdir),
            "--log-file",
            str(tmp_path / "rec.log"),
            "--set",
            f"ssl_verify_upstream_trusted_ca={pki.ca_pem}",
            *extra,
        ]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        banner = self.proc.stderr.readline()
        assert "listening on 127.0.0.1:" in banner, banner + self.proc.stderr.read()
        self.port = int(banner.split("listening on 127.0.0.1:")[1].split(",")[0])

    def client(self) -> httpx.Client:
        return httpx.Client(proxy=f"http://127.0.0.1:{self.port}", timeout=10)

    def stop(self, sig: int = signal.SIGTERM) -> tuple[str, str]:
        self.proc.send_signal(sig)
        out, err = self.proc.communicate(timeout=30)
        assert self.proc.returncode == 0, err
        return out, err


@pytest.fixture
def recording(tmp_path: Path, confdir: Path, pki: TestPKI) -> Iterator[Recording]:
    rec = Recording(tmp_path, confdir, pki)
    yield rec
    if rec.proc.poll() is None:
        rec.proc.kill()
        rec.proc.wait()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_record_prints_flows_and_flushes_on_signal(recording: Recording, origin: OriginServer, sig: int) -> None:
    with recording.client() as c:
        for i in range(25):
            c.get(f"{origin.url}/status/{200 + i % 3}")
    out, err = recording.stop(sig)  # right away: whatever is still queued must be flushed
    rows = list(Store(recording.store, readonly=True).iter_rows())
    assert len(rows) == 25
    assert f"{origin.url}/status/201" in out
    assert err.splitlines() == [f"stopped; 25 flows written to {recording.store}"]  # no log lines on the terminal


def test_record_quiet(tmp_path: Path, confdir: Path, pki: TestPKI, origin: OriginServer) -> None:
    rec = Recording(tmp_path, confdir, pki, "-q")
    with rec.client() as c:
        c.get(f"{origin.url}/json")
    out, _ = rec.stop()
    assert out == ""
    assert len(list(Store(rec.store, readonly=True).iter_rows())) == 1


def test_port_in_use(tmp_path: Path, confdir: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        p = run(
            "record",
            "-p",
            str(port),
            "--store",
            str(tmp_path / "s.db"),
            "--confdir",
            str(confdir),
            check=False,
        )
    assert_one_line_error(p, "cannot listen", str(port))


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--set", "no_such_option=1"], "no_such_option"),
        (["--set", "listen_port=notanumber"], "listen_port"),
        (["--mode", "bogus"], "bogus"),
        (["-s", "/nonexistent/script.py"], "script"),
        (["--allow", "300.1.2.3"], "300.1.2.3"),
        (["--set", "proxycap_backlog=lots"], "proxycap_backlog"),
        (["--set", "proxycap_backlog=0"], "proxycap_backlog"),
        (["--max-body", "huge"], "--max-body huge: not a size"),
    ],
)
def test_bad_proxy_options(tmp_path: Path, confdir: Path, args: list[str], needle: str) -> None:
    p = run("record", "-p", "0", "--store", str(tmp_path / "s.db"), "--confdir", str(confdir), *args, check=False)
    assert_one_line_error(p, needle)


def test_unwritable_store(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    p = run("record", "-p", "0", "--store", str(blocker / "s.db"), check=False)
    assert_one_line_error(p, "cannot create the folder")


def test_corrupt_store_is_reported_and_left_alone(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.db"
    content = b"SQLite format 3\x00" + os.urandom(4096)
    corrupt.write_bytes(content)
    for args in (["record", "-p", "0"], ["flows"]):
        p = run(*args, "--store", str(corrupt), check=False)
        assert_one_line_error(p, "corrupt")
    assert corrupt.read_bytes() == content


def test_store_from_another_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    Store(path).close()
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 99")
    p = run("flows", "--store", str(path), check=False)
    assert_one_line_error(p, "schema version 99")


def test_other_sqlite_file_is_not_taken_over(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE notes (x)")
    p = run("record", "-p", "0", "--store", str(path), check=False)
    assert_one_line_error(p, "not a proxycap store")


def test_flows_listing(proxy: Proxy, origin: OriginServer) -> None:
    for ip, path in (("127.0.0.2", "/status/500"), ("127.0.0.2", "/json"), ("127.0.0.20", "/status/500")):
        with proxy.client(source_ip=ip) as c:
            c.get(f"{origin.url}{path}")
    proxy.wait_flows(3)
    store = str(proxy.store_path)

    lines = [json.loads(line) for line in run("flows", "--store", store, "--json").stdout.splitlines()]
    assert len(lines) == 3
    assert set(FIELDS) <= set(lines[0])
    assert [(r["client_ip"], r["status"]) for r in lines] == [
        ("127.0.0.2", 500),
        ("127.0.0.2", 200),
        ("127.0.0.20", 500),
    ]

    only = run("flows", "--store", store, "--json", "--client", "127.0.0.2").stdout.splitlines()
    assert [json.loads(x)["client_ip"] for x in only] == ["127.0.0.2", "127.0.0.2"]

    errors = run("flows", "--store", store, "--filter", "~c 500 & ~u status").stdout.splitlines()
    assert len(errors) == 2 and all("/status/500 500" in x for x in errors)
    both = run("flows", "--store", store, "--client", "127.0.0.2", "--filter", "~c 500").stdout.splitlines()
    assert len(both) == 1 and "127.0.0.2 GET" in both[0]
    assert len(run("flows", "--store", store, "--limit", "2").stdout.splitlines()) == 2
    assert len(run("flows", "--store", store, "--filter", "~bs world").stdout.splitlines()) == 1  # body search


def test_bad_filter_expression(proxy: Proxy) -> None:
    p = run("flows", "--store", str(proxy.store_path), "--filter", "~c abc", check=False)
    assert_one_line_error(p, "invalid filter expression", "~c abc", "--help-filters")


def test_ca_info_and_export(tmp_path: Path) -> None:
    confdir = tmp_path / "ca"
    out = run("ca", "--confdir", str(confdir)).stdout
    cert_path = confdir / "mitmproxy-ca-cert.pem"
    assert f"CA certificate: {cert_path}" in out
    for needle in (
        "SHA-256:",
        "Valid:",
        "update-ca-certificates",
        "trust anchor",
        "certutil",
        "trust-nss.sh",
        "security add-trusted-cert",
        "SSL_CERT_FILE",
        "REQUESTS_CA_BUNDLE",
        "NODE_EXTRA_CA_CERTS",
        "--cacert",
    ):
        assert needle in out
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    assert cert.fingerprint(hashes.SHA256()).hex(":").upper() in out
    for name in ("mitmproxy-ca.pem", "mitmproxy-ca.p12"):
        assert (confdir / name).stat().st_mode & 0o777 == 0o600

    run("ca", "--confdir", str(confdir), "export", "--format", "der", "-o", str(tmp_path / "ca.der"))
    assert x509.load_der_x509_certificate((tmp_path / "ca.der").read_bytes()) == cert
    run("ca", "--confdir", str(confdir), "export", "-o", str(tmp_path / "ca.pem"))
    pem = (tmp_path / "ca.pem").read_bytes()
    assert b"PRIVATE KEY" not in pem and x509.load_pem_x509_certificate(pem) == cert
    run("ca", "--confdir", str(confdir), "export", "--format", "p12", "-o", str(tmp_path / "ca.p12"))
    assert (tmp_path / "ca.p12").stat().st_size > 0


def test_ca_key_permissions_are_repaired(tmp_path: Path) -> None:
    run("ca", "--confdir", str(tmp_path))
    (tmp_path / "mitmproxy-ca.pem").chmod(0o644)
    run("ca", "--confdir", str(tmp_path))
    assert (tmp_path / "mitmproxy-ca.pem").stat().st_mode & 0o777 == 0o600


def test_a_client_that_is_not_an_ip_is_a_one_line_error(tmp_path: Path) -> None:
    """Not an empty list with no reason."""
    store = tmp_path / "s.db"
    Store(store).close()
    for args in (["tui", "--open", str(store)], ["flows", "--store", str(store)]):
        assert_one_line_error(run(*args, "--client", "192.168.1.x", check=False), "--client 192.168.1.x")


def test_an_unusable_ca_is_a_one_line_error_before_listening(tmp_path: Path) -> None:
    """mitmproxy alone only logs it, and then fails every TLS handshake."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "mitmproxy-ca.pem").write_text("garbage")
    for confdir, needle in ((blocker / "ca", "cannot create the CA"), (corrupt, "cannot be read")):
        for args in (["record", "-p", "0", "--store", str(tmp_path / "s.db")], ["ca"]):
            assert_one_line_error(run(*args, "--confdir", str(confdir), check=False), needle, str(confdir))
    assert (corrupt / "mitmproxy-ca.pem").read_text() == "garbage"  # left for the user to move aside


def test_output_cut_short_by_a_pipe_is_fine(tmp_path: Path) -> None:
    p = subprocess.run(
        f"{shlex.join(PROXYCAP)} ca --confdir {shlex.quote(str(tmp_path))} | head -1",
        shell=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.stdout.startswith("CA certificate: ") and p.stderr == ""


@pytest.mark.parametrize("args", [[], ["record"], ["tui"], ["flows"], ["export"], ["import"], ["ca"], ["ca", "export"]])
def test_help_everywhere(args: list[str]) -> None:
    p = run(*args, "--help")
    assert "usage: proxycap" in p.stdout


def test_version() -> None:
    from proxycap import __version__

    assert run("--version").stdout.strip() == f"proxycap {__version__}"


def test_recorder_loads_into_stock_mitmdump(tmp_path: Path, confdir: Path, origin: OriginServer) -> None:
    mitmdump = shutil.which("mitmdump", path=str(Path(sys.executable).parent))
    assert mitmdump, "mitmdump comes with the mitmproxy dependency"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    store = tmp_path / "dump.db"
    proc = subprocess.Popen(
        [
            mitmdump,
            "-q",
            "-p",
            str(port),
            "--set",
            f"confdir={confdir}",
            "-s",
            subprocess.check_output([sys.executable, "-m", "proxycap.control.standalone"], text=True).strip(),
            "--set",
            f"proxycap_store={store}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for _ in range(100):
            try:
                with httpx.Client(proxy=f"http://127.0.0.1:{port}", timeout=5) as c:
                    assert c.get(f"{origin.url}/json").status_code == 200
                break
            except httpx.ProxyError:
                pass
            except httpx.ConnectError:
                if proc.poll() is not None:
                    pytest.fail(proc.stderr.read())
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
    rows = list(Store(store, readonly=True).iter_rows())
    assert [(r["path"], r["status"]) for r in rows] == [("/json", 200)]


def test_trust_scripts_refuse_bad_input(tmp_path: Path) -> None:
    """The trust helpers never install a missing file or a private key (they would need root to do more)."""
    run("ca", "--confdir", str(tmp_path))
    for script in sorted((REPO / "certs").glob("trust-*.sh")):
        for cert, needle in (
            (tmp_path / "missing.pem", "no certificate"),
            (tmp_path / "mitmproxy-ca.pem", "private key"),
        ):
            p = subprocess.run(["bash", str(script), str(cert)], capture_output=True, text=True, timeout=10)
            assert p.returncode == 1 and needle in p.stderr and len(p.stderr.splitlines()) == 1, (script, p.stderr)


def test_wheel_ships_addons_inside_the_package(tmp_path: Path) -> None:
    """`pip install .` must not put a generic top-level `addons` module into site-packages."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(REPO)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    [wheel] = tmp_path.glob("proxycap-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {"proxycap", wheel.name.split("-py")[0] + ".dist-info"}
    assert "proxycap/addons/recorder.py" in names and "proxycap/tui/proxycap.tcss" in names


def test_store_missing_tables_is_reported_before_anything_is_written(tmp_path: Path) -> None:
    path = tmp_path / "damaged.db"
    Store(path).close()
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE connections")
    p = run("record", "-p", "0", "--store", str(path), check=False)
    assert_one_line_error(p, "damaged", "connections")

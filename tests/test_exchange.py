"""Captures in and out: copy as curl/fetch/raw, export and import HAR, mitmproxy flow files and SAZ, redaction.
A real proxy records real traffic from real origins; the files go through the real tools (curl, node, mitmdump,
mitmproxy's HAR loader) and back into a store."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from conftest import start_proxy
from mitmproxy import http
from mitmproxy.addons.savehar import SaveHar
from mitmproxy.io import FlowReader
from mitmproxy.test import tflow
from origins import PNG_BYTES, OriginServer, TestPKI, refused_port
from test_cli import assert_one_line_error, run

from proxycap.capture.summary import META_REPLAY_OF
from proxycap.exchange import ExchangeError
from proxycap.exchange.copying import CopyError, copy_flow
from proxycap.exchange.har_writer import HarWriter
from proxycap.exchange.importer import import_files, opened_capture
from proxycap.storage.store import Store

SCHEMA = json.loads((Path(__file__).parent / "data" / "har-1.2.schema.json").read_text())
SECRETS = ("s3cr3t-t0ken", "hunter2-pw", "c00kie-val", "bearer-xyz")
BINARY = bytes(range(256)) * 4


@dataclass
class Capture:
    store: Path
    flows: dict[str, http.HTTPFlow]  # by a name for each kind of traffic
    rows: dict[str, dict[str, Any]]


@pytest.fixture(scope="module")
def capture(
    tmp_path_factory: pytest.TempPathFactory,
    confdir: Path,
    pki: TestPKI,
    origin: OriginServer,
    tls_origin: OriginServer,
) -> Iterator[Capture]:
    """One recording of every kind of flow the formats must carry, shared by this module's tests (read only)."""
    from websockets.sync.client import connect

    proxy = start_proxy(tmp_path_factory.mktemp("capture"), confdir, pki)
    try:
        with proxy.client("127.0.0.2") as c:
            c.get(f"{origin.url}/json")
            c.post(
                f"{origin.url}/echo?q=1&access_token={SECRETS[0]}",
                content=b'{"user": "me",\n "password": "%s", "note": "100%% \\\\n"}' % SECRETS[1].encode(),
                headers={
                    "content-type": "application/json",
                    "authorization": f"Bearer {SECRETS[3]}",
                    "cookie": f"sid={SECRETS[2]}; theme=dark",
                },
            )
            c.post(f"{origin.url}/echo", content=BINARY, headers={"content-type": "application/octet-stream"})
            c.post(f"{origin.url}/echo", content=b"user=me&password=" + SECRETS[1].encode(),
                   headers={"content-type": "application/x-www-form-urlencoded"})  # fmt: skip
            c.get(f"{origin.url}/image.png")
            c.get(f"{origin.url}/gzip", headers={"accept-encoding": "gzip"})
            c.get(f"{origin.url}/chunked")
            c.get(f"{origin.url}/status/500")
            c.get(f"http://127.0.0.1:{refused_port()}/refused")
        with proxy.client("127.0.0.3", http2=True) as c:
            c.get(f"{tls_origin.url}/json")
        with connect(origin.ws_url, proxy=proxy.url) as ws:
            ws.send("hello")
            ws.recv(timeout=5)
            ws.send(BINARY[:300])
            ws.recv(timeout=5)
        rows = proxy.wait_flows(11)
        store = Store(proxy.store_path, readonly=True)
        original = store.load_flow(rows[0]["seq"])
        again = original.copy()
        again.metadata[META_REPLAY_OF] = original.id
        assert proxy.session.engine.replay(again) is None
        rows = proxy.wait_flows(12)
        names = ["json", "echo", "binary", "form", "png", "gzip", "chunked", "500", "refused", "h2", "ws", "replay"]
        flows = {name: store.load_flow(row["seq"]) for name, row in zip(names, rows, strict=True)}
        store.close()
    finally:
        proxy.session.stop()
    assert flows["h2"].request.http_version == "HTTP/2.0" and flows["refused"].error is not None
    yield Capture(proxy.store_path, flows, dict(zip(names, rows, strict=True)))


# --- copying one flow -------------------------------------------------------------------------------------------


def _run_curl(command: str, tmp_path: Path) -> tuple[int, bytes]:
    out = tmp_path / "curl-body"
    p = subprocess.run(
        ["sh", "-c", f"{command} -s -o {out} -w '%{{http_code}}'"], capture_output=True, timeout=30, check=True
    )
    return int(p.stdout), out.read_bytes()


@pytest.mark.parametrize("name", ["json", "echo", "binary", "form", "gzip", "png"])
def test_copied_curl_gets_the_same_response_from_the_origin(capture: Capture, name: str, tmp_path: Path) -> None:
    flow = capture.flows[name]
    copied = copy_flow(flow, "curl", tmp_path)
    status, body = _run_curl(copied.text, tmp_path)
    assert status == flow.response.status_code
    if name in ("echo", "binary", "form"):  # the origin echoes the request: what curl sent is what was captured
        sent, got = json.loads(flow.response.content), json.loads(body)
        for echo in (sent, got):
            echo["headers"].pop("accept-encoding", None)  # curl --compressed asks for what it can decode
        assert got == sent
        assert got["body_length"] == len(flow.request.content)
    else:
        assert body == flow.response.content
    if name == "binary":
        [path] = copied.files
        assert path.read_bytes() == BINARY and path.stat().st_mode & 0o777 == 0o600
        assert f"--data-binary @{path}" in copied.text and str(path) in copied.summary()
    else:
        assert not copied.files and copied.note is None


@pytest.mark.parametrize("name", ["echo", "binary"])
def test_copied_fetch_runs_in_node_against_the_origin(capture: Capture, name: str) -> None:
    flow = capture.flows[name]
    script = copy_flow(flow, "fetch").text.replace(
        "});", "}).then(async (r) => process.stdout.write(JSON.stringify([r.status, await r.text()])));"
    )
    p = subprocess.run(["node", "-e", script], capture_output=True, text=True, timeout=30, check=True)
    status, text = json.loads(p.stdout)
    assert status == 200
    assert json.loads(text)["body_length"] == len(flow.request.content)
    assert json.loads(text)["body"] == json.loads(flow.response.content)["body"]


def test_copy_formats_say_what_they_leave_out(capture: Capture, tmp_path: Path) -> None:
    png = copy_flow(capture.flows["png"], "response", tmp_path)
    assert "[" in png.text and "bytes of binary body]" in png.text and "\x00" not in png.text
    [path] = png.files
    assert path.read_bytes().endswith(PNG_BYTES) and str(path) in png.note
    echo = copy_flow(capture.flows["echo"], "raw", tmp_path)
    assert echo.text.startswith("POST /echo?q=1") and '"password"' in echo.text
    assert "\r\n\r\nHTTP/1.1 200 " in echo.text
    assert copy_flow(capture.flows["json"], "url").text == capture.flows["json"].request.pretty_url
    httpie = copy_flow(capture.flows["binary"], "httpie", tmp_path)
    assert httpie.text.startswith("http POST ") and httpie.text.endswith(f"< {httpie.files[0]}")
    with pytest.raises(CopyError, match="no response"):
        copy_flow(capture.flows["refused"], "response")


# --- export -----------------------------------------------------------------------------------------------------


def _export(capture: Capture, tmp_path: Path, fmt: str, *args: str) -> tuple[Path, str]:
    out = tmp_path / f"out.{fmt}"
    p = run("export", "--store", str(capture.store), "--format", fmt, "-o", str(out), *args)
    [line] = p.stderr.splitlines()  # not a terminal: no progress bar, one line
    assert out.stat().st_mode & 0o777 == 0o600
    return out, line


def test_har_export_follows_the_rules_and_mitmproxy_reads_it(capture: Capture, tmp_path: Path) -> None:
    out, line = _export(capture, tmp_path, "har")
    assert line == f"exported 12 flows to {out} (HAR)"
    doc = json.loads(out.read_bytes())
    jsonschema.validate(doc, SCHEMA, format_checker=jsonschema.FormatChecker())
    entries = doc["log"]["entries"]
    for e in entries:
        parts = [v for k, v in e["timings"].items() if v > 0 and k != "ssl"]  # ssl is part of connect
        assert e["time"] == pytest.approx(sum(parts), abs=0.01)
        assert e["_clientIPAddress"] in ("127.0.0.2", "127.0.0.3", "127.0.0.1")
    assert entries[4]["response"]["content"]["encoding"] == "base64"  # the PNG
    assert entries[2]["request"]["postData"]["_encoding"] == "base64"  # the binary upload
    assert entries[10]["_resourceType"] == "websocket" and len(entries[10]["_webSocketMessages"]) == 4
    assert entries[11]["_replayOf"] == entries[0]["_flowId"]
    assert entries[8]["response"]["status"] == 0 and entries[8]["response"]["_error"]
    with open(out, "rb") as fo:  # mitmproxy's own HAR loader
        loaded = list(FlowReader(fo).stream())
    assert [f.request.url for f in loaded] == [e["request"]["url"] for e in entries]
    for f, (name, original) in zip(loaded, capture.flows.items(), strict=True):
        if name in ("json", "png", "gzip", "chunked", "h2"):
            assert f.response.content == original.response.content, name


def test_the_har_schema_catches_mitmprosys_failed_flow_entries() -> None:
    """The schema is strict enough to fail: mitmproxy's own savehar leaves a failed flow's content empty."""
    entry = SaveHar().flow_entry(tflow.tflow(err=True), set())
    doc = {"log": {"version": "1.2", "creator": {"name": "m", "version": "1"}, "entries": [entry]}}
    with pytest.raises(jsonschema.ValidationError, match="size"):
        jsonschema.validate(doc, SCHEMA)
    buf = io.BytesIO()
    writer = HarWriter(buf)
    writer.add(tflow.tflow(err=True))
    writer.close()
    jsonschema.validate(json.loads(buf.getvalue()), SCHEMA)


def test_mitm_export_loads_in_mitmdump(capture: Capture, tmp_path: Path) -> None:
    out, line = _export(capture, tmp_path, "mitm")
    assert line == f"exported 12 flows to {out} (mitmproxy flows)"
    mitmdump = shutil.which("mitmdump", path=str(Path(sys.executable).parent))
    p = subprocess.run(
        [mitmdump, "-n", "-r", str(out), "--set", f"confdir={tmp_path}", "--flow-detail", "1"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    for name in ("json", "png", "500", "h2"):
        assert capture.flows[name].request.pretty_url in p.stdout


def test_saz_export_has_fiddlers_layout(capture: Capture, tmp_path: Path) -> None:
    out, _ = _export(capture, tmp_path, "saz")
    names = zipfile.ZipFile(out).namelist()
    assert names[0] == "raw/" and names[-2:] == ["_index.htm", "[Content_Types].xml"]
    assert {f"raw/{n}_{p}" for n in range(1, 13) for p in ("c.txt", "s.txt", "m.xml")} <= set(names)
    assert "raw/11_w.txt" in names
    z = zipfile.ZipFile(out)
    assert z.read("raw/1_c.txt").startswith(f"GET {capture.flows['json'].request.url} HTTP/1.1\r\n".encode())
    meta = z.read("raw/1_m.xml")
    assert meta.startswith(b'\xef\xbb\xbf<?xml version="1.0" encoding="utf-8"?>\r\n<Session SID="1"')
    for needle in (b"<SessionTimers ClientConnected=", b'N="x-clientip" V="127.0.0.2"', b'N="x-clientport"'):
        assert needle in meta
    assert b"<td>/image.png</td>" in z.read("_index.htm")


def test_export_selects_by_client_marked_and_filter(capture: Capture, tmp_path: Path) -> None:
    store = tmp_path / "copy.db"
    shutil.copy(capture.store, store)
    s = Store(store)
    s.set_marked([capture.rows["png"]["seq"], capture.rows["500"]["seq"]], True)
    s.close()
    out = tmp_path / "x.jsonl"
    for args, expected in (
        (["--client", "127.0.0.3"], ["h2"]),
        (["--marked"], ["png", "500"]),
        (["--filter", "~c 500"], ["500"]),
        (["--filter", "~bs world", "--client", "127.0.0.2"], ["json", "gzip", "replay"]),  # a body filter: full flows
    ):
        run("export", "--store", str(store), *args, "-o", str(out))
        ids = [json.loads(line)["id"] for line in out.read_text().splitlines()]
        assert ids == [capture.rows[n]["id"] for n in expected], args
    flows_json = run("flows", "--store", str(store), "--json", "--client", "127.0.0.3").stdout
    run("export", "--store", str(store), "--client", "127.0.0.3", "-o", str(out))
    assert out.read_text() == flows_json


def test_export_errors_are_one_line(capture: Capture, tmp_path: Path) -> None:
    out = tmp_path / "x.bin"
    assert_one_line_error(run("export", "--store", str(capture.store), "-o", str(out), check=False), "--format")
    p = run("export", "--store", str(capture.store), "--filter", "~c abc", "-o", str(tmp_path / "x.har"), check=False)
    assert_one_line_error(p, "invalid filter expression")
    assert not list(tmp_path.iterdir())


def test_redaction_in_every_format(capture: Capture, tmp_path: Path) -> None:
    for fmt in ("har", "mitm", "saz", "curl", "jsonl"):
        out, line = _export(capture, tmp_path, fmt, "--redact")
        data = out.read_bytes()
        if fmt == "saz":
            z = zipfile.ZipFile(out)
            data = b"".join(z.read(n) for n in z.namelist())
        for secret in SECRETS:
            assert secret.encode() not in data, (fmt, secret)
        assert b"REDACTED" in data
        # access_token, authorization, the 2 cookies, the JSON password (request and echoed), the form password
        # (and what the origin echoed of them)
        expected = "1 value redacted" if fmt == "jsonl" else "values redacted"
        assert line.endswith(expected), line
    plain, _ = _export(capture, tmp_path, "har")
    assert all(secret.encode() in plain.read_bytes() for secret in SECRETS)  # the test can fail


# --- import -----------------------------------------------------------------------------------------------------


def _flows(store_path: Path) -> list[tuple[dict[str, Any], http.HTTPFlow]]:
    store = Store(store_path, readonly=True)
    try:
        return [(row, store.load_flow(row["seq"])) for row in store.iter_rows()]
    finally:
        store.close()


@pytest.mark.parametrize("fmt", ["har", "saz", "mitm"])
def test_export_then_import_reproduces_every_flow(capture: Capture, tmp_path: Path, fmt: str) -> None:
    out, _ = _export(capture, tmp_path, fmt)
    target = tmp_path / "imported.db"
    p = run("import", str(out), "--store", str(target))
    assert p.stderr.strip().startswith(f"imported 12 flows into {target}: 12 from {out}")
    imported = _flows(target)
    assert len(imported) == 12
    ids = {}
    for (name, original), (row, flow) in zip(capture.flows.items(), imported, strict=True):
        ids[original.id] = flow.id
        assert row["source"] == str(out.resolve())
        assert flow.request.method == original.request.method and flow.request.url == original.request.url, name
        assert flow.request.raw_content == original.request.raw_content, name  # binary ones too
        assert flow.request.headers == original.request.headers or (fmt == "har" and name == "h2"), name
        assert (flow.client_conn.peername[0], flow.client_conn.peername[1]) == original.client_conn.peername[:2]
        assert row["ts"] == pytest.approx(capture.rows[name]["ts"], abs=1e-3)
        assert row["duration_ms"] == pytest.approx(capture.rows[name]["duration_ms"], abs=1.5)
        if original.response is None:
            assert flow.response is None and flow.error.msg == original.error.msg
            continue
        assert flow.response.status_code == original.response.status_code, name
        assert flow.response.content == original.response.content, name
        if fmt != "har" or "content-encoding" not in original.response.headers:
            assert flow.response.raw_content == original.response.raw_content, name
        assert flow.response.headers == original.response.headers, name
        assert row["ttfb_ms"] == pytest.approx(capture.rows[name]["ttfb_ms"], abs=1.5)
        if original.websocket:
            assert [(m.content, m.from_client, m.type) for m in flow.websocket.messages] == [
                (m.content, m.from_client, m.type) for m in original.websocket.messages
            ]
    assert imported[11][0]["replay_of"] == ids[capture.flows["json"].id]  # the replay still names its original
    run("import", str(out), "--store", str(target))  # again: fresh ids, no collision
    assert len(_flows(target)) == 24


def _bad_files(capture: Capture, tmp_path: Path) -> list[tuple[Path, str]]:
    har, _ = _export(capture, tmp_path, "har")
    saz, _ = _export(capture, tmp_path, "saz")
    mitm, _ = _export(capture, tmp_path, "mitm")
    doc = json.loads(har.read_bytes())
    del doc["log"]["entries"][4]["request"]["url"]
    broken_har = tmp_path / "broken.har"
    broken_har.write_text(json.dumps(doc))
    truncated_har = tmp_path / "truncated.har"
    truncated_har.write_bytes(har.read_bytes()[: har.stat().st_size // 2])
    not_har = tmp_path / "notes.har"
    not_har.write_text("these are my notes")
    truncated_saz = tmp_path / "truncated.saz"
    truncated_saz.write_bytes(saz.read_bytes()[:-200])
    broken_saz = tmp_path / "broken.saz"
    with zipfile.ZipFile(saz) as src, zipfile.ZipFile(broken_saz, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            dst.writestr(item, b"GARBAGE\r\n\r\n" if item.filename == "raw/3_s.txt" else data)
    truncated_mitm = tmp_path / "truncated.mitm"
    truncated_mitm.write_bytes(mitm.read_bytes()[:-100])
    return [
        (broken_har, "entry 5: request.url is missing"),
        (truncated_har, "ends too early"),
        (not_har, "not a HAR file"),
        (truncated_saz, "not a SAZ file"),
        (broken_saz, "session raw/3_c.txt: response line b'GARBAGE'"),
        (truncated_mitm, "flow 12: cannot be read"),
    ]


def test_a_bad_file_fails_in_one_line_and_nothing_is_stored(capture: Capture, tmp_path: Path) -> None:
    target = tmp_path / "target.db"
    good, _ = _export(capture, tmp_path, "har")
    run("import", str(good), "--store", str(target))
    before = _flows(target)
    bad_files = _bad_files(capture, tmp_path)
    for bad, needle in bad_files:  # in this process: the same code the command runs, without a process per file
        store = Store(target)
        try:
            with pytest.raises(ExchangeError) as error:
                import_files(store, [good, bad])  # the good one is not kept
        finally:
            store.close()
        assert str(bad) in str(error.value) and needle in str(error.value) and "\n" not in str(error.value)
        assert len(_flows(target)) == len(before) == 12
    bad, needle = bad_files[0]
    p = run("import", str(good), str(bad), "--store", str(target), check=False)
    assert_one_line_error(p, str(bad), needle)
    assert len(_flows(target)) == 12
    with pytest.raises(ExchangeError, match="no such file"):
        import_files(Store(target), [tmp_path / "missing.har"])


def test_tui_open_reads_a_capture_file_through_a_temporary_store(capture: Capture, tmp_path: Path) -> None:
    out, _ = _export(capture, tmp_path, "saz")
    with opened_capture(out) as store_path:
        assert store_path != out and store_path.parent.stat().st_mode & 0o777 == 0o700
        assert len(_flows(store_path)) == 12
    assert not store_path.exists() and not store_path.parent.exists()
    with opened_capture(capture.store) as store_path:
        assert store_path == capture.store
    bad = tmp_path / "bad.har"
    bad.write_text("nope")
    p = run("tui", "--open", str(bad), check=False)
    assert_one_line_error(p, "bad.har: not a HAR file")

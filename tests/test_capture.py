"""End to end: real clients → real proxycap → real origins, checked in the store."""

from __future__ import annotations

import contextlib
import json
import socket
import sqlite3
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Proxy, start_proxy
from origins import (
    CHUNKED_TEXT,
    JSON_DOC,
    HangServer,
    OriginServer,
    ResetServer,
    TestPKI,
    pattern_bytes,
    refused_port,
)

from proxycap.addons.recorder import REQUEST_DELAY
from proxycap.capture.bus import FlowEvent
from proxycap.query.fmt import streamed_note
from proxycap.storage.store import Query, Store


def _store(proxy: Proxy) -> Store:
    return Store(proxy.store_path, readonly=True)


def test_http_flow_lands_in_store(proxy: Proxy, origin: OriginServer) -> None:
    with proxy.client() as c:
        r = c.get(f"{origin.url}/json?x=1")
    assert r.json() == JSON_DOC
    [row] = proxy.wait_flows(1)
    assert row["client_ip"] == "127.0.0.1"
    assert (row["method"], row["scheme"], row["host"], row["port"]) == (
        "GET",
        "http",
        "127.0.0.1",
        origin.port,
    )
    assert row["path"] == "/json?x=1"
    assert row["url"] == f"{origin.url}/json?x=1"
    assert row["status"] == 200
    assert row["content_type"] == "application/json"
    assert row["response_size"] == len(r.content)
    assert row["state"] == "done"
    assert row["duration_ms"] is not None and row["duration_ms"] >= 0


def test_https_through_connect(proxy: Proxy, tls_origin: OriginServer) -> None:
    with proxy.client() as c:
        r = c.post(f"{tls_origin.url}/echo", content=b"secret=1")
    assert r.json()["body"] == "secret=1"
    [row] = proxy.wait_flows(1)
    assert (row["scheme"], row["host"], row["method"], row["status"]) == ("https", "localhost", "POST", 200)
    assert row["sni"] == "localhost"
    assert row["tls_version"].startswith("TLS")
    assert row["request_size"] == 8
    flow = _store(proxy).load_flow(row["seq"])
    assert flow is not None and flow.request.content == b"secret=1"
    assert json.loads(flow.response.content)["body"] == "secret=1"


def test_http2_end_to_end(proxy: Proxy, tls_origin: OriginServer) -> None:
    with proxy.client(http2=True) as c:
        r = c.get(f"{tls_origin.url}/echo")
    assert r.http_version == "HTTP/2"
    assert r.json()["http_version"] == "2"  # mitmproxy spoke HTTP/2 upstream too
    [row] = proxy.wait_flows(1)
    assert row["http_version"] == "HTTP/2.0"
    assert row["status"] == 200


def test_websocket_messages_recorded(proxy: Proxy, origin: OriginServer) -> None:
    from websockets.sync.client import connect

    with connect(origin.ws_url, proxy=proxy.url) as ws:
        for text in ("one", "two", "three"):
            ws.send(text)
            assert ws.recv(timeout=5) == f"echo:{text}"
    [row] = proxy.wait_flows(1)
    assert row["websocket"] and row["status"] == 101
    assert row["ws_messages"] == 6
    flow = _store(proxy).load_flow(row["seq"])
    assert [m.text for m in flow.websocket.messages] == [
        "one",
        "echo:one",
        "two",
        "echo:two",
        "three",
        "echo:three",
    ]


@pytest.mark.parametrize(("path", "encoding"), [("/gzip", "gzip"), ("/br", "br"), ("/chunked", None)])
def test_encoded_and_chunked_bodies(proxy: Proxy, origin: OriginServer, path: str, encoding: str | None) -> None:
    with proxy.client() as c:
        r = c.get(f"{origin.url}{path}")
    [row] = proxy.wait_flows(1)
    flow = _store(proxy).load_flow(row["seq"])
    assert flow.response.headers.get("content-encoding") == encoding
    assert flow.response.content == r.content  # decoded body equals what the client decoded
    if encoding:
        assert flow.response.raw_content != flow.response.content
        assert json.loads(flow.response.content) == JSON_DOC
    else:
        assert flow.response.content.decode() == CHUNKED_TEXT
        assert flow.response.headers.get("transfer-encoding") == "chunked"


def test_large_body_is_streamed_not_buffered(proxy: Proxy, origin: OriginServer) -> None:
    n = 20 * 1024 * 1024
    with proxy.client(timeout=60) as c:
        r = c.get(f"{origin.url}/bytes/{n}")
    assert r.content == pattern_bytes(n)
    [row] = proxy.wait_flows(1)
    assert row["streamed"] == "response"
    assert row["response_size"] == n
    assert streamed_note(row) == f"response body not captured (streamed, {n} bytes)"
    flow = _store(proxy).load_flow(row["seq"])
    assert flow.response.raw_content is None
    assert proxy.store_path.stat().st_size < 1024 * 1024


def test_bodies_below_the_limit_are_kept_compressed(proxy: Proxy, origin: OriginServer) -> None:
    n = 3 * 1024 * 1024
    with proxy.client() as c:
        c.get(f"{origin.url}/bytes/{n}")
    [row] = proxy.wait_flows(1)
    assert row["streamed"] is None and row["response_size"] == n
    assert _store(proxy).load_flow(row["seq"]).response.content == pattern_bytes(n)
    size = sum(p.stat().st_size for p in proxy.store_path.parent.glob("captures.db*"))
    assert size < n / 4


def test_failing_origins_are_recorded_as_errors(
    proxy: Proxy, origin: OriginServer, reset_server: ResetServer, hang_server: HangServer
) -> None:
    with proxy.client() as c:
        assert c.get(f"http://127.0.0.1:{refused_port()}/refused").status_code == 502
        assert c.get(f"{reset_server.url}/reset").status_code == 502
    with proxy.client(timeout=0.5) as c, pytest.raises(httpx.ReadTimeout):
        c.get(f"{hang_server.url}/hang")
    rows = {r["path"]: r for r in proxy.wait_flows(3)}
    assert "refused" in rows["/refused"]["error"].lower() or "connect" in rows["/refused"]["error"].lower()
    assert rows["/reset"]["error"]
    assert "disconnect" in rows["/hang"]["error"].lower()
    with proxy.client() as c:  # and the proxy keeps serving
        assert c.get(f"{origin.url}/json").status_code == 200


def test_log_file_keeps_connection_errors_but_not_every_open_and_close(proxy: Proxy, origin: OriginServer) -> None:
    with proxy.client() as c:
        assert c.get(f"http://127.0.0.1:{refused_port()}/refused").status_code == 502
        assert c.get(f"{origin.url}/json").status_code == 200
    proxy.wait_flows(2)
    proxy.session.stop()
    log = (proxy.store_path.parent / "proxycap.log").read_text()
    assert "error establishing server connection" in log
    assert "client connect" not in log and "server connect 127" not in log and "disconnect" not in log


def test_clients_are_told_apart_by_source_ip(proxy: Proxy, origin: OriginServer) -> None:
    for ip, n in (("127.0.0.2", 3), ("127.0.0.3", 2), ("127.0.0.20", 1)):
        with proxy.client(source_ip=ip) as c:
            for _ in range(n):
                c.get(f"{origin.url}/json", headers={"user-agent": f"agent-{ip}"})
    proxy.wait_flows(6)
    store = _store(proxy)
    stats = {c.ip: c for c in store.clients()}
    assert {ip: s.flows for ip, s in stats.items()} == {"127.0.0.2": 3, "127.0.0.3": 2, "127.0.0.20": 1}
    assert stats["127.0.0.3"].user_agent == "agent-127.0.0.3"
    assert stats["127.0.0.2"].connections >= 1
    assert store.count(Query(client_ip="127.0.0.2")) == 3  # exact, not a regex: .20 is someone else


def test_flows_survive_a_restart(tmp_path: Path, confdir: Path, pki: TestPKI, origin: OriginServer) -> None:
    for run in range(2):
        p = start_proxy(tmp_path, confdir, pki)
        try:
            with p.client() as c:
                c.get(f"{origin.url}/status/{201 + run}")
            p.wait_flows(run + 1)
        finally:
            p.session.stop()
    rows = list(Store(tmp_path / "captures.db", readonly=True).iter_rows())
    assert [(r["seq"], r["status"]) for r in rows] == [(1, 201), (2, 202)]


def test_in_flight_flow_is_stored_on_stop(tmp_path: Path, confdir: Path, pki: TestPKI, origin: OriginServer) -> None:
    """A request still waiting for its response when the proxy stops is in the store, not lost."""
    p = start_proxy(tmp_path, confdir, pki)
    # Slower than the stop's grace period (2 s) by a margin that a loaded machine's store lag cannot use up.
    pending = ThreadPoolExecutor(1).submit(_get_quietly, p, f"{origin.url}/slow?ms=8000")
    p.wait_flows(1, done=False)
    p.session.stop()
    pending.result()
    [row] = Store(tmp_path / "captures.db", readonly=True).iter_rows()
    assert row["path"] == "/slow?ms=8000"
    assert row["state"] == "error" and row["error"]


def test_a_request_is_announced_on_its_own_only_while_its_response_is_slow(proxy: Proxy, origin: OriginServer) -> None:
    """The response's event says all a request's would: the proxy summarises a quick flow once, a slow one twice."""
    sub = proxy.session.bus.subscribe("test", limit=1000)
    with proxy.client() as c:
        c.get(f"{origin.url}/slow?ms={REQUEST_DELAY * 1000 * 6:.0f}")
        c.get(f"{origin.url}/json")
    proxy.wait_flows(2)
    kinds: dict[str, list[str]] = {}
    for ev in sub.drain():
        if isinstance(ev, FlowEvent):
            kinds.setdefault(ev.summary["path"].partition("?")[0], []).append(ev.kind)
    assert kinds == {"/slow": ["request", "response"], "/json": ["response"]}


def test_with_only_the_store_listening_the_proxy_leaves_summaries_to_the_store(
    proxy: Proxy, origin: OriginServer
) -> None:
    """`proxycap record`: the events carry states and no summaries (the store writer's child makes them); a request
    announced on its own has no state, so it has its summary. The stored rows are as complete either way."""
    sub = proxy.session.bus.subscribe("test", with_state=True)  # listens as the store writer does
    try:
        with proxy.client() as c:
            c.get(f"{origin.url}/slow?ms={REQUEST_DELAY * 1000 * 6:.0f}")
            c.get(f"{origin.url}/json", headers={"user-agent": "tester/1"})
        [slow, quick] = proxy.wait_flows(2)
        events = [(ev.kind, ev.summary is None, ev.state is None) for ev in sub.drain() if isinstance(ev, FlowEvent)]
    finally:
        sub.close()
    assert events == [("request", False, True), ("response", True, False), ("response", True, False)]
    assert (quick["path"], quick["status"], quick["user_agent"], quick["client_ip"]) == (
        "/json",
        200,
        "tester/1",
        "127.0.0.1",
    )
    assert slow["state"] == "done" and slow["duration_ms"] >= REQUEST_DELAY * 1000 * 6


def _get_quietly(p: Proxy, url: str) -> None:
    with p.client() as c, contextlib.suppress(httpx.HTTPError):
        c.get(url)


# --- hostile and broken clients ---------------------------------------------------------------


def _raw(port: int, data: bytes, read: bool = True) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(data)
        if not read:
            return b""
        chunks = []
        with contextlib.suppress(TimeoutError, ConnectionError):
            while chunk := s.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks)


@pytest.mark.parametrize(
    "data",
    [
        b"GARBAGE\r\n\r\n",
        b"GET http://127.0.0.1/ HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n",
        b"GET http://127.0.0.1/ HTTP/1.1\r\nContent-Length: nope\r\n\r\n",
        b"\x00\xff" * 1000 + b"\r\n\r\n",
    ],
    ids=["request-line", "header-line", "content-length", "binary"],
)
def test_malformed_requests_get_an_error_and_the_proxy_keeps_serving(
    proxy: Proxy, origin: OriginServer, data: bytes
) -> None:
    reply = _raw(proxy.port, data)
    assert reply.startswith(b"HTTP/1.1 400") or reply == b""
    with proxy.client() as c:
        assert c.get(f"{origin.url}/json").status_code == 200
    proxy.wait_flows(1)


def test_undecodable_headers_and_huge_sizes_are_stored_and_recording_goes_on(
    proxy: Proxy, origin: OriginServer
) -> None:
    """Latin-1 in a header and a Content-Length past 64 bits: mitmproxy passes both on to the recorder."""
    huge = f"POST {origin.url}/echo HTTP/1.1\r\nHost: x\r\nContent-Length: {10**22}\r\n\r\n"
    _raw(proxy.port, huge.encode() + b"x" * 100, read=False)
    latin = f"GET {origin.url}/json HTTP/1.1\r\nHost: x\r\nUser-Agent: t\xe9st\r\nConnection: close\r\n\r\n"
    assert _raw(proxy.port, latin.encode("latin-1")).startswith(b"HTTP/1.1 200")
    with proxy.client() as c:
        assert c.get(f"{origin.url}/status/201").status_code == 201
    rows = {r["path"]: r for r in proxy.wait_flows(3)}
    assert rows["/json"]["user_agent"] == "t\\xe9st" and rows["/json"]["status"] == 200
    assert rows["/echo"]["error"]
    assert rows["/status/201"]["status"] == 201


def test_garbage_instead_of_client_hello(proxy: Proxy, tls_origin: OriginServer, origin: OriginServer) -> None:
    connect = f"CONNECT localhost:{tls_origin.port} HTTP/1.1\r\nHost: localhost:{tls_origin.port}\r\n\r\n"
    reply = _raw(proxy.port, connect.encode() + b"\x16\x03\x01\x00\x10" + b"\xde\xad" * 500)
    assert reply.startswith(b"HTTP/1.1 200")
    with proxy.client() as c:
        assert c.get(f"{origin.url}/json").status_code == 200
    rows = {r["method"]: r for r in proxy.wait_flows(2)}
    assert "Cannot parse ClientHello" in rows["CONNECT"]["error"]
    assert rows["GET"]["status"] == 200


def test_client_that_does_not_trust_the_ca_is_recorded(proxy: Proxy, tls_origin: OriginServer) -> None:
    transport = httpx.HTTPTransport(proxy=proxy.url, verify=True, retries=0)  # system CAs only
    with httpx.Client(transport=transport) as c, pytest.raises(httpx.ConnectError):
        c.get(f"{tls_origin.url}/json")
    [row] = proxy.wait_flows(1)
    assert row["method"] == "CONNECT" and "TLS handshake" in row["error"]
    assert "proxycap ca" in row["error"]
    events = _eventually(lambda: _store(proxy).events())
    [event] = [e for e in events if "TLS handshake" in e[2]]  # once, with the hint, not twice
    assert "does not trust" in event[2] and "proxycap ca" in event[2] and event[3] == "127.0.0.1"


def test_client_disconnecting_mid_body(proxy: Proxy, origin: OriginServer) -> None:
    head = f"POST {origin.url}/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n".encode()
    _raw(proxy.port, head + b"x" * 1000, read=False)
    with proxy.client() as c:
        assert c.get(f"{origin.url}/json").status_code == 200
    rows = {r["path"]: r for r in proxy.wait_flows(2)}
    assert rows["/json"]["status"] == 200
    # The aborted upload is recorded as a failed flow; it may land before or after /json.
    assert rows["/echo"]["status"] is None and rows["/echo"]["error"]


def _eventually(fn: Callable[[], list[Any]], timeout: float = 5) -> list[Any]:
    deadline = time.monotonic() + timeout
    while not (result := fn()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return result


def test_curl_from_another_device(proxy: Proxy, tls_origin: OriginServer, pki: TestPKI) -> None:
    """curl as a user would run it: its own TLS stack, trusting proxycap's CA, from 127.0.0.3, over HTTP/2."""
    out = subprocess.run(
        [
            "curl",
            "-sS",
            "--http2",
            "--interface",
            "127.0.0.3",
            "-x",
            proxy.url,
            "--cacert",
            str(proxy.ca_pem),
            "-A",
            "curl-test/1.0",
            "-w",
            "\\n%{http_version}",
            f"{tls_origin.url}/json",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    body, version = out.rsplit("\n", 1)
    assert json.loads(body) == JSON_DOC and version == "2"
    [row] = proxy.wait_flows(1)
    assert (row["client_ip"], row["http_version"], row["user_agent"]) == ("127.0.0.3", "HTTP/2.0", "curl-test/1.0")


def test_row_numbers_have_no_gaps(proxy: Proxy, origin: OriginServer) -> None:
    """Request and response written in different batches still make one row, numbered consecutively."""
    with proxy.client() as c:
        for _ in range(3):
            c.get(f"{origin.url}/slow?ms=150")
    assert [r["seq"] for r in proxy.wait_flows(3)] == [1, 2, 3]


def test_failed_tunnel_is_recorded(proxy: Proxy) -> None:
    port = refused_port()
    with proxy.client() as c, pytest.raises(httpx.ProxyError):
        c.get(f"https://localhost:{port}/")
    [row] = proxy.wait_flows(1)
    assert (row["method"], row["host"], row["port"], row["state"]) == ("CONNECT", "localhost", port, "error")
    assert row["error"]


def test_keepalive_connection_is_stored_once(proxy: Proxy, tls_origin: OriginServer) -> None:
    """Flows share their connections' state in the store, and each still loads whole."""
    with proxy.client() as c:
        for i in range(5):
            c.get(f"{tls_origin.url}/status/{200 + i}")
    rows = proxy.wait_flows(5)
    with sqlite3.connect(proxy.store_path) as db:
        conns = db.execute("SELECT count(*) FROM connections").fetchone()[0]
    assert conns <= 4  # one client and one server connection, at most one later version of each
    store = _store(proxy)
    flows = [store.load_flow(r["seq"]) for r in rows]
    assert [f.response.status_code for f in flows] == [200, 201, 202, 203, 204]
    assert {f.client_conn.id for f in flows} == {flows[0].client_conn.id}
    assert all(f.client_conn.sni == "localhost" and f.server_conn.tls_version for f in flows)


HOOKS_SCRIPT = """
class Hooks:
    def requestheaders(self, flow):
        flow.metadata["hooks"] = ["requestheaders"]

    def request(self, flow):
        flow.metadata["hooks"].append("request")
        if flow.request.path == "/json?fail":
            raise ValueError("a script's bug")

    def responseheaders(self, flow):
        flow.metadata["hooks"].append("responseheaders")

    def update(self, flows):
        for flow in flows:
            flow.metadata.get("hooks", []).append("update")

    def response(self, flow):
        flow.response.headers["x-hooks"] = ",".join(flow.metadata["hooks"])

addons = [Hooks()]
"""


def test_scripts_get_every_hook_and_a_failing_one_does_not_stop_the_flow(
    tmp_path: Path, confdir: Path, pki: TestPKI, origin: OriginServer
) -> None:
    """A user's ``-s`` script sits below mitmproxy's script loader: proxycap's quicker hook dispatch reaches it."""
    script = tmp_path / "hooks.py"
    script.write_text(HOOKS_SCRIPT)
    p = start_proxy(tmp_path, confdir, pki, scripts=[str(script)])
    try:
        with p.client() as c:
            replies = [c.get(f"{origin.url}/json?{q}") for q in ("ok", "fail")]
        rows = p.wait_flows(2)
    finally:
        p.session.stop()
    hooks = "requestheaders,update,request,update,responseheaders,update"  # as stock mitmproxy calls them
    assert [r.headers["x-hooks"] for r in replies] == [hooks] * 2
    assert [(r["path"], r["status"]) for r in rows] == [("/json?ok", 200), ("/json?fail", 200)]

"""Breakpoints through the running engine: real clients (httpx, curl) stopped, edited, aborted, sent on."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

import httpx
import pytest
from conftest import Proxy
from origins import JSON_DOC, SEEN, OriginServer

from proxycap.addons.breakpoints import ABORT_BODY, Breakpoints, Stopped
from proxycap.control.editing import EditError, edited, edited_response, request_text, response_text
from proxycap.storage.store import Store

T = TypeVar("T")


def wait_for(get: Callable[[], T], timeout: float = 15) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := get():
            return value
        time.sleep(0.02)
    raise AssertionError("timed out")


def stopped_one(bp: Breakpoints) -> Stopped:
    [stopped] = wait_for(bp.stopped)
    return stopped


def stored(proxy: Proxy) -> list[dict[str, Any]]:
    store = Store(proxy.store_path, readonly=True)
    try:
        return list(store.iter_rows())
    finally:
        store.close()


@pytest.fixture
def pool() -> Any:
    with ThreadPoolExecutor(4) as pool:
        yield pool


def test_request_breakpoint_edited_reaches_the_origin(proxy: Proxy, origin: OriginServer, pool: Any) -> None:
    bp = proxy.session.breakpoints
    bp.add("~u /echo & ~m POST")
    with proxy.client() as c:
        answer = pool.submit(c.post, f"{origin.url}/echo?v=1", content=b"body", headers={"X-Test": "original"})
        stopped = stopped_one(bp)
        assert (stopped.phase, stopped.method, stopped.client_ip) == ("request", "POST", "127.0.0.1")
        # The store shows it stopped.
        row = wait_for(lambda: [r for r in stored(proxy) if r["intercepted"]])[0]
        assert (row["id"], row["status"]) == (stopped.flow_id, None)
        f = bp.flow(stopped.flow_id)
        text = request_text(f.request).replace("/echo?v=1", "/echo?v=2").replace("original", "edited")
        bp.execute(stopped.flow_id, edited(f.request, text))
        echo = answer.result(30).json()
    assert echo["query"] == "v=2" and echo["headers"]["x-test"] == "edited" and echo["body"] == "body"
    assert bp.stopped() == ()
    [row] = proxy.wait_flows(1)
    assert (row["intercepted"], row["status"], row["path"]) == (0, 200, "/echo?v=2")
    assert row["modified"] == "breakpoint: request edited (URL, headers)"


def test_response_breakpoint_edited_reaches_curl(proxy: Proxy, origin: OriginServer, pool: Any) -> None:
    bp = proxy.session.breakpoints
    bp.add("~u /json", request=False, response=True)
    out = pool.submit(proxy.curl, f"{origin.url}/json")
    stopped = stopped_one(bp)
    assert (stopped.phase, stopped.status) == ("response", 200)
    row = wait_for(lambda: [r for r in stored(proxy) if r["intercepted"]])[0]
    assert row["status"] == 200
    f = bp.flow(stopped.flow_id)
    with pytest.raises(TypeError):  # the request has gone already
        bp.execute(stopped.flow_id, f.request)
    text = response_text(f.response)
    assert text.startswith("HTTP/1.1 200")
    with pytest.raises(EditError, match="HTTP/VERSION STATUS REASON"):
        edited_response(f.response, "418 teapot\n\nx")
    head = text.partition("\n\n")[0].split("\n", 1)[1]
    text = "HTTP/1.1 418 I'm a teapot\n" + head + '\n\n{"edited": true}'
    bp.execute(stopped.flow_id, edited_response(f.response, text))
    response = out.result(30)
    assert response.startswith("HTTP/1.1 418 I'm a teapot") and response.endswith('{"edited": true}')
    [row] = wait_for(lambda: [r for r in stored(proxy) if r["status"] == 418 and not r["intercepted"]])
    assert row["modified"] == "breakpoint: response edited (status, headers, body)"  # content-length followed
    flow = Store(proxy.store_path, readonly=True).load_flow(row["seq"])
    assert flow is not None and flow.response.content == b'{"edited": true}'  # what was actually sent


def test_abort_answers_503_and_the_origin_sees_nothing(proxy: Proxy, origin: OriginServer, pool: Any) -> None:
    bp = proxy.session.breakpoints
    bp.add("~u /echo")
    path = f"/echo?abort={uuid.uuid4().hex}"
    out = pool.submit(proxy.curl, origin.url + path)
    bp.abort(stopped_one(bp).flow_id)
    response = out.result(30)
    assert response.startswith("HTTP/1.1 503") and response.endswith(ABORT_BODY.decode())
    [row] = wait_for(lambda: [r for r in stored(proxy) if r["status"] == 503])
    assert row["modified"] == "breakpoint: aborted before the request (503 to the client)"
    assert f"GET {path}" not in SEEN
    with pytest.raises(KeyError, match="not stopped"):
        bp.resume(row["id"])


def test_a_stopped_flow_holds_up_no_other_client(proxy: Proxy, origin: OriginServer, pool: Any) -> None:
    """A breakpoint for one device stops that device's flow only; the other's requests, and the stopped device's
    other connections, go through meanwhile."""
    bp = proxy.session.breakpoints
    bp.add("~u /json", client="127.0.0.2")
    with proxy.client("127.0.0.2") as stopped_client, proxy.client("127.0.0.3") as other:
        held = pool.submit(stopped_client.get, f"{origin.url}/json")
        stopped = stopped_one(bp)
        assert stopped.client_ip == "127.0.0.2"
        for _ in range(3):
            assert other.get(f"{origin.url}/json").json() == JSON_DOC
        assert "HTTP/1.1 200" in proxy.curl(f"{origin.url}/echo", source_ip="127.0.0.2")
        assert not held.done() and len(bp.stopped()) == 1
        bp.resume(stopped.flow_id)
        assert held.result(30).json() == JSON_DOC
    rows = proxy.wait_flows(5)
    assert all(r["modified"] is None and not r["intercepted"] for r in rows)


def test_once_disarms_and_resume_all(proxy: Proxy, origin: OriginServer, pool: Any) -> None:
    bp = proxy.session.breakpoints
    once = bp.add("~u /json", once=True)
    keep = bp.add("~u /html")
    assert bp.breakpoints() == (once, keep)
    with proxy.client() as c:
        first = pool.submit(c.get, f"{origin.url}/json")
        stopped_one(bp)
        assert bp.breakpoints() == (keep,)
        page = pool.submit(c.get, f"{origin.url}/html")
        wait_for(lambda: len(bp.stopped()) == 2)
        assert bp.resume_all() == 2
        assert first.result(30).json() == JSON_DOC and page.result(30).status_code == 200
        assert c.get(f"{origin.url}/json").json() == JSON_DOC  # disarmed: not stopped
    bp.remove(keep.id)
    assert bp.breakpoints() == ()
    with pytest.raises(KeyError):
        bp.remove(keep.id)
    with pytest.raises(ValueError, match="bad filter expression"):
        bp.add("~u (")
    with pytest.raises(ValueError, match="not an IP address"):
        bp.add("~u x", client="10.0.0")


def test_replays_are_not_stopped_unless_asked(proxy: Proxy, origin: OriginServer, pool: Any) -> None:
    engine = proxy.session.engine
    bp = proxy.session.breakpoints
    with proxy.client() as c:
        c.get(f"{origin.url}/json")
    [row] = proxy.wait_flows(1)
    original = Store(proxy.store_path, readonly=True).load_flow(row["seq"])
    assert original is not None
    bp.add("~u /json")
    assert engine.replay(original.copy()) is None
    rows = proxy.wait_flows(2)
    assert rows[-1]["status"] == 200 and bp.stopped() == ()
    bp.add("~u /json", replays=True)
    assert engine.replay(original.copy()) is None
    stopped = stopped_one(bp)
    bp.resume(stopped.flow_id)
    assert proxy.wait_flows(3)[-1]["status"] == 200


def test_a_client_that_leaves_ends_its_stopped_flow(proxy: Proxy, origin: OriginServer) -> None:
    bp = proxy.session.breakpoints
    bp.add("~u /json", request=False, response=True)
    with socket.create_connection(("127.0.0.1", proxy.port)) as s:
        s.sendall(f"GET {origin.url}/json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        stopped = stopped_one(bp)
    wait_for(lambda: not bp.stopped())
    [row] = wait_for(lambda: [r for r in stored(proxy) if r["error"]])
    assert row["id"] == stopped.flow_id and not row["intercepted"]
    assert row["error"] == "client disconnected while the flow was stopped at a breakpoint"
    with pytest.raises(KeyError):
        bp.resume(stopped.flow_id)


def test_breakpoints_from_the_command_line(proxy_with: Callable[..., Proxy], origin: OriginServer, pool: Any) -> None:
    proxy = proxy_with(breaks=["~u /json"], break_responses=["~u /html"])
    bp = proxy.session.breakpoints
    assert [(b.filter, b.request, b.response) for b in bp.breakpoints()] == [
        ("~u /json", True, False),
        ("~u /html", False, True),
    ]
    answers: list[Future] = [pool.submit(proxy.curl, f"{origin.url}/{p}") for p in ("json", "html")]
    wait_for(lambda: {s.phase for s in bp.stopped()} == {"request", "response"})
    bp.resume_all()
    assert all(a.result(30).startswith("HTTP/1.1 200") for a in answers)


async def test_http2_a_stopped_stream_holds_up_no_other_on_its_connection(
    proxy: Proxy, tls_origin: OriginServer
) -> None:
    """One HTTP/2 connection, two streams: the one stopped at a breakpoint, the other answered meanwhile. (An async
    client: httpx's sync one lets one thread's read starve another's on a shared HTTP/2 connection.)"""
    bp = proxy.session.breakpoints
    bp.add("~u /echo", request=False, response=True)
    async with httpx.AsyncClient(proxy=proxy.url, verify=proxy.ssl_context(), http2=True, timeout=30) as c:
        await c.get(f"{tls_origin.url}/json")  # one connection, then multiplexed
        held = asyncio.ensure_future(c.get(f"{tls_origin.url}/echo"))
        stopped = await asyncio.to_thread(stopped_one, bp)
        r = await c.get(f"{tls_origin.url}/json")
        assert r.http_version == "HTTP/2" and r.json() == JSON_DOC and not held.done()
        await asyncio.to_thread(bp.abort, stopped.flow_id)
        assert (await held).status_code == 503
    rows = await asyncio.to_thread(proxy.wait_flows, 3)
    assert {r["http_version"] for r in rows} == {"HTTP/2.0"}

"""Comparing two flows (the TUI renders it) and composing a request from scratch, on flows a real proxy recorded."""

from __future__ import annotations

import json

import pytest
from conftest import Proxy
from origins import OriginServer

from proxycap.control.editing import EditError, edited
from proxycap.exchange.composer import composed_flow, composer_template
from proxycap.query.compare import compare, json_path
from proxycap.storage.store import Store


def _flows(proxy: Proxy, n: int) -> list:
    rows = proxy.wait_flows(n)
    store = Store(proxy.store_path, readonly=True)
    try:
        return [store.load_flow(r["seq"]) for r in rows]
    finally:
        store.close()


def test_compare_a_request_with_its_variant(proxy: Proxy, origin: OriginServer) -> None:
    with proxy.client() as c:
        c.post(f"{origin.url}/echo", json={"user": "me", "items": [1, 2, 3], "keep": True}, headers={"x-a": "1"})
        c.post(f"{origin.url}/echo?v=2", json={"items": [1, 2, 4], "user": "you", "keep": True, "new": 0},
               headers={"x-b": "2"})  # fmt: skip
    a, b = _flows(proxy, 2)
    result = compare(a, b)
    assert result.request_line == (f"POST {origin.url}/echo HTTP/1.1", f"POST {origin.url}/echo?v=2 HTTP/1.1")
    assert result.status[0].startswith("200") and result.status[0] == result.status[1]
    by_name = {h.name.lower(): h for h in result.request_headers}
    assert (by_name["x-a"].old, by_name["x-a"].new) == ("1", None)
    assert (by_name["x-b"].old, by_name["x-b"].new) == (None, "2")
    assert "content-length" in by_name and "host" not in by_name
    body = result.request_body
    assert body.kind == "json"
    assert [(c.path, c.new) for c in body.added] == [("new", 0)]
    assert [(c.path, c.old, c.new) for c in body.changed] == [("items[2]", 3, 4), ("user", "me", "you")]
    assert not body.removed and body.unified[:2] == ("--- A", "+++ B")
    echoed = result.response_body  # the echo holds the bodies as strings: compared as JSON documents
    assert echoed.kind == "json" and any(c.path == "query" for c in echoed.changed)
    assert not compare(a, a).request_headers and compare(a, a).identical


def test_compare_text_binary_and_missing_bodies(proxy: Proxy, origin: OriginServer) -> None:
    with proxy.client() as c:
        c.get(f"{origin.url}/html")
        c.get(f"{origin.url}/xml")
        c.get(f"{origin.url}/image.png")
        c.get(f"{origin.url}/bytes/100")
    html, xml, png, data = _flows(proxy, 4)
    text = compare(html, xml).response_body
    assert text.kind == "text" and any(line.startswith("+<?xml") for line in text.unified)
    assert compare(png, data).response_body.kind == "binary"
    assert "bytes" in compare(png, data).response_body.note
    assert compare(html, html).response_body.kind == "same"
    no_response = html.copy()
    no_response.response = None
    assert compare(html, no_response).response_body.kind == "missing"
    assert compare(html, no_response).status[1] == "no response yet"


def test_json_paths() -> None:
    assert json_path(["items", 2, "name"]) == "items[2].name"
    assert json_path(["we ird", 0]) == '["we ird"][0]'
    assert json_path([]) == "(root)"


def test_composer_template_builds_a_request_that_reaches_the_origin(proxy: Proxy, origin: OriginServer) -> None:
    text = composer_template(f"{origin.url}/echo").replace("GET ", "POST ", 1) + '{"from": "scratch"}'
    request = edited(None, text)
    assert request.headers["host"] == f"127.0.0.1:{origin.port}"
    flow = composed_flow(request)
    assert proxy.session.engine.replay(flow) is None
    [row] = proxy.wait_flows(1)
    assert row["status"] == 200 and row["method"] == "POST"
    echo = json.loads(_flows(proxy, 1)[0].response.content)
    assert echo["body"] == '{"from": "scratch"}' and echo["headers"]["user-agent"].startswith("proxycap/")
    with pytest.raises(EditError):
        edited(None, "not a request")

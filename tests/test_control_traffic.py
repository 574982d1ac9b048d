"""The control API's breakpoints, rules and throttling, as a UI calls them: plain data in and out, against a real proxy,
origin and clients; and the events that tell a UI what stopped."""

from __future__ import annotations

import json
import time
import tomllib
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from conftest import Proxy
from origins import JSON_DOC, SEEN, OriginServer
from test_breakpoints import wait_for

from proxycap.capture.bus import BreakpointsChanged
from proxycap.control.api import FEED_KINDS, Outcome
from proxycap.control.local import LocalControl

Start = Callable[..., Proxy]


def plain(value: Any) -> Any:
    """What crosses the API must survive a trip through JSON unchanged (it will, over a socket)."""
    assert json.loads(json.dumps(value)) == value
    return value


def control(proxy: Proxy) -> LocalControl:
    assert proxy.session.control is not None
    return proxy.session.control


@pytest.fixture
def pool() -> Any:
    with ThreadPoolExecutor(4) as pool:
        yield pool


def test_breakpoints_stop_edit_and_send_on_flows(proxy: Proxy, origin: OriginServer, pool: Any) -> None:
    api = control(proxy)
    feed = api.subscribe("test", 1000)
    assert BreakpointsChanged in FEED_KINDS

    bad = api.add_breakpoint("~u (")
    assert not bad.ok and "bad filter expression" in bad.message and api.breakpoints() == []
    assert not api.add_breakpoint("~u x", client="10.0.0").ok
    added = api.add_breakpoint("~u /echo", client="127.0.0.2")
    assert added.ok and added.id is not None and "stops requests from 127.0.0.2 matching ~u /echo" in added.message
    assert plain(api.breakpoints()) == [
        {
            "id": added.id,
            "filter": "~u /echo",
            "request": True,
            "response": False,
            "client": "127.0.0.2",
            "once": False,
            "replays": False,
        }
    ]

    with proxy.client("127.0.0.2") as c:
        answer = pool.submit(c.post, f"{origin.url}/echo?v=1", content=b"body", headers={"X-Test": "original"})
        [stopped] = wait_for(api.stopped)
        assert plain(stopped)["phase"] == "request" and stopped["method"] == "POST"
        assert (stopped["url"], stopped["client_ip"], stopped["breakpoint"]) == (
            f"{origin.url}/echo?v=1",
            "127.0.0.2",
            added.id,
        )
        # The UI hears it at once, from the capture, with what it needs to list it.
        events = wait_for(lambda: [e for e in feed.drain() if isinstance(e, BreakpointsChanged)])
        assert plain(events[-1].stopped) == [stopped]

        info = plain(api.stopped_text(stopped["flow_id"]))
        assert info["phase"] == "request" and info["reason"] is None
        text = info["text"]
        assert text.startswith(f"POST {origin.url}/echo?v=1 HTTP/1.1\n") and text.endswith("\n\nbody")

        unreadable = api.execute(stopped["flow_id"], "not a request")
        assert not unreadable.ok and "METHOD URL HTTP/VERSION" in unreadable.message
        assert api.stopped() == [stopped] and not answer.done()  # nothing changed: still stopped

        done = api.execute(stopped["flow_id"], text.replace("original", "edited"))
        assert done == Outcome(True, f"POST {origin.url}/echo?v=1: sent on as edited")
        echo = answer.result(30).json()
    assert echo["headers"]["x-test"] == "edited" and echo["body"] == "body"
    assert api.stopped() == []
    again = api.resume(stopped["flow_id"])
    assert not again.ok and "not stopped any more" in again.message
    assert api.stopped_text(stopped["flow_id"])["phase"] is None
    events = wait_for(lambda: [e for e in feed.drain() if isinstance(e, BreakpointsChanged)])
    assert events[-1].stopped == []

    # Continue, Abort (503, the origin sees nothing), resume all.
    path = f"/echo?abort={uuid.uuid4().hex}"
    aborted = pool.submit(proxy.curl, origin.url + path, source_ip="127.0.0.2")
    continued = pool.submit(proxy.curl, f"{origin.url}/echo?continued", source_ip="127.0.0.2")
    first, second = sorted(wait_for(lambda: len(api.stopped()) == 2 and api.stopped()), key=lambda s: s["url"])
    outcome = api.abort(first["flow_id"])
    assert outcome.ok and outcome.message.endswith(
        "aborted, the client got 503 Service Unavailable; the server never saw the request"
    )
    assert aborted.result(30).startswith("HTTP/1.1 503") and f"GET {path}" not in SEEN
    assert api.resume(second["flow_id"]).ok and continued.result(30).startswith("HTTP/1.1 200")
    held = [pool.submit(proxy.curl, f"{origin.url}/echo?all={n}", source_ip="127.0.0.2") for n in range(2)]
    wait_for(lambda: len(api.stopped()) == 2)
    assert api.resume_all() == Outcome(True, "sent on 2 stopped flows unchanged")
    assert all(h.result(30).startswith("HTTP/1.1 200") for h in held)
    assert api.resume_all() == Outcome(True, "no flow was stopped")

    assert api.remove_breakpoint(added.id).ok and api.breakpoints() == []
    assert not api.remove_breakpoint(added.id).ok
    feed.close()


def test_a_stopped_response_is_edited_as_text(proxy: Proxy, origin: OriginServer, pool: Any) -> None:
    api = control(proxy)
    assert api.add_breakpoint("~u /json", request=False, response=True, once=True).ok
    out = pool.submit(proxy.curl, f"{origin.url}/json")
    [stopped] = wait_for(api.stopped)
    assert api.breakpoints() == []  # once: disarmed as it stopped the flow
    assert (stopped["phase"], stopped["status"]) == ("response", 200)
    text = api.stopped_text(stopped["flow_id"])["text"]
    assert text.startswith("HTTP/1.1 200")
    head, _, _ = text.partition("\n\n")
    outcome = api.execute(stopped["flow_id"], head.replace("HTTP/1.1 200", "HTTP/1.1 418 I'm a teapot") + "\n\nedited")
    assert outcome.ok
    answer = out.result(30)
    assert answer.startswith("HTTP/1.1 418 I'm a teapot") and answer.endswith("\n\nedited")


def test_rules_are_listed_changed_and_saved_as_dicts(proxy_with: Start, origin: OriginServer, tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text('[[rule]]\naction = "block"\nfilter = "~u /blocked"\nstatus = 403\n\n[[rule]]\naction = "nope"\n')
    proxy = proxy_with(rules=str(path))
    api = control(proxy)
    listed = plain(api.rules())
    assert (listed["path"], listed["problem"]) == (str(path), None)
    block, broken = listed["rules"]
    assert block == {
        "id": block["id"],
        "rule": {"action": "block", "filter": "~u /blocked", "status": 403},
        "label": "block ~u /blocked",
        "enabled": True,
        "hits": 0,
        "error": None,
    }
    assert broken["rule"] == {"action": "nope"} and "action must be one of" in broken["error"]

    bad = api.add_rule({"action": "respond", "status": 999})
    assert not bad.ok and "status must be an HTTP status" in bad.message
    respond = {"action": "respond", "filter": "~u /mocked", "status": 201, "body": "from a rule"}
    added = api.add_rule(respond)
    assert added.ok and added.id is not None
    assert proxy.curl(f"{origin.url}/mocked").startswith("HTTP/1.1 201")
    assert api.rules()["rules"][2]["hits"] == 1
    assert api.move_rule(added.id, 0).ok
    assert proxy.curl(f"{origin.url}/blocked").startswith("HTTP/1.1 403")
    assert api.set_rule_enabled(block["id"], False).ok
    assert proxy.curl(f"{origin.url}/blocked").startswith("HTTP/1.1 404")  # the origin answers
    assert not api.set_rule_enabled(broken["id"], True).ok  # broken: edit it first
    assert api.edit_rule(broken["id"], {"action": "block", "filter": "~u /gone", "status": 410}).ok
    assert api.remove_rule(block["id"]).ok
    assert not api.remove_rule(block["id"]).ok
    rules = [info["rule"] for info in api.rules()["rules"]]
    assert rules == [respond, {"action": "block", "filter": "~u /gone", "status": 410}]
    assert tomllib.loads(path.read_text())["rule"] == rules  # saved as listed, in order

    path.write_text("not [toml")
    reloaded = api.reload_rules()
    assert not reloaded.ok and "is not valid TOML" in reloaded.message
    assert "is not valid TOML" in api.rules()["problem"] and api.rules()["rules"] == []
    refused = api.add_rule(respond)
    assert not refused.ok and "fix the file (nothing was changed)" in refused.message
    assert path.read_text() == "not [toml"  # never written over


def test_mock_this_answers_with_the_stored_response(proxy_with: Start, origin: OriginServer, tmp_path: Path) -> None:
    proxy = proxy_with(rules=str(tmp_path / "rules.toml"))
    api = control(proxy)
    url = f"{origin.url}/echo?mock={uuid.uuid4().hex}"
    first = proxy.curl(url)
    [row] = proxy.wait_flows(1)
    mocked = api.mock(row["seq"])
    assert mocked.ok and mocked.id is not None and f"is answered as #{row['seq']} was" in mocked.message
    [info] = api.rules()["rules"]
    assert info["id"] == mocked.id and info["rule"]["action"] == "respond" and info["rule"]["status"] == 200
    assert proxy.curl(url, "-H", "X-Other: 1").split("\n\n", 1)[1] == first.split("\n\n", 1)[1]
    assert sum(1 for s in SEEN if url.endswith(s.split(" ", 1)[1])) == 1  # the origin saw the first one only
    assert not api.mock(999).ok


def test_without_a_rules_file_changes_say_so(proxy: Proxy) -> None:
    api = control(proxy)
    assert api.rules() == {"path": None, "problem": None, "rules": []}
    outcome = api.add_rule({"action": "block", "status": 403})
    assert not outcome.ok and "no rules file" in outcome.message


def test_throttle_profiles_from_text(proxy: Proxy, origin: OriginServer) -> None:
    api = control(proxy)
    assert api.throttle() is None
    for text, shown in (
        ("100", "100 KB/s down, 100 KB/s up"),
        ("100/50", "100 KB/s down, 50 KB/s up"),
        ("3G", "3G"),
        ("slow 3G", "slow 3G"),
    ):
        assert api.set_throttle(text) == Outcome(True, f"throttling all traffic: {shown}")
        assert api.throttle() == shown
    bad = api.set_throttle("fast")
    assert not bad.ok and "not a throttle profile" in bad.message and api.throttle() == "slow 3G"
    assert api.set_throttle("off") == Outcome(True, "throttling off") and api.throttle() is None
    assert api.set_throttle("", latency=300).ok and api.throttle() == "+300 ms"
    with proxy.client() as c:
        start = time.monotonic()
        assert c.get(f"{origin.url}/json").json() == JSON_DOC
        assert time.monotonic() - start >= 0.3
    assert not api.set_throttle("100", latency=-1).ok
    assert api.set_throttle("off").ok

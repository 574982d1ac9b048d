"""Rules from a real rules file, applied by the running engine to what curl and httpx receive."""

from __future__ import annotations

import json
import re
import stat
import subprocess
import sys
import tomllib
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Proxy
from origins import JSON_DOC, SEEN, OriginServer, pattern_bytes

from proxycap.addons.rules import Rules
from proxycap.cli import parser
from proxycap.cli.common import engine_config
from proxycap.rules import model
from proxycap.rules.model import Rule, RuleError
from proxycap.storage.store import Store

Start = Callable[..., Proxy]


def with_rules(proxy_with: Start, path: Path, text: str) -> tuple[Proxy, Rules]:
    path.write_text(text)
    proxy = proxy_with(rules=str(path))
    return proxy, proxy.session.rules


def body(response: str) -> str:
    return response.split("\n\n", 1)[1]


def test_map_local_file_and_folder_with_fall_through(proxy_with: Start, origin: OriginServer, tmp_path: Path) -> None:
    (tmp_path / "app.js").write_text("console.log('local')\n")
    site = tmp_path / "site"
    (site / "css").mkdir(parents=True)
    (site / "css" / "main.css").write_text("body {}\n")
    port = origin.port
    proxy, rules = with_rules(
        proxy_with,
        tmp_path / "rules.toml",
        f"""
[[rule]]
name = "app"
action = "map_local"
url = ':{port}/static/app\\.js$'
path = "app.js"

[[rule]]
action = "map_local"
filter = "~d 127.0.0.1"
url = ':{port}/'
path = "{site}"
""",
    )
    js = proxy.curl(f"{origin.url}/static/app.js")
    assert js.startswith("HTTP/1.1 200") and "javascript" in js.lower().split("content-type: ")[1]
    assert body(js) == "console.log('local')\n"
    assert body(proxy.curl(f"{origin.url}/css/main.css")) == "body {}\n"
    assert json.loads(body(proxy.curl(f"{origin.url}/json"))) == JSON_DOC  # no such file: the server answers
    rows = proxy.wait_flows(3)
    assert [r["modified"] for r in rows] == [
        f"rule 'app': answered from {tmp_path / 'app.js'}",
        f"rule 'map_local ~d 127.0.0.1': answered from {site / 'css' / 'main.css'}",
        None,
    ]
    assert [i.hits for i in rules.rules()] == [1, 1]


def test_map_remote_headers_and_body(
    proxy_with: Start, origin: OriginServer, tls_origin: OriginServer, tmp_path: Path
) -> None:
    proxy, _ = with_rules(
        proxy_with,
        tmp_path / "rules.toml",
        f"""
[[rule]]
action = "map_remote"
url = '^http://127\\.0\\.0\\.1:{origin.port}/elsewhere$'
to = "{tls_origin.url}/echo"

[[rule]]
action = "modify_headers"
header = "X-Added"
value = "by a rule"

[[rule]]
action = "modify_headers"
message = "response"
filter = "~u /json"
header = "server"

[[rule]]
action = "modify_headers"
message = "response"
header = "X-Proxycap"
value = "yes"

[[rule]]
action = "modify_body"
message = "response"
filter = "~u /json"
regex = '"world"'
replacement = '"rewritten"'

[[rule]]
action = "modify_body"
regex = 'secret=[0-9]+'
replacement = "secret=hidden"
""",
    )
    echo = json.loads(body(proxy.curl(f"{origin.url}/elsewhere")))
    assert (echo["scheme"], echo["path"], echo["headers"]["x-added"]) == ("https", "/echo", "by a rule")
    out = proxy.curl(f"{origin.url}/json")
    assert "x-proxycap: yes" in out.lower() and "server:" not in out.lower()
    assert json.loads(body(out))["hello"] == "rewritten"
    echo = json.loads(body(proxy.curl(f"{origin.url}/echo", "--data", "secret=1234")))
    assert echo["body"] == "secret=hidden"
    rows = proxy.wait_flows(3)
    assert rows[0]["host"] == "localhost" and "sent to https://localhost" in rows[0]["modified"]
    assert "response body replaced" in rows[1]["modified"] and "response header server removed" in rows[1]["modified"]
    assert "request body replaced" in rows[2]["modified"]
    stored = Store(proxy.store_path, readonly=True).load_flow(rows[2]["seq"])
    assert stored is not None and stored.request.content == b"secret=hidden"  # what was actually sent


def test_block_with_a_status_or_by_closing(proxy_with: Start, origin: OriginServer, tmp_path: Path) -> None:
    proxy, _ = with_rules(
        proxy_with,
        tmp_path / "rules.toml",
        """
[[rule]]
action = "block"
filter = "~u /blocked"
status = 403

[[rule]]
action = "block"
filter = "~u /dropped"
status = 444
""",
    )
    blocked, dropped = f"/blocked/{uuid.uuid4().hex}", f"/dropped/{uuid.uuid4().hex}"
    assert proxy.curl(origin.url + blocked).startswith("HTTP/1.1 403")
    curl = ["curl", "-sS", "-x", proxy.url, origin.url + dropped]
    out = subprocess.run(curl, capture_output=True, text=True, timeout=30)
    assert out.returncode == 52 and "Empty reply from server" in out.stderr
    assert not [s for s in SEEN if blocked in s or dropped in s]


def test_respond_inline_and_from_a_file_for_one_client(proxy_with: Start, origin: OriginServer, tmp_path: Path) -> None:
    (tmp_path / "answer.json").write_text('{"from": "file"}')
    proxy, rules = with_rules(
        proxy_with,
        tmp_path / "rules.toml",
        """
[[rule]]
action = "respond"
filter = "~u /json"
client = "127.0.0.2"
status = 201
headers = { content-type = "application/json", x-mock = "1" }
body = '{"mocked": true}'

[[rule]]
action = "respond"
filter = "~u /from-file"
status = 200
body_file = "answer.json"
""",
    )
    mocked = proxy.curl(f"{origin.url}/json", source_ip="127.0.0.2")
    assert mocked.startswith("HTTP/1.1 201") and "x-mock: 1" in mocked and body(mocked) == '{"mocked": true}'
    assert json.loads(body(proxy.curl(f"{origin.url}/json", source_ip="127.0.0.3"))) == JSON_DOC  # other client
    assert body(proxy.curl(f"{origin.url}/from-file")) == '{"from": "file"}'
    assert [i.hits for i in rules.rules()] == [1, 1]


def test_mock_from_a_stored_flow(proxy_with: Start, origin: OriginServer, tmp_path: Path) -> None:
    proxy, rules = with_rules(proxy_with, tmp_path / "rules.toml", "")
    with proxy.client() as c:
        c.get(f"{origin.url}/json?a=1")
        c.get(f"{origin.url}/bytes/10000")
    store = Store(proxy.store_path, readonly=True)
    small, big = (store.load_flow(r["seq"]) for r in proxy.wait_flows(2))
    assert small is not None and big is not None
    small_id, big_id = rules.mock(small), rules.mock(big)
    seen = len(SEEN)
    out = proxy.curl(f"{origin.url}/json?a=1")
    assert json.loads(body(out)) == JSON_DOC and "content-type: application/json" in out
    assert body(proxy.curl(f"{origin.url}/bytes/10000")) == pattern_bytes(10000).decode()
    assert len(SEEN) == seen  # both answered by the rules
    assert json.loads(body(proxy.curl(f"{origin.url}/json?a=2"))) == JSON_DOC  # another URL: the server answers
    saved = tomllib.loads((tmp_path / "rules.toml").read_text())["rule"]
    assert saved[0]["body"] == json.dumps(JSON_DOC) and "body" not in saved[1]
    big_file = tmp_path / saved[1]["body_file"]
    assert big_file.read_bytes() == pattern_bytes(10000) and stat.S_IMODE(big_file.stat().st_mode) == 0o600
    # Editable afterwards.
    [first, _] = rules.rules()
    assert first.id == small_id and first.rule is not None
    rules.edit(small_id, model.Rule(**{**model.to_table(first.rule), "status": 500}))
    assert proxy.curl(f"{origin.url}/json?a=1").startswith("HTTP/1.1 500")
    assert [i.hits for i in rules.rules()] == [2, 1] and big_id == rules.rules()[1].id


def test_the_rules_file_round_trips(proxy_with: Start, origin: OriginServer, tmp_path: Path) -> None:
    path = tmp_path / "config" / "rules.toml"
    path.parent.mkdir()
    proxy, rules = with_rules(
        proxy_with, path, '[[rule]]\naction = "block"\nfilter = "~u /a"\nstatus = 403\nname = "block a"\n'
    )
    [a] = rules.rules()
    b = rules.add(Rule("respond", filter="~u /b", status=202, body="b"))
    c = rules.add(Rule("modify_headers", header="X-C", value="c", throttle={"latency": 1}), index=0)
    rules.set_enabled(a.id, False)
    rules.move(b, 0)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert proxy.curl(f"{origin.url}/a").startswith("HTTP/1.1 404")  # disabled: the origin answers
    assert body(proxy.curl(f"{origin.url}/b")) == "b"
    with pytest.raises(RuleError, match="bad filter"):
        rules.add(Rule("respond", filter="~u (", status=200))
    with pytest.raises(RuleError, match="Invalid file path"):
        rules.add(Rule("map_local", url=".", path="no-such-file"))
    before = [(i.rule, i.table) for i in rules.rules()]
    rules.remove(c)
    rules.reload()
    after = [(i.rule, i.table) for i in rules.rules()]
    assert after == [before[0], before[2]]
    assert [r.name or r.action for r, _ in after] == ["respond", "block a"] and not after[1][0].enabled
    # A new run reads the same rules.
    again = Rules()
    again.path = path
    again.reload()
    assert [(i.rule, i.table) for i in again.rules()] == after


def test_a_broken_rule_is_reported_and_the_others_apply(
    proxy_with: Start, origin: OriginServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "rules.toml"
    broken = """
[[rule]]
name = "bad filter"
action = "respond"
filter = "~u ("
status = 200

[[rule]]
name = "no such file"
action = "map_local"
url = "."
path = "missing.html"

[[rule]]
action = "teleport"

[[rule]]
name = "good"
action = "respond"
filter = "~u /good"
status = 200
body = "good"
"""
    proxy, rules = with_rules(proxy_with, path, broken)
    errors = [(i.table.get("name"), i.error) for i in rules.rules()]
    assert errors[3] == ("good", None)
    assert errors[0][1] is not None and errors[0][1].startswith("bad filter '~u ('")
    assert errors[1][1] is not None and "Invalid file path: " in errors[1][1]
    assert errors[2][1] is not None and errors[2][1].startswith("action must be one of")
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(re.search(r"rule 1 \(bad filter\): bad filter", w) for w in warnings)
    assert body(proxy.curl(f"{origin.url}/good")) == "good"
    # Saving keeps the broken rules as they were written.
    rules.set_enabled(rules.rules()[3].id, False)
    saved = tomllib.loads(path.read_text())["rule"]
    assert saved[:3] == tomllib.loads(broken)["rule"][:3] and saved[3]["enabled"] is False


def test_a_broken_file_is_reported_and_never_overwritten(proxy_with: Start, tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    _, rules = with_rules(proxy_with, path, '[[rule]]\naction = "respond"\nstatus = 200\nbody = "unclosed\n')
    assert rules.rules() == () and "is not valid TOML" in (rules.problem() or "")
    with pytest.raises(RuleError, match="nothing was changed"):
        rules.add(Rule("respond", status=200))
    assert path.read_text().endswith('"unclosed\n')


def test_rule_fields_are_checked() -> None:
    bad = {
        "status must be a number": {"action": "block", "status": "403"},
        "'path' is not a field of respond rules": {"action": "respond", "status": 200, "path": "x"},
        "map_remote rules need 'to'": {"action": "map_remote", "url": "x"},
        "enabled must be true or false": {"action": "block", "status": 403, "enabled": 1},
        "headers must be a table of strings": {"action": "respond", "status": 200, "headers": {"a": 1}},
    }
    for message, table in bad.items():
        with pytest.raises(RuleError, match=re.escape(message)):
            model.from_table(table)
    with pytest.raises(RuleError, match="not a throttle profile"):
        model.check(model.from_table({"action": "throttle", "throttle": "5G"}))
    with pytest.raises(RuleError, match="client must be an IP address"):
        model.check(model.from_table({"action": "block", "status": 403, "client": "10.0.0"}))


def test_command_line_options(tmp_path: Path, confdir: Path) -> None:
    rules = str(tmp_path / "r.toml")
    argv = ["tui", "--break", "~u a", "--break-response", "~c 500"]
    argv += ["--rules", rules, "--throttle", "slow 3g", "--latency", "200"]
    config = engine_config(parser().parse_args(argv))
    assert (config.breaks, config.break_responses) == (["~u a"], ["~c 500"])
    assert (config.rules, config.throttle, config.latency) == (rules, "slow 3g", 200)
    assert engine_config(parser().parse_args(["record"])).rules.endswith("rules.toml")
    out = subprocess.run(
        [sys.executable, "-m", "proxycap", "record", "-p", "0", "--throttle", "fast"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 2 and out.stderr.startswith("proxycap: error: --throttle: not a throttle profile: 'fast'")
    files = ["--store", str(tmp_path / "s.db"), "--log-file", str(tmp_path / "log"), "--confdir", str(confdir)]
    tui = [sys.executable, "-m", "proxycap", "tui", "-p", "0", "--break", "~u (", *files]
    out = subprocess.run(tui, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert out.returncode == 2
    expected = "breakpoint: bad filter expression '~u (': Invalid filter expression: '~u ('"
    assert out.stderr == f"proxycap: error: {expected}\n"

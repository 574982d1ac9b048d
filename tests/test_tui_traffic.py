"""Changing traffic in flight from the TUI, driven with Textual's pilot against a real proxy, origin and clients:
breakpoints and the queue of stopped flows, the rules screen, "Mock this", throttling."""

from __future__ import annotations

import asyncio
import json
import tomllib
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from conftest import Proxy
from origins import SEEN, OriginServer
from test_tui_app import fetch, listed, until
from textual.pilot import Pilot
from textual.widgets import Input, TextArea

from proxycap.tui.app import ProxycapApp
from proxycap.tui.chrome.screens import ConfirmScreen
from proxycap.tui.traffic.breakpoints import BreakpointDialog, BreakpointsScreen, prefill
from proxycap.tui.traffic.rules import ActionChooser, RuleEditScreen, RulesScreen, rule_text
from proxycap.tui.traffic.stopped import StoppedEditScreen, StoppedScreen
from proxycap.tui.traffic.table import KeyedTable
from proxycap.tui.traffic.throttle import ThrottleDialog

pytestmark = pytest.mark.timeout(90)
Start = Callable[..., Proxy]
SIZE = (140, 40)
TAG = 'name = "tag"\naction = "modify_headers"\nmessage = "response"\nfilter = "~u /json"\nheader = "x-tag"\n'


@pytest.fixture
def pool() -> Any:
    with ThreadPoolExecutor(4) as pool:
        yield pool


def status(app: ProxycapApp) -> str:
    return str(app.status_bar.content)


def line(app: ProxycapApp, index: int) -> str:
    """The flow list's line for the view's row ``index``, as drawn."""
    return app.flows.render_line(1 + index - app.flows.scroll_offset.y).text


def echo(future: Future[str]) -> dict[str, Any]:
    """What the origin's /echo received, from curl's output."""
    return json.loads(future.result(30).split("\n\n", 1)[1])


async def stopped(pilot: Pilot, app: ProxycapApp, n: int) -> None:
    await until(pilot, lambda: len(app.traffic.stopped) == n, what=f"{n} stopped")


def test_the_prefilled_expression_is_the_flows_host_and_path() -> None:
    assert prefill({"host": "api.example.com", "path": "/v1/users?id=1"}) == r"~d api\.example\.com & ~u /v1/users"
    assert prefill({"host": "example.com", "path": "/"}) == r"~d example\.com"
    assert prefill({"host": "h", "path": "/a (b)/c"}) == r'~d h & ~u "/a \\(b\\)/c"'


async def test_the_breakpoint_queue(proxy: Proxy, origin: OriginServer, pool: Any) -> None:
    """A breakpoint set on a flow stops the next request: ⏸ in the list, counted in the status bar; opened in the
    editor, Execute sends it edited; a flow stopping meanwhile does not take the keyboard; Continue; Abort gives the
    client the 503; quitting with a stopped flow asks, then sends it on."""
    app = ProxycapApp(proxy.store_path, proxy.session.control)
    async with app.run_test(size=SIZE) as pilot:
        with proxy.client() as c:
            await fetch(c, f"{origin.url}/echo?first")
        await until(pilot, lambda: len(app.view) == 1)
        await pilot.press("i")
        await until(pilot, lambda: isinstance(app.screen, BreakpointDialog), what="the breakpoint dialog")
        field = app.screen.query_one("#bp-filter", Input)
        assert field.value == r"~d 127\.0\.0\.1 & ~u /echo"
        field.value = "~u /echo & ~m POST"
        await pilot.press("enter")
        await until(pilot, lambda: len(app.traffic.breakpoints) == 1, what="the breakpoint")
        [bp] = proxy.session.breakpoints.breakpoints()
        assert (bp.filter, bp.request, bp.response, bp.client) == ("~u /echo & ~m POST", True, False, None)
        assert "1 breakpoint (I)" in status(app)

        first = pool.submit(proxy.curl, f"{origin.url}/echo?n=1", "-H", "X-Test: original", "--data", "one")
        await stopped(pilot, app, 1)
        assert "⏸ 1 stopped (w)" in status(app)
        await until(pilot, lambda: len(app.view) == 2 and listed(app)[1]["intercepted"], what="the row stopped")
        await pilot.press("G")
        await until(pilot, lambda: "⏸" in line(app, 1), what="⏸ in the list")

        await pilot.press("e")  # a stopped flow: edited where it stopped
        await until(pilot, lambda: isinstance(app.screen, StoppedEditScreen), what="the editor")
        editor = app.screen
        area = editor.query_one(TextArea)
        assert area.has_focus and area.text.startswith(f"POST {origin.url}/echo?n=1 HTTP/1.1\n")
        area.load_text(area.text.replace("original", "edited"))

        # Another flow stops meanwhile: counted and listed, the editor keeps the keyboard.
        second = pool.submit(proxy.curl, f"{origin.url}/echo?n=2", "--data", "two")
        await stopped(pilot, app, 2)
        assert "⏸ 2 stopped (w)" in status(app)
        area.move_cursor(area.document.end)
        await pilot.press(*" typed")
        assert app.screen is editor and area.has_focus and area.text.endswith("one typed")

        area.load_text("nonsense")
        await pilot.press("ctrl+s")  # not a request: stays, saying why, the flow still stopped
        await until(pilot, lambda: "METHOD URL HTTP/VERSION" in str(editor.query_one("#call-error").render()))
        assert app.screen is editor and not first.done()
        area.load_text(
            f"POST {origin.url}/echo?n=1 HTTP/1.1\nHost: {origin.url[7:]}\nX-Test: edited\n"
            "Content-Type: application/x-www-form-urlencoded\n\none"
        )
        await pilot.press("ctrl+s")  # Execute
        await until(pilot, lambda: app.screen is not editor, what="the editor closed")
        received = echo(first)
        assert received["headers"]["x-test"] == "edited" and received["body"] == "one"
        await stopped(pilot, app, 1)

        await pilot.press("w")  # the queue: the second flow, oldest first
        await until(pilot, lambda: isinstance(app.screen, StoppedScreen), what="the queue")
        table = app.screen.query_one(KeyedTable)
        assert table.row_count == 1 and app.traffic.stopped[0]["url"] == f"{origin.url}/echo?n=2"
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, StoppedEditScreen), what="its editor")
        await pilot.press("ctrl+g")  # Continue: unchanged
        assert echo(second)["body"] == "two"
        await stopped(pilot, app, 0)
        await until(pilot, lambda: table.row_count == 0, what="the queue emptied")
        await pilot.press("escape")

        path = f"/echo?abort={uuid.uuid4().hex}"
        aborted = pool.submit(proxy.curl, origin.url + path, "--data", "x")
        await stopped(pilot, app, 1)
        await until(pilot, lambda: len(app.view) == 4 and listed(app)[3]["intercepted"], what="the row stopped")
        await pilot.press("G", "X")  # Abort from the list
        assert aborted.result(30).startswith("HTTP/1.1 503 Service Unavailable")
        assert f"POST {path}" not in SEEN
        await stopped(pilot, app, 0)

        # Quitting with a stopped flow asks first, then sends it on.
        last = pool.submit(proxy.curl, f"{origin.url}/echo?last", "--data", "last")
        await stopped(pilot, app, 1)
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the question")
        await pilot.press("n")  # no: stays, still stopped
        await pilot.pause(0.2)
        assert app.is_running and not last.done()
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the question again")
        await pilot.press("y")
        await until(pilot, lambda: not app.is_running, what="the app quit")
    assert echo(last)["body"] == "last"
    assert proxy.session.breakpoints.breakpoints() == ()  # none stops anything while the proxy stops


async def test_the_breakpoints_screen_adds_and_removes(proxy: Proxy, origin: OriginServer) -> None:
    app = ProxycapApp(proxy.store_path, proxy.session.control)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("I")
        await until(pilot, lambda: isinstance(app.screen, BreakpointsScreen))
        screen = app.screen
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, BreakpointDialog))
        await pilot.press(*"~u (")
        await pilot.press("enter")  # a bad expression: the dialog says why
        await until(pilot, lambda: "bad filter expression" in str(app.screen.query_one("#call-error").render()))
        app.screen.query_one("#bp-filter", Input).value = "~u /json"
        app.screen.query_one("#bp-client", Input).value = "127.0.0.2"
        await pilot.click("#response")
        await pilot.click("#bp-once")
        await pilot.click("#add")
        await until(pilot, lambda: app.screen is screen and screen.query_one(KeyedTable).row_count == 1)
        [bp] = proxy.session.breakpoints.breakpoints()
        assert (bp.filter, bp.request, bp.response, bp.client, bp.once) == ("~u /json", False, True, "127.0.0.2", True)
        assert screen.query_one(KeyedTable).get_row_at(0)[1:] == ["response", "~u /json", "127.0.0.2", "once"]
        await pilot.press("d")
        await until(pilot, lambda: screen.query_one(KeyedTable).row_count == 0, what="removed")
        assert proxy.session.breakpoints.breakpoints() == ()


async def test_the_rules_screen(proxy_with: Start, origin: OriginServer, tmp_path: Path) -> None:
    """Add a rule through the screen: it applies to a real request and its hit count shows; disable it, reorder,
    delete; the rules file round-trips (what the screen shows is what the file holds)."""
    path = tmp_path / "rules.toml"
    path.write_text('[[rule]]\nname = "first"\naction = "block"\nfilter = "~u /blocked"\nstatus = 403\n')
    proxy = proxy_with(rules=str(path))
    app = ProxycapApp(proxy.store_path, proxy.session.control)

    def file_rules() -> list[dict[str, Any]]:
        return tomllib.loads(path.read_text())["rule"]

    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("u")
        await until(pilot, lambda: isinstance(app.screen, RulesScreen), what="the rules screen")
        screen = app.screen
        table = screen.query_one(KeyedTable)
        await until(pilot, lambda: table.row_count == 1, what="the file's rule")

        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, ActionChooser))
        await pilot.press("down", "down", "enter")  # modify_headers
        await until(pilot, lambda: isinstance(app.screen, RuleEditScreen), what="the rule editor")
        area = app.screen.query_one(TextArea)
        assert 'action = "modify_headers"' in area.text
        area.load_text(TAG)
        await pilot.press("ctrl+s")  # no value: it removes the header
        await until(pilot, lambda: isinstance(app.screen, RulesScreen) and table.row_count == 2, what="the new rule")
        await pilot.press("enter")  # edit it: the new rule is selected
        await until(pilot, lambda: isinstance(app.screen, RuleEditScreen), what="the rule editor again")
        editor = app.screen
        editor.query_one(TextArea).load_text("action = [broken")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: "not TOML" in str(editor.query_one("#call-error").render()))
        editor.query_one(TextArea).load_text(TAG + 'value = "yes"\nstatus = 1\n')
        await pilot.press("ctrl+s")  # not a field of the action: the reason, nothing saved
        await until(pilot, lambda: "'status' is not a field" in str(editor.query_one("#call-error").render()))
        assert "yes" not in path.read_text()
        editor.query_one(TextArea).load_text(TAG + 'value = "yes"\n')
        await pilot.press("ctrl+s")
        await until(pilot, lambda: app.screen is screen, what="saved")
        assert file_rules()[1] == tomllib.loads(TAG + 'value = "yes"\n')

        assert "x-tag: yes" in proxy.curl(f"{origin.url}/json")
        await until(pilot, lambda: table.get_row_at(1)[6] == "1", what="the hit counted")
        await pilot.press("space")  # disable
        await until(pilot, lambda: file_rules()[1].get("enabled") is False, what="disabled in the file")
        await until(pilot, lambda: str(table.get_row_at(1)[1]) == "off")
        assert "x-tag" not in proxy.curl(f"{origin.url}/json")
        await pilot.press("space")  # and on again
        await until(pilot, lambda: "enabled" not in file_rules()[1])

        await pilot.press("K")  # up: applied first now
        await until(pilot, lambda: [r["name"] for r in file_rules()] == ["tag", "first"], what="moved up")
        await until(pilot, lambda: table.get_row_at(0)[3] == "tag" and table.cursor_row == 0)
        await pilot.press("J")
        await until(pilot, lambda: [r["name"] for r in file_rules()] == ["first", "tag"], what="moved down")

        # The screen shows what the file holds.
        shown = [info["rule"] for info in screen.data["rules"]]
        assert shown == file_rules()
        assert [tomllib.loads(rule_text(rule)) for rule in shown] == shown

        await until(pilot, lambda: table.cursor_row == 1)
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await until(pilot, lambda: table.row_count == 1, what="deleted")
        assert [r["name"] for r in file_rules()] == ["first"]
        assert "x-tag" not in proxy.curl(f"{origin.url}/json")

        path.write_text("broken [toml")  # edited by hand, badly
        await pilot.press("ctrl+r")
        problem = screen.query_one("#rules-problem")
        await until(pilot, lambda: "is not valid TOML" in str(problem.render()), what="the file's problem shown")
        await pilot.press("space")
        await pilot.pause(0.3)
        assert path.read_text() == "broken [toml"  # never written over


async def test_mock_this(proxy_with: Start, origin: OriginServer, tmp_path: Path) -> None:
    """M on a flow: a rule answering its method and URL with its stored response, opened for editing; curl then
    gets the stored response, and the origin is not asked."""
    proxy = proxy_with(rules=str(tmp_path / "rules.toml"))
    app = ProxycapApp(proxy.store_path, proxy.session.control)
    url = f"{origin.url}/echo?mock={uuid.uuid4().hex}"
    async with app.run_test(size=SIZE) as pilot:
        stored = await asyncio.to_thread(proxy.curl, url, "-H", "X-Original: 1")
        await until(pilot, lambda: len(app.view) == 1)
        await pilot.press("M")
        await until(pilot, lambda: isinstance(app.screen, RuleEditScreen), what="the mocked rule in the editor")
        text = app.screen.query_one(TextArea).text
        assert "action = 'respond'" in text and "status = 200" in text
        await pilot.press("ctrl+s")
        await until(pilot, lambda: isinstance(app.screen, RulesScreen))
        answer = await asyncio.to_thread(proxy.curl, url, "-H", "X-Other: 2")
        assert answer.split("\n\n", 1)[1] == stored.split("\n\n", 1)[1]  # the stored body, X-Original and all
        assert sum(1 for s in SEEN if s.endswith(url.split("/", 3)[3])) == 1
        table = app.screen.query_one(KeyedTable)
        await until(pilot, lambda: table.row_count == 1 and table.get_row_at(0)[6] == "1", what="its hit")
        await pilot.press("escape")
        await until(pilot, lambda: len(app.view) == 2 and listed(app)[1]["modified"], what="the mocked flow")
        assert line(app, 1).split()[3] == "✎GET"
        await pilot.press("G", "enter")
        await until(pilot, lambda: app.inspector.doc is not None, what="the inspector")
        await pilot.press("3")
        details = app.inspector.lines("details").plain_lines()
        changed = details.index("Changed in flight")
        assert details[changed + 1].strip() == listed(app)[1]["modified"]
        assert details[changed + 1].strip().startswith("rule 'mock GET 127.0.0.1/echo': answered 200")


async def test_throttle_from_the_dialog_and_the_palette(proxy: Proxy, origin: OriginServer) -> None:
    app = ProxycapApp(proxy.store_path, proxy.session.control)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("t")
        await until(pilot, lambda: isinstance(app.screen, ThrottleDialog))
        await pilot.press(*"fast", "enter")
        await until(pilot, lambda: "not a throttle profile" in str(app.screen.query_one("#call-error").render()))
        app.screen.query_one("#throttle-profile", Input).value = "100/50"
        app.screen.query_one("#throttle-latency", Input).value = "250"
        await pilot.press("enter")
        await until(pilot, lambda: "throttled: 100 KB/s down, 50 KB/s up, +250 ms (t)" in status(app))
        assert proxy.session.throttle.profile().latency == 250
        await app.run_action("set_throttle('3G')")  # as the palette runs it
        await until(pilot, lambda: "throttled: 3G (t)" in status(app))
        await app.run_action("set_throttle('off')")
        await until(pilot, lambda: "throttled" not in status(app))
        assert proxy.session.throttle.profile() is None

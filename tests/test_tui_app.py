"""The TUI against a real proxy: real clients → real proxycap → real origins, driven with Textual's pilot."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import json
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Proxy
from mitmproxy.test import tflow
from origins import JSON_BYTES, OriginServer
from rich.style import Style
from rich.text import Text
from textual import events
from textual.app import App, ComposeResult
from textual.geometry import Region
from textual.pilot import Pilot
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Input, Static, TextArea
from tui_data import build_store

from proxycap.capture.summary import META_REPLAY_OF, summarize
from proxycap.cli import main
from proxycap.internals.textual import QuickScrollBar
from proxycap.query import views as view_module
from proxycap.query.views import Found as Batch
from proxycap.query.views import ViewSpec, load_sql
from proxycap.storage.store import Store
from proxycap.tui import live as app_module
from proxycap.tui.app import ProxycapApp
from proxycap.tui.chrome.edit import EditScreen
from proxycap.tui.chrome.filter_bar import DEBOUNCE, FilterBar
from proxycap.tui.chrome.keybar import KeyBar
from proxycap.tui.chrome.screens import HelpScreen
from proxycap.tui.flows.flow_list import COLUMNS, FlowList
from proxycap.tui.flows.model import FlowView
from proxycap.tui.inspector import flowdoc
from proxycap.tui.inspector import panel as inspector_module
from proxycap.tui.inspector.flowdoc import DocOptions, FlowDoc
from proxycap.tui.live import tick_interval
from proxycap.tui.textlines import TextLines

pytestmark = pytest.mark.timeout(60)


async def until(pilot: Pilot, condition: Callable[[], object], timeout: float = 10, what: str = "") -> None:
    """Let the app run until ``condition()`` holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        await pilot.pause(0.05)


async def fetch(client: httpx.Client, *urls: str) -> None:
    """Requests from a thread, so the app's loop keeps running meanwhile."""

    def run() -> None:
        for url in urls:
            client.get(url)

    await asyncio.to_thread(run)


def listed(app: ProxycapApp) -> list[dict]:
    view = app.view
    return [view.row(i) for i in range(len(view))]


async def inspect_one(app: ProxycapApp, pilot: Pilot, proxy: Proxy, url: str) -> None:
    """One request through the proxy, then its flow open in the inspector."""
    with proxy.client() as c:
        await fetch(c, url)
    await until(pilot, lambda: len(app.view) == 1 and listed(app)[0]["state"] == "done")
    await pilot.press("enter")
    await until(pilot, lambda: app.inspector.doc is not None, what="the inspector")


async def test_flows_appear_and_clients_are_counted_and_selectable(proxy: Proxy, origin: OriginServer) -> None:
    app = ProxycapApp(proxy.store_path, proxy.session.control)
    async with app.run_test(size=(120, 36)) as pilot:
        with proxy.client("127.0.0.2") as a, proxy.client("127.0.0.3") as b:
            await fetch(a, *(f"{origin.url}/json?n={i}" for i in range(3)))
            await fetch(b, f"{origin.url}/html", f"{origin.url}/status/404")
        await until(pilot, lambda: len(app.view) == 5, what="5 flows listed")
        counts = lambda: {r.ip: r.flows for r in app.clients.rows}  # noqa: E731
        await until(pilot, lambda: counts() == {"127.0.0.2": 3, "127.0.0.3": 2}, what="client counts")
        assert app.status.total == 5

        app.clients.options.focus()
        await pilot.press("down", "enter")  # the first client below "All clients"
        await until(pilot, lambda: app.view.spec.client_ip == "127.0.0.2" and not app.view.loading)
        assert [r["client_ip"] for r in listed(app)] == ["127.0.0.2"] * 3

        await pilot.press("home", "enter")  # back to all clients
        await until(pilot, lambda: app.view.spec.client_ip is None and len(app.view) == 5)


async def test_the_total_counts_new_flows_with_the_list(proxy: Proxy, origin: OriginServer) -> None:
    """It showed the clients panel's sum, up to a refresh behind: "102,066 shown / 101,659 flows"."""
    app = ProxycapApp(proxy.store_path, proxy.session.control)
    async with app.run_test(size=(120, 36)) as pilot:
        app.live._clients_timer.stop()  # the panel's counts stay where they are
        with proxy.client() as c:
            await fetch(c, f"{origin.url}/json", f"{origin.url}/html")
        await until(pilot, lambda: len(app.view) == 2, what="2 flows listed")
        await until(pilot, lambda: "2 shown / 2 flows" in str(app.status_bar.content), what="the total")


async def test_started_focused_on_a_client(proxy: Proxy, origin: OriginServer) -> None:
    app = ProxycapApp(proxy.store_path, proxy.session.control, client="127.0.0.3")
    async with app.run_test(size=(120, 36)) as pilot:
        with proxy.client("127.0.0.2") as a, proxy.client("127.0.0.3") as b:
            await fetch(a, f"{origin.url}/json")
            await fetch(b, f"{origin.url}/xml")
        await until(pilot, lambda: app.status.total == 2, what="both flows stored")
        await until(pilot, lambda: len(app.view) == 1)
        assert listed(app)[0]["client_ip"] == "127.0.0.3"
        assert app.clients.active == "127.0.0.3"


async def test_filter_expressions_text_and_errors(proxy: Proxy, origin: OriginServer, tmp_path: Path) -> None:
    history = tmp_path / "state" / "filter-history"
    app = ProxycapApp(proxy.store_path, proxy.session.control, history_file=history)
    async with app.run_test(size=(120, 36)) as pilot:
        with proxy.client() as c:
            await fetch(
                c, f"{origin.url}/json", f"{origin.url}/html", f"{origin.url}/status/404", f"{origin.url}/status/500"
            )
        await until(pilot, lambda: len(app.view) == 4 and all(r["state"] != "live" for r in listed(app)))

        await pilot.press("slash", *"~c 404")
        await until(pilot, lambda: app.view.spec.expr == "~c 404" and not app.view.loading)
        assert [r["path"] for r in listed(app)] == ["/status/404"]

        await pilot.press(*" & (")  # incomplete: an error, and the list stays as it was
        await until(pilot, lambda: app.filter_bar.query_one("#filter-status").has_class("-error"))
        assert "invalid filter expression" in str(app.filter_bar.query_one("#filter-status").render())
        assert app.view.spec.expr == "~c 404"
        assert [r["path"] for r in listed(app)] == ["/status/404"]

        await pilot.press(*"~c 500 | ~c 404)", "enter")
        await until(pilot, lambda: app.view.spec.expr == "~c 404 & (~c 500 | ~c 404)" and not app.view.loading)
        assert [r["path"] for r in listed(app)] == ["/status/404"]
        assert app.flows.has_focus

        applied: list[str] = []
        apply = app._filter

        def watched(text: str, submitted: bool = False) -> None:
            applied.append(text)
            apply(text, submitted)

        app._filter = watched  # type: ignore[method-assign]
        await pilot.press("escape")  # from the list: clears the filter at once, not after the typing debounce
        await pilot.pause()
        assert app.filter_bar.value == "" and app.view.spec.expr is None
        await pilot.pause(2 * DEBOUNCE)
        assert applied == [""]  # once: the emptied field's own typing pause does not apply it again
        app._filter = apply  # type: ignore[method-assign]
        await pilot.press("slash", "up", "enter")  # and history brings it back
        await until(pilot, lambda: app.view.spec.expr == "~c 404 & (~c 500 | ~c 404)" and not app.view.loading)

        await pilot.press("slash", "ctrl+u", *"htm")  # plain text: a URL substring, answered by SQL
        await until(pilot, lambda: app.view.spec.text == "htm" and not app.view.loading)
        assert [r["path"] for r in listed(app)] == ["/html"]

        await pilot.press("ctrl+u", "up")  # history brings back the last applied expression
        assert app.filter_bar.value == "~c 404 & (~c 500 | ~c 404)"

    # The history outlives the session, private to the user.
    assert history.read_text().splitlines() == ["~c 404 & (~c 500 | ~c 404)"]
    assert history.stat().st_mode & 0o777 == 0o600
    again = ProxycapApp(proxy.store_path, proxy.session.control, history_file=history)
    async with again.run_test(size=(120, 36)) as pilot:
        await pilot.press("slash", "up")
        assert again.filter_bar.value == "~c 404 & (~c 500 | ~c 404)"


async def test_an_unwritable_filter_history_costs_only_the_history(
    proxy: Proxy, origin: OriginServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "not-a-dir").write_text("")
    app = ProxycapApp(proxy.store_path, proxy.session.control, history_file=tmp_path / "not-a-dir" / "filter-history")
    async with app.run_test(size=(120, 36)) as pilot:
        with proxy.client() as c:
            await fetch(c, f"{origin.url}/json", f"{origin.url}/html")
        await until(pilot, lambda: len(app.view) == 2)
        await pilot.press("slash", *"htm", "enter")
        await until(pilot, lambda: app.view.spec.text == "htm" and not app.view.loading)
        assert [r["path"] for r in listed(app)] == ["/html"]
        await pilot.press("slash", "ctrl+u", "up")  # still remembered for this session
        assert app.filter_bar.value == "htm"
    assert "cannot save the filter history" in caplog.text


async def test_expression_view_takes_new_flows_live(proxy: Proxy, origin: OriginServer) -> None:
    app = ProxycapApp(proxy.store_path, proxy.session.control)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("slash", *"~c 404", "enter")
        await until(pilot, lambda: app.view.spec.expr == "~c 404" and not app.view.loading)
        with proxy.client() as c:
            await fetch(
                c, f"{origin.url}/json", f"{origin.url}/status/404", f"{origin.url}/html", f"{origin.url}/status/404"
            )
        await until(pilot, lambda: len(app.view) == 2, what="both 404s")
        await until(pilot, lambda: app.status.total == 4)
        assert [r["status"] for r in listed(app)] == [404, 404]


async def test_rows_follow_their_flows_from_the_store_and_https_ends_the_ca_hint(
    proxy: Proxy, origin: OriginServer, tls_origin: OriginServer
) -> None:
    """The UI's events say only which flow changed: a row listed in flight is fetched again once it is done."""
    app = ProxycapApp(proxy.store_path, proxy.session.control)
    async with app.run_test(size=(120, 36)) as pilot:
        with proxy.client() as c:
            slow = asyncio.create_task(fetch(c, f"{origin.url}/slow?ms=1500"))
            await until(pilot, lambda: len(app.view) == 1 and listed(app)[0]["state"] == "live", what="in flight")
            await slow
            await until(pilot, lambda: listed(app)[0]["state"] == "done", what="done")
            assert listed(app)[0]["status"] == 200 and app.status.ca_hint
            await fetch(c, f"{tls_origin.url}/json")
        await until(pilot, lambda: "trust the CA" not in str(app.status_bar.content), what="the CA hint gone")


async def test_inspector_shows_pretty_json(proxy: Proxy, origin: OriginServer) -> None:
    app = ProxycapApp(proxy.store_path, proxy.session.control)
    async with app.run_test(size=(120, 36)) as pilot:
        await inspect_one(app, pilot, proxy, f"{origin.url}/json")
        lines = app.inspector.lines("response").plain_lines()
        rule = f"── body: JSON, {len(JSON_BYTES)}B ──"
        assert rule in lines
        body = lines[lines.index(rule) + 1 :]
        assert body[:3] == ["{", '  "hello": "world",', '  "items": [']
        await pilot.press("1")
        assert app.inspector.active_tab == "request"
        assert app.inspector.lines("request").plain_lines()[0].startswith("GET /json HTTP/1.1")
        await pilot.press("escape")
        assert not app.inspecting


async def test_a_big_body_shows_at_once_and_then_whole(
    proxy: Proxy, origin: OriginServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    items = [{"i": k, "name": f"item {k}"} for k in range(2000)]  # ~110k characters pretty-printed
    app = ProxycapApp(proxy.store_path, proxy.session.control)
    async with app.run_test(size=(120, 36)) as pilot:
        with proxy.client() as c:
            await asyncio.to_thread(c.post, f"{origin.url}/echo", json={"items": items})
        await until(pilot, lambda: len(app.view) == 1 and listed(app)[0]["state"] == "done")
        await pilot.press("enter", "1")
        lines = app.inspector.lines("request")
        await until(pilot, lambda: '      "name": "item 1999"' in lines.plain_lines(), what="the whole body")
        assert not any("press + for more" in line for line in lines.plain_lines())
        lines.jump(8000)
        top = lines._top_line()
        app.inspector.show_flow(app.inspector.seq, reload=True)  # as when the flow changes: where the reader was
        await app.workers.wait_for_complete()
        await pilot.pause(0.2)
        assert lines._top_line() == top
        await pilot.press("escape")
        assert not app.inspecting and app.inspector.doc is None

        # Closed (or moved on) before the rest of the body was due: it is never built.
        monkeypatch.setattr(inspector_module, "REST_DELAY", 2.0)  # ample time for the keys below on a slow machine
        builds: list[int] = []
        build = flowdoc.build

        def counted(f: Any, row: dict, options: DocOptions) -> FlowDoc:
            builds.append(options.limit)
            return build(f, row, options)

        monkeypatch.setattr(flowdoc, "build", counted)
        await pilot.press("enter")
        await until(pilot, lambda: app.inspector.doc is not None, what="the first screenful")
        await pilot.press("escape")
        await pilot.pause(2.5)
        assert builds == [inspector_module.PREVIEW]


def test_live_updates_come_every_two_seconds_while_the_proxy_is_busy() -> None:
    frame = 0.01  # seconds of the UI thread a tick took, with its frames
    assert tick_interval(frame, app_module.BUSY_RATE - 1) == pytest.approx(frame / app_module.UI_SHARE)
    assert tick_interval(frame, app_module.BUSY_RATE) == app_module.BUSY_TICK > app_module.MAX_TICK
    assert tick_interval(0.0, 0) == app_module.TICK and tick_interval(1.0, 0) == app_module.MAX_TICK


def test_an_attached_window_is_not_held_back_by_the_proxys_load() -> None:
    """In a process of its own it does not share the proxy's GIL: only its own CPU share spaces its updates."""
    frame = 0.03
    assert tick_interval(frame, 10 * app_module.BUSY_RATE, beside_proxy=False) == pytest.approx(
        frame / app_module.ATTACHED_SHARE
    )
    assert tick_interval(frame, 10 * app_module.BUSY_RATE, beside_proxy=False) < 0.5 < app_module.BUSY_TICK


async def test_new_client_counts_wait_for_the_tick_that_draws_the_new_flows(tmp_path: Path) -> None:
    """Drawn in a frame of their own, the panel and the status bar made Textual redraw the whole screen once more
    per second under load: the box around both is all of it."""
    app = ProxycapApp(build_store(tmp_path / "capture.db"))
    async with app.run_test(size=(120, 36)) as pilot:
        await until(pilot, lambda: len(app.clients.rows) == 3)
        app.live._tick_timer.stop()  # this test ticks by hand
        newer = [dataclasses.replace(row, flows=row.flows + 1) for row in app.clients.rows]
        app.live.show_clients(newer, trusted=False)
        await pilot.pause(0.2)
        assert app.clients.rows != newer
        app.live.tick()
        assert app.clients.rows == newer


async def test_the_clients_list_is_as_tall_as_its_rows_and_scrolls_through_a_crowd(tmp_path: Path) -> None:
    """New counts redraw the list's own lines, not the panel's whole height; past a screenful the scrollbar takes
    its column without making any row wrap onto a third line."""
    app = ProxycapApp(build_store(tmp_path / "capture.db"))
    async with app.run_test(size=(120, 36)) as pilot:
        await until(pilot, lambda: len(app.clients.rows) == 3)
        assert app.clients.options.size.height <= 1 + 2 * 3 + 1 < app.clients.size.height // 2

    store = Store(tmp_path / "crowd.db")
    crowd = []
    for i in range(40):
        f = tflow.tflow(resp=True)
        f.client_conn.peername = (f"10.0.{i}.1", 50000)
        crowd.append((summarize(f), None))
    store.write(crowd, [], [])
    store.close()
    app = ProxycapApp(tmp_path / "crowd.db")
    async with app.run_test(size=(120, 36)) as pilot:
        await until(pilot, lambda: len(app.clients.rows) == 40)
        options = app.clients.options
        assert options.virtual_size.height == 1 + 2 * 40
        assert options.region.bottom <= app.clients.region.bottom
        options.focus()
        await pilot.press("end")
        await pilot.pause(0.2)
        assert options.highlighted == 40 and options.scroll_offset.y == options.max_scroll_y > 0


async def test_the_collector_is_settled_once_the_screen_is_drawn(tmp_path: Path) -> None:
    """The CLI freezes what exists then out of full collections: it must include the laid-out screen."""
    drawn: list[int] = []
    app = ProxycapApp(build_store(tmp_path / "capture.db"), settle=lambda: drawn.append(app.flows.size.height))
    async with app.run_test(size=(120, 36)) as pilot:
        await until(pilot, lambda: drawn)
        await pilot.press("down", "enter")
        await until(pilot, lambda: app.inspector.display)
    assert len(drawn) == 1 and drawn[0] > 0


async def test_the_inspector_appears_with_its_content(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not empty first and filled a frame later (two full layouts of the screen)."""
    monkeypatch.setattr(inspector_module, "REVEAL_WAIT", 5.0)  # only its content may reveal it here
    build = flowdoc.build
    built = threading.Event()  # a big body beside a busy proxy: built when the test says so

    def slow(f: Any, row: dict, options: DocOptions) -> FlowDoc:
        built.wait(10)
        return build(f, row, options)

    monkeypatch.setattr(flowdoc, "build", slow)
    app = ProxycapApp(build_store(tmp_path / "capture.db"))
    async with app.run_test(size=(120, 36)) as pilot:
        await until(pilot, lambda: not app.view.loading)
        await pilot.press("enter")
        await pilot.pause(0.1)
        assert app.inspecting and not app.inspector.display  # its keys work already; it shows with its content
        built.set()

        def shown() -> bool:
            if app.inspector.display:
                assert app.inspector.doc is not None, "shown before its content"
                return True
            return False

        await until(pilot, shown, what="the inspector")
        built.clear()
        await pilot.press("escape", "down", "enter", "escape")  # closed while it opened: it stays closed
        built.set()
        await pilot.pause(0.3)
        assert not app.inspecting and not app.inspector.display


async def test_key_bar_follows_the_focus_and_a_click_presses_a_key(tmp_path: Path) -> None:
    app = ProxycapApp(build_store(tmp_path / "capture.db"))
    async with app.run_test(size=(120, 36)) as pilot:
        await until(pilot, lambda: not app.view.loading)
        bar = app.screen.query_one(KeyBar)
        shown = lambda: bar.render_line(0).text  # noqa: E731
        assert "Inspect" in shown() and "Zoom" not in shown() and shown().rstrip().endswith("^p palette")
        await pilot.press("enter")
        await until(pilot, lambda: "Zoom" in shown(), what="the inspector's keys")
        await pilot.press("escape")
        await until(pilot, lambda: "Zoom" not in shown())
        await pilot.click(KeyBar, offset=(shown().index("Help"), 0))
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), what="help opened by a click")


def burst(app: ProxycapApp, *keys: str) -> None:
    """Keys that arrive together (a paste, a fast typist, an SSH link): all queued before the app handles one."""
    names = {"/": "slash", "\r": "enter"}
    for key in keys:
        app.post_message(events.Key(key, None) if len(key) > 1 else events.Key(names.get(key, key), key))


async def test_typed_ahead_keys_follow_the_keyboard_and_search_counts_matches(tmp_path: Path) -> None:
    app = ProxycapApp(build_store(tmp_path / "capture.db", extra=60))
    async with app.run_test(size=(120, 36)) as pilot:
        await until(pilot, lambda: not app.view.loading)
        burst(app, *"//v1/items/\r\r")  # the second "/" is typed into the field, the second Enter opens a flow
        # (if the second Enter beats the filtered view to the list, the inspector follows the selection into it)
        await until(
            pilot,
            lambda: (
                not app.view.loading
                and len(app.view) == 60
                and app.inspector.is_open
                and app.inspector.seq == app.flows.selected
            ),
            what="the typed filter, then the inspector",
        )
        assert app.filter_bar.input.history[-1] == "/v1/items/"  # submitted whole, not before its last keys
        assert app.focused is app.flows
        app.post_message(FilterBar.Changed("/v1/"))  # a pause in typing that reached the app after the Enter
        await pilot.pause()
        assert app.view.spec.text == "/v1/items/"
        selected = app.flows.selected
        assert app.flows.cursor < len(app.view) - 1
        burst(app, "z", "end")  # the end of the body, not the last flow
        await until(pilot, lambda: app.screen.maximized is app.inspector, what="the zoom")
        await pilot.pause()
        assert app.flows.selected == selected and app.focused is app.inspector.lines()
        search = app.inspector.query_one("#inspector-search", Input)
        note = lambda: str(app.inspector.query_one("#inspector-note", Static).render())  # noqa: E731
        burst(app, "ctrl+f", *"json")
        await until(pilot, lambda: search.value == "json", what="the search text")
        assert app.focused is search and note().startswith("match 1 of 2 · ")
        await pilot.press("enter")
        assert note().startswith("match 2 of 2 · ")
        await pilot.press("escape", "N")
        assert note().startswith("match 1 of 2 · ") and app.focused is app.inspector.lines()
        await pilot.press("ctrl+f", "x")  # the field selects its text: a new term replaces it
        assert note().startswith("no match for 'x' · ")
        await pilot.press("z")
        assert search.value == "xz" and app.screen.maximized is app.inspector
        await pilot.press("escape", "escape", "escape")  # close the search field, the inspector, clear the filter
        burst(app, *"/~c 4(\rx")  # a bad expression: Enter leaves the keyboard in the field
        await until(pilot, lambda: app.filter_bar.value == "~c 4(x", what="the text typed after Enter")
        assert app.focused is app.filter_bar.input


async def test_a_filter_shows_the_newest_screenful_first_and_stays_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the list at the newest flows, a text filter fills the screen from the newest flows first; the whole
    view then replaces it without moving what the user sees."""
    monkeypatch.setattr(view_module, "PREVIEW_WINDOW", 40)
    app = ProxycapApp(build_store(tmp_path / "capture.db", extra=60))
    applied: list[tuple[int, bool]] = []
    apply = app.live.apply

    def watched(gen: int, batch: Batch) -> None:
        applied.append((len(batch.seqs), batch.done))
        apply(gen, batch)

    app.live.apply = watched  # type: ignore[method-assign]
    async with app.run_test(size=(120, 36)) as pilot:
        await until(pilot, lambda: not app.view.loading)
        await pilot.press("G")
        newest = app.flows.selected
        await pilot.press("slash")
        app.filter_bar.input.value = "/v1/items/"  # typed slowly, a prefix could be applied on the way
        applied.clear()
        await pilot.press("enter")
        await until(pilot, lambda: not app.view.loading and len(app.view) == 60, what="the whole view")
        height = app.flows.body_height
        assert applied == [(height, False), (60, True)]
        assert app.flows.selected == newest and app.flows.cursor == 59 and app.flows.at_newest_edge()
        assert "60 shown" in app.status_bar.render().plain


@contextlib.asynccontextmanager
async def lone_flow_list(tmp_path: Path) -> AsyncIterator[tuple[Pilot, FlowList, Store, FlowView]]:
    """A flow list on its own over a 60-flow store, every flow in its view."""
    store = Store(build_store(tmp_path / "capture.db", extra=60))
    view = FlowView(store)

    class One(App[None]):
        # As in the app, plus a colour for line filters to change.
        CSS = "FlowList { overflow-x: hidden; scrollbar-gutter: stable; color: #d08770; }"

        def compose(self) -> ComposeResult:
            yield FlowList(view)

    try:
        async with One().run_test(size=(100, 20)) as pilot:
            flows = pilot.app.query_one(FlowList)
            view.begin(ViewSpec())
            flows.sync(view.apply(load_sql(store, ViewSpec())))
            yield pilot, flows, store, view
    finally:
        store.close()


async def test_a_new_view_keeps_the_selected_flow_where_it_was_on_screen(tmp_path: Path) -> None:
    """Each reset (a preview, then the whole view; clearing the filter) keeps the cursor's flow on its screen
    row: after the preview the list is scrolled to its top, and the whole view must not open there."""
    async with lone_flow_list(tmp_path) as (pilot, flows, store, view):
        flows.go_bottom()
        await pilot.pause()
        spec = ViewSpec(text="/v1/items/")
        whole = load_sql(store, spec)
        height = flows.body_height
        view.begin(spec)
        flows.sync(view.apply(Batch(whole.seqs[-height:], whole.last_seq, reset=True, done=False)))
        await pilot.pause()
        assert flows.scroll_offset.y == 0 and flows.cursor == height - 1
        flows.sync(view.apply(whole))
        await pilot.pause()
        assert flows.at_newest_edge() and flows.cursor == 59 and flows.selected == whole.seqs[-1]
        flows.move_to(50)
        row = flows.cursor - flows.scroll_offset.y
        view.begin(ViewSpec())
        flows.sync(view.apply(load_sql(store, ViewSpec())))
        await pilot.pause()
        assert flows.selected == whole.seqs[50] and flows.cursor - flows.scroll_offset.y == row


async def test_the_list_draws_what_textual_would(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The list hands its cached rows to the compositor itself, skipping Textual's per-line rebuild: the lines must
    be Textual's, cell for cell and style for style; given padding, the list leaves the drawing to Textual."""
    monkeypatch.setenv("NO_COLOR", "1")  # a line filter (monochrome) to apply too
    async with lone_flow_list(tmp_path) as (pilot, flows, _, view):
        flows.move_to(len(view) - 3)  # the cursor's row has its own style
        await pilot.pause()
        crop = Region(0, 0, flows.size.width, flows.size.height)
        textuals = Widget.render_lines(flows, crop)
        assert [list(line) for line in flows.render_lines(crop)] == [list(line) for line in textuals]
        assert "/v1/items/" in "".join(line.text for line in textuals)

        flows.styles.padding = (0, 2)
        await pilot.pause()
        padded = flows.render_lines(Region(0, 0, flows.size.width, flows.size.height))
        assert padded[1].text.startswith("  ") and padded[1].text[2:4].strip()


async def test_the_scrollbar_draws_what_textual_would(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The list's scrollbar builds its lines from a few cached ones: they must be Textual's, wherever the thumb is
    and however the bar is styled (hovered), cropped or not, and asked for more lines than it has (as it can be
    while the screen is laid out anew)."""
    monkeypatch.setenv("NO_COLOR", "1")  # a line filter (monochrome) to apply too
    async with lone_flow_list(tmp_path) as (pilot, flows, _, view):
        await pilot.pause()
        bar = flows.vertical_scrollbar
        assert isinstance(bar, QuickScrollBar) and bar.size.height > 5
        drawn = set()
        for y, hover in ((0, False), (17, False), (len(view), False), (30, True)):
            flows.jump(y)
            bar.mouse_over = hover
            await pilot.pause()
            for crop in (Region(1, 2, 1, 5), Region(0, 0, 2, bar.size.height + 3), Region(0, 0, *bar.size)):
                lines = [list(line) for line in bar.render_lines(crop)]
                assert lines == [list(line) for line in Widget.render_lines(bar, crop)]
            drawn.add(repr(lines))  # the whole bar
        assert len(drawn) == 4  # the thumb moved, the hover changed its colour


async def test_opening_the_inspector_lays_the_screen_out_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each layout of the whole screen costs 10-30 ms (more beside a busy proxy): the inspector appearing and the
    list shrinking take one. Textual's scrollbar asked for a second one as its height changed."""
    layouts: list[float] = []
    layout = Screen._refresh_layout

    def counted(screen: Screen, *args: Any, **kwargs: Any) -> None:
        layouts.append(time.monotonic())
        layout(screen, *args, **kwargs)

    monkeypatch.setattr(Screen, "_refresh_layout", counted)
    monkeypatch.setattr(inspector_module, "REVEAL_WAIT", 10)  # with its content, however slow the machine
    app = ProxycapApp(build_store(tmp_path / "capture.db", extra=60))
    async with app.run_test(size=(120, 36)) as pilot:
        await until(pilot, lambda: not app.view.loading)
        for _ in range(2):  # the first time, the inspector's own widgets settle too (the tabs' underline)
            layouts.clear()
            await pilot.press("enter")
            await until(pilot, lambda: app.inspector.display and app.inspector.doc is not None, what="the inspector")
            await pilot.pause(0.5)
            opened = len(layouts)
            await pilot.press("escape")
            await pilot.pause(0.5)
        assert opened == 1 and app.flows.vertical_scrollbar.size.height > 30  # the list is whole again


async def test_follow_and_new_flow_count(proxy: Proxy, origin: OriginServer) -> None:
    app = ProxycapApp(proxy.store_path, proxy.session.control)
    async with app.run_test(size=(80, 24)) as pilot:
        flows = app.flows
        with proxy.client() as c:
            await fetch(c, *(f"{origin.url}/json?i={i}" for i in range(40)))
            await until(pilot, lambda: len(app.view) == 40)
            assert flows.at_newest_edge() and flows.new_count == 0
            assert flows.cursor == 39  # the cursor rides along at the newest flow

            await pilot.press("g")  # scrolled up: no more jumping, new flows are counted instead
            await fetch(c, *(f"{origin.url}/json?j={i}" for i in range(5)))
            await until(pilot, lambda: len(app.view) == 45)
            assert flows.scroll_y == 0 and flows.cursor == 0
            assert flows.new_count == 5
            assert "5 new" in flows.render_line(0).text

            await pilot.press("G")  # back at the bottom: following again
            assert flows.new_count == 0 and flows.at_newest_edge() and flows.cursor == 44
            await fetch(c, f"{origin.url}/json?k=1")
            await until(pilot, lambda: len(app.view) == 46)
            assert flows.at_newest_edge() and flows.cursor == 45
            await pilot.pause()
            assert flows.vertical_scrollbar.window_virtual_size == 47  # the scrollbar knows every row, header too


async def test_a_live_capture_opens_at_its_newest_flows_and_a_browsed_one_at_its_first(
    proxy: Proxy, origin: OriginServer
) -> None:
    """`proxycap tui` on yesterday's store: today's traffic must show at once, not behind a "new ↓" badge."""
    with proxy.client() as c:
        for i in range(40):
            c.get(f"{origin.url}/json?i={i}")
        proxy.wait_flows(40)
        app = ProxycapApp(proxy.store_path, proxy.session.control)
        async with app.run_test(size=(80, 24)) as pilot:
            flows = app.flows
            await until(pilot, lambda: len(app.view) == 40)
            await pilot.pause()
            assert flows.cursor == 39 and flows.at_newest_edge() and flows.scroll_y > 0
            await fetch(c, f"{origin.url}/json?today=1")
            await until(pilot, lambda: len(app.view) == 41)
            assert flows.cursor == 40 and flows.at_newest_edge() and flows.new_count == 0
    browsed = ProxycapApp(proxy.store_path)
    async with browsed.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: len(browsed.view) == 41)
        await pilot.pause()
        assert browsed.flows.cursor == 0 and browsed.flows.scroll_y == 0


async def test_mark_clear_and_delete(proxy: Proxy, origin: OriginServer) -> None:
    app = ProxycapApp(proxy.store_path, proxy.session.control)
    async with app.run_test(size=(120, 36)) as pilot:
        with proxy.client() as c:
            await fetch(c, *(f"{origin.url}/status/{s}" for s in (200, 201, 202)))
        await until(pilot, lambda: len(app.view) == 3)
        await pilot.press("g", "m", "m")  # mark the first two
        assert [r["marked"] for r in listed(app)] == [1, 1, 0]
        await pilot.press("d")
        await until(pilot, lambda: len(app.screen_stack) > 1, what="confirmation")
        await pilot.press("y")
        await until(pilot, lambda: len(app.view) == 1)
        await until(pilot, lambda: app.worker_store.count() == 1, what="deleted from the store")
        await pilot.press("c")  # clear: hidden from the view, still in the store
        await until(pilot, lambda: len(app.view) == 0 and not app.view.loading)
        assert app.worker_store.count() == 1
        with proxy.client() as c:
            await fetch(c, f"{origin.url}/status/203")
        await until(pilot, lambda: len(app.view) == 1)
        assert listed(app)[0]["status"] == 203


async def test_replay_resends_a_flow_as_a_new_one_naming_the_original(proxy: Proxy, origin: OriginServer) -> None:
    app = ProxycapApp(proxy.store_path, proxy.session.control)
    async with app.run_test(size=(120, 36)) as pilot:
        with proxy.client() as c:
            await fetch(c, f"{origin.url}/json?n=7")
        await until(pilot, lambda: len(app.view) == 1)
        await pilot.press("R")
        await until(pilot, lambda: len(app.view) == 2 and listed(app)[1]["status"] == 200, what="the replayed flow")
        first, again = (app.worker_store.load_flow(r["seq"]) for r in listed(app))
        assert again.id != first.id and again.metadata[META_REPLAY_OF] == first.id
        assert listed(app)[1]["replay_of"] == first.id
        method = next(c for c in COLUMNS if c.order == "method")
        assert [method.cell(r) for r in listed(app)] == ["GET", "↻GET"]
        assert again.is_replay == "request" and again.request.url == first.request.url
        assert again.response.content == first.response.content == JSON_BYTES
        assert first.response.timestamp_start < again.response.timestamp_start  # answered again, not copied
        await pilot.press("G", "enter", "3")
        await until(pilot, lambda: app.inspector.doc is not None and app.inspector.active_tab == "details")
        assert any(line.split() == ["Replay", "of", "#1"] for line in app.inspector.lines("details").plain_lines())


async def test_an_edited_request_is_sent_as_a_new_flow(proxy: Proxy, origin: OriginServer) -> None:
    app = ProxycapApp(proxy.store_path, proxy.session.control)
    async with app.run_test(size=(120, 36)) as pilot:
        with proxy.client() as c:
            await asyncio.to_thread(c.post, f"{origin.url}/echo", content=b"hello", headers={"x-a": "1"})
        await until(pilot, lambda: len(app.view) == 1)
        await pilot.press("e")
        await until(pilot, lambda: isinstance(app.screen, EditScreen), what="the editor")
        area = app.screen.query_one(TextArea)
        assert area.text.startswith(f"POST {origin.url}/echo HTTP/1.1\n") and area.text.endswith("\n\nhello")
        for bad in ("POST nothing", f"PO(ST {origin.url}/echo HTTP/1.1", f"POST {origin.url}/echo HTTP 1.1"):
            area.load_text(bad)
            error = app.screen.query_one("#call-error", Static)
            error.update("")
            await pilot.press("ctrl+s")  # unreadable: the editor stays, saying why
            await until(pilot, lambda: "METHOD URL HTTP/VERSION" in str(error.render()), what="the reason")  # noqa: B023
            assert isinstance(app.screen, EditScreen) and area.text == bad
        area.load_text(f"PUT {origin.url}/echo?edited=1 HTTP/1.1\nx-b: 2\n\nhello again")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: len(app.view) == 2 and listed(app)[1]["status"] == 200, what="the edited flow")
        first, again = (app.worker_store.load_flow(r["seq"]) for r in listed(app))
        assert again.metadata[META_REPLAY_OF] == first.id and first.request.method == "POST"
        echoed = json.loads(again.response.content)  # what the origin received
        assert echoed["method"] == "PUT" and echoed["query"] == "edited=1" and echoed["body"] == "hello again"
        assert echoed["headers"]["x-b"] == "2" and "x-a" not in echoed["headers"]
        assert echoed["headers"]["host"] == origin.url.removeprefix("http://")  # dropped in the editor: added back


async def test_browsing_a_capture_offers_no_replay(tmp_path: Path) -> None:
    app = ProxycapApp(build_store(tmp_path / "s.db", 3), None)
    async with app.run_test(size=(120, 36)):
        assert not app.check_action("replay", ()) and not app.check_action("edit_replay", ())


def test_startup_errors_print_one_line_before_the_ui(
    proxy: Proxy, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [
        "tui",
        "-p",
        str(proxy.port),
        "--store",
        str(tmp_path / "other.db"),
        "--confdir",
        str(proxy.confdir),
        "--log-file",
        str(tmp_path / "log"),
    ]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("proxycap: error: cannot listen") and "\n" not in err
    assert main(["tui", "--open", str(tmp_path / "missing.db")]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.timeout(120)
async def test_thousands_of_flows_while_the_ui_runs(proxy: Proxy, origin: OriginServer) -> None:
    ips, clients, per_client = ("127.0.0.2", "127.0.0.3"), 8, 375  # 3000 flows over keep-alive connections
    total = clients * per_client

    def blast() -> None:
        def run(k: int) -> None:
            with proxy.client(ips[k % 2]) as c:
                for i in range(per_client):
                    assert c.get(f"{origin.url}/status/200?k={k}&i={i}").status_code == 200

        with concurrent.futures.ThreadPoolExecutor(clients) as pool:
            list(pool.map(run, range(clients)))

    app = ProxycapApp(proxy.store_path, proxy.session.control)
    async with app.run_test(size=(120, 36)) as pilot:
        started = time.monotonic()
        await asyncio.to_thread(blast)
        await until(pilot, lambda: len(app.view) == total, timeout=30, what=f"{total} flows listed")
        rows = proxy.wait_flows(total)
        assert len(rows) == total and len({r["id"] for r in rows}) == total
        per_ip = dict.fromkeys(ips, total // 2)
        await until(pilot, lambda: {r.ip: r.flows for r in app.clients.rows} == per_ip, what="client counts")
        await until(pilot, lambda: app.status.total == total)
        assert app.flows.at_newest_edge() and app.flows.cursor == total - 1
        assert sorted(app.view.snapshot()) == sorted(r["seq"] for r in rows)
        print(f"{total} flows through the proxy and into the list in {time.monotonic() - started:.1f}s")


async def test_text_lines_take_a_new_style_at_once() -> None:
    """A text view resolves its own style once (a DOM walk per row was half of drawing it): a restyle, such as a
    theme change, must reach the rows already drawn."""

    class One(App[None]):
        CSS = "TextLines { color: #102030; } TextLines.-other { color: #a0b0c0; }"

        def compose(self) -> ComposeResult:
            yield TextLines([Text("plain"), Text("styled", Style(bold=True))])

    async with One().run_test(size=(40, 10)) as pilot:
        await pilot.pause()
        lines = pilot.app.query_one(TextLines)
        colors = lambda: {seg.style.color.name for y in (0, 1) for seg in lines.render_line(y) if seg.text.strip()}  # noqa: E731
        assert colors() == {"#102030"}
        lines.add_class("-other")
        await pilot.pause()
        assert colors() == {"#a0b0c0"}


async def test_text_lines_draw_the_rows_textual_scrolled_to() -> None:
    """Textual rounds a fractional scroll position (an animated scroll ends between rows); drawing from the
    truncated one left the last line of a body unreachable."""

    class One(App[None]):
        def compose(self) -> ComposeResult:
            yield TextLines([Text(f"line {i}") for i in range(100)])

    async with One().run_test(size=(40, 10)) as pilot:
        await pilot.pause()
        lines = pilot.app.query_one(TextLines)
        lines.scroll_y = lines.max_scroll_y - 0.4
        await pilot.pause()
        assert lines.render_line(lines.size.height - 1).text.strip() == "line 99"

        lines.jump(lines.max_scroll_y)
        lines.append_lines([Text("line 100")])  # a log's tail: it grows, and the view follows it
        await pilot.pause()
        assert lines.vertical_scrollbar.window_virtual_size == 101
        assert lines.render_line(lines.size.height - 1).text.strip() == "line 100"


async def test_text_lines_draw_a_lines_own_style() -> None:
    """A line styled as a whole (a section's title, an error) keeps its style: rich renders a text's own style only
    along with its spans, so a line without spans was drawn plain."""

    class One(App[None]):
        def compose(self) -> ComposeResult:
            yield TextLines([Text("error", Style(color="#ff0000")), Text.assemble("key ", ("value", "#00ff00"))])

    async with One().run_test(size=(40, 10)) as pilot:
        await pilot.pause()
        lines = pilot.app.query_one(TextLines)
        colors = lambda y: {seg.style.color.name for seg in lines.render_line(y) if seg.text.strip()}  # noqa: E731
        assert colors(0) == {"#ff0000"}
        assert "#00ff00" in colors(1)
        lines.search("err")  # a match's highlight is a span: the rest of the line keeps its style
        await pilot.pause()
        assert "#ff0000" in colors(0)

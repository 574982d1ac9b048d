"""The keyboard where it used to trip people up: the inspector's search, body views from flow to flow, the clients
panel, the help screen's columns; and the store's troubles in the status bar. Real stores, real proxies."""

from __future__ import annotations

import sqlite3

import pytest
from conftest import Proxy
from origins import OriginServer
from test_tui_app import fetch, inspect_one, listed, until
from textual.widgets import Input
from tui_data import build_store

from proxycap.tui.app import ProxycapApp
from proxycap.tui.chrome.keybar import KeyBar
from proxycap.tui.chrome.screens import help_lines

pytestmark = pytest.mark.timeout(60)


def test_the_help_screen_keeps_a_gap_after_every_key_and_operator() -> None:
    """``~comment regex`` ran into its text ("~comment regexFlow comment")."""
    for line in help_lines():
        if len(line.spans) == 1 and line.spans[0].start == 0:  # a key or operator, styled, then its text
            key = line.plain[: line.spans[0].end]
            assert key.endswith("  ") and key.strip(), line.plain  # two spaces at least between it and the text


async def test_n_goes_to_the_next_match_once_a_search_is_entered(proxy: Proxy, origin: OriginServer) -> None:
    app = ProxycapApp(proxy.store_path, proxy.session.control)
    async with app.run_test(size=(120, 36)) as pilot:
        await inspect_one(app, pilot, proxy, f"{origin.url}/json")
        await pilot.press("ctrl+f", "o")
        lines = app.inspector.lines()
        assert lines.where.startswith("match 1 of ")  # typing finds the first
        await pilot.press("enter", "n", "n")  # enter, the next; then n from there
        assert lines.where.startswith("match 4 of ")
        assert app.query_one("#inspector-search", Input).value == "o"  # n went to the text, not into the field
        await pilot.press("N")
        assert lines.where.startswith("match 3 of ")
        await pilot.press("escape")  # leaves the search first
        assert app.inspecting and not app.inspector.searching
        await pilot.press("escape")
        assert not app.inspecting


async def test_a_body_view_follows_each_flow_unless_kept(tmp_path) -> None:
    """Hex chosen for one flow's body carried over to the next flow opened."""
    app = ProxycapApp(build_store(tmp_path / "capture.db"))
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: not app.view.loading)
        await pilot.press("g", "enter")
        await until(pilot, lambda: app.inspector.doc is not None, what="the inspector")
        for _ in range(7):  # auto → … → hex
            await pilot.press("v")
        assert app.inspector.options.response_mode == "hex"
        await pilot.press("escape", "down", "enter")
        await until(pilot, lambda: app.inspector.seq == app.flows.selected and app.inspector.doc is not None)
        assert app.inspector.options.response_mode == "auto"
        for _ in range(7):
            await pilot.press("v")
        await pilot.press("V", "escape", "down", "enter")  # kept for the flows shown next
        await until(pilot, lambda: app.inspector.seq == app.flows.selected and app.inspector.doc is not None)
        assert app.inspector.options.response_mode == "hex"


async def test_the_clients_panel_has_a_key_and_shows_its_own_keys(proxy: Proxy, origin: OriginServer) -> None:
    app = ProxycapApp(proxy.store_path, proxy.session.control)
    async with app.run_test(size=(120, 36)) as pilot:
        with proxy.client("127.0.0.2") as a, proxy.client("127.0.0.3") as b:
            await fetch(a, f"{origin.url}/json")
            await fetch(b, f"{origin.url}/html")
        await until(pilot, lambda: len(app.clients.rows) == 2, what="two clients")
        await pilot.press("B")
        assert not app.clients.display
        await pilot.press("b")  # to the panel, shown again
        assert app.clients.display and app.clients.options.has_focus
        await pilot.pause()
        bar = app.screen.query_one(KeyBar)
        assert {"Show its flows", "Rename", "Back to flows"} <= {desc for _, (_, _, desc, _) in bar._keys}
        await pilot.press("down", "enter")
        await until(pilot, lambda: app.view.spec.client_ip == "127.0.0.2" and not app.view.loading)
        assert {r["client_ip"] for r in listed(app)} == {"127.0.0.2"}
        await pilot.press("b")
        assert app.flows.has_focus


async def test_a_store_that_cannot_be_written_shows_in_the_status_bar(proxy: Proxy, origin: OriginServer) -> None:
    app = ProxycapApp(proxy.store_path, proxy.session.control)
    async with app.run_test(size=(160, 36)) as pilot:
        with proxy.client() as c:
            await fetch(c, f"{origin.url}/json")
        await until(pilot, lambda: len(app.view) == 1)
        with sqlite3.connect(proxy.store_path) as db:  # a table gone: writes fail, reads of summaries go on
            db.execute("ALTER TABLE flow_data RENAME TO flow_data_away")
        with proxy.client() as c:
            await fetch(c, f"{origin.url}/json?again")
        await until(
            pilot,
            lambda: "⚠ store: cannot write captured flows" in str(app.status_bar.content),
            what="the store's trouble in the status bar",
        )
        with sqlite3.connect(proxy.store_path) as db:
            db.execute("ALTER TABLE flow_data_away RENAME TO flow_data")
        await until(pilot, lambda: "⚠ store" not in str(app.status_bar.content), timeout=15, what="gone once it works")

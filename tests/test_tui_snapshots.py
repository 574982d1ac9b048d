"""Snapshots of the TUI (pytest-textual-snapshot) over a deterministic, read-only store.

Update with ``pytest tests/test_tui_snapshots.py --snapshot-update`` and look at the SVGs in
tests/__snapshots__/ before committing them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from mitmproxy.version import VERSION
from textual.pilot import Pilot
from textual.widgets import Input
from tui_data import build_store

from proxycap.tui.app import ProxycapApp

pytestmark = pytest.mark.timeout(60)

WIDE, SMALL = (120, 36), (80, 24)
# Recorded with mitmproxy 11: its content views and filter parser word some output differently from 12.x.
same_mitmproxy = pytest.mark.skipif(not VERSION.startswith("11."), reason="snapshot recorded with mitmproxy 11")


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The store, opened by a relative path (the status bar shows it) with clocks in UTC."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    monkeypatch.chdir(tmp_path)
    build_store(tmp_path / "capture.db")
    yield Path("capture.db")
    monkeypatch.undo()
    time.tzset()


def settled(*keys: str, until: Callable[[ProxycapApp], bool] = lambda app: True) -> Callable[[Pilot], object]:
    """A ``run_before`` that waits for the list and clients, presses ``keys``, then waits for ``until``."""

    async def run_before(pilot: Pilot) -> None:
        app = pilot.app
        assert isinstance(app, ProxycapApp)
        app.animation_level = "none"  # a slow machine would catch the tabs' underline sliding into place
        for condition in (lambda: not app.view.loading and app.clients.rows, *([None] if keys else [])):
            if condition is None:
                await pilot.press(*keys)
                condition = lambda: until(app)  # noqa: E731
            deadline = time.monotonic() + 10
            while not condition():
                assert time.monotonic() < deadline, "the app did not settle"
                await pilot.pause(0.05)
        for field in app.query(Input):
            field.cursor_blink = False  # hides the cursor: a blinking one made snapshots depend on timing
        await pilot.pause(0.1)

    return run_before


def inspected(app: ProxycapApp) -> bool:
    """Shown with its content, and the active tab underlined (Textual places the line after a refresh)."""
    underline = app.inspector.query_one("Underline")
    return app.inspector.doc is not None and app.inspector.display and underline.highlight_end > 0


def test_main_screen(store: Path, snap_compare) -> None:
    assert snap_compare(ProxycapApp(store), terminal_size=WIDE, run_before=settled())


def test_main_screen_small_terminal(store: Path, snap_compare) -> None:
    assert snap_compare(ProxycapApp(store), terminal_size=SMALL, run_before=settled())


def test_inspector_response_pretty_json(store: Path, snap_compare) -> None:
    assert snap_compare(ProxycapApp(store), terminal_size=WIDE, run_before=settled("enter", until=inspected))


@same_mitmproxy
def test_inspector_request_with_form_body(store: Path, snap_compare) -> None:
    keys = ("down", "down", "down", "enter", "1")
    assert snap_compare(ProxycapApp(store), terminal_size=WIDE, run_before=settled(*keys, until=inspected))


def test_inspector_details_of_failed_flow(store: Path, snap_compare) -> None:
    keys = (*["down"] * 9, "enter", "3")
    assert snap_compare(ProxycapApp(store), terminal_size=WIDE, run_before=settled(*keys, until=inspected))


def test_inspector_websocket_full_screen_when_small(store: Path, snap_compare) -> None:
    keys = ("G", "enter", "4")
    assert snap_compare(ProxycapApp(store), terminal_size=SMALL, run_before=settled(*keys, until=inspected))


@same_mitmproxy
def test_filter_error_keeps_the_list(store: Path, snap_compare) -> None:
    def error_shown(app: ProxycapApp) -> bool:
        return app.filter_bar.query_one("#filter-status").has_class("-error")

    keys = ("slash", *"~c 401 & (")
    assert snap_compare(ProxycapApp(store), terminal_size=WIDE, run_before=settled(*keys, until=error_shown))


def test_help_screen(store: Path, snap_compare) -> None:
    assert snap_compare(ProxycapApp(store), terminal_size=WIDE, run_before=settled("question_mark"))

"""Copy, export, compare and compose in the TUI, against a real proxy and origin: the copied curl command run by real
curl, the exported HAR read back by mitmproxy's HAR loader, requests written in the composer reaching the origin."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import Proxy
from mitmproxy.io import FlowReader
from origins import OriginServer
from test_tui_app import fetch, listed, until
from textual.widgets import Checkbox, Input, RadioButton, TextArea
from tui_data import build_store

from proxycap.exchange.export import export_flows
from proxycap.exchange.importer import import_files
from proxycap.storage.store import Query, Store
from proxycap.tui.app import ProxycapApp
from proxycap.tui.chrome.edit import EditScreen
from proxycap.tui.exchange.comparing import CompareScreen
from proxycap.tui.exchange.copying import CopyMenu
from proxycap.tui.exchange.exporting import ExportScreen
from proxycap.tui.textlines import TextLines

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def exports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The exports folder, in the test's own data folder."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    return tmp_path / "data" / "proxycap" / "exports"


def recorded_notes(app: ProxycapApp) -> list[str]:
    """The notes the app shows from now on."""
    notes: list[str] = []
    notify = app.notify

    def recording(message: str, *args: Any, **kwargs: Any) -> None:
        notes.append(message)
        notify(message, *args, **kwargs)

    app.notify = recording  # type: ignore[method-assign]
    return notes


def run_curl(command: str, tmp_path: Path) -> tuple[int, bytes]:
    """A copied curl command run by the shell, as a user pasting it would (straight at the origin: no proxy)."""
    out = tmp_path / "curl-body"
    p = subprocess.run(
        ["sh", "-c", f"{command} -s -o {out} -w '%{{http_code}}'"], capture_output=True, timeout=30, check=True
    )
    return int(p.stdout), out.read_bytes()


async def test_copy_as_curl_gets_the_same_response_from_the_origin(
    proxy: Proxy, origin: OriginServer, tmp_path: Path, exports: Path
) -> None:
    app = ProxycapApp(proxy.store_path, proxy.session.control)
    async with app.run_test(size=(120, 36)) as pilot:
        notes = recorded_notes(app)
        with proxy.client() as c:
            await asyncio.to_thread(
                c.post, f"{origin.url}/echo?a=1", json={"user": "me", "note": "100% \\n 'quoted'"}, headers={"x-a": "1"}
            )
            await asyncio.to_thread(c.post, f"{origin.url}/echo", content=bytes(range(256)))
        await until(pilot, lambda: len(app.view) == 2 and all(r["state"] == "done" for r in listed(app)))
        captured = app.worker_store.load_flow(listed(app)[0]["seq"])

        await pilot.press("g", "y")
        await until(pilot, lambda: isinstance(app.screen, CopyMenu), what="the copy menu")
        await pilot.press("c")
        await until(pilot, lambda: app.clipboard, what="the clipboard")
        assert app.clipboard.startswith("curl ") and notes[-1].startswith("copied curl command (")
        status, body = run_curl(app.clipboard, tmp_path)
        sent, got = json.loads(captured.response.content), json.loads(body)
        for echo in (sent, got):
            echo["headers"].pop("accept-encoding")  # the copy asks for what curl can decode (--compressed)
        assert status == 200 and got == sent

        await pilot.press("down", "y", "c")  # a binary body: from a file beside the command, not in the text
        await until(pilot, lambda: "--data-binary" in app.clipboard, what="the binary flow's copy")
        [body_file] = exports.iterdir()
        assert body_file.read_bytes() == bytes(range(256)) and str(body_file) in notes[-1]
        status, body = run_curl(app.clipboard, tmp_path)
        assert status == 200 and json.loads(body)["body_length"] == 256

        app.action_copy("url")  # as the command palette runs it
        await until(pilot, lambda: app.clipboard == f"{origin.url}/echo", what="the URL")
        await pilot.press("Y", "u")  # to a file instead
        await until(pilot, lambda: notes[-1].startswith("saved URL"), what="the saved copy")
        saved = Path(notes[-1].rsplit(" to ", 1)[1])
        assert saved.parent == exports and saved.read_text() == f"{origin.url}/echo"
        assert saved.stat().st_mode & 0o777 == 0o600


async def test_a_copy_too_big_for_the_clipboard_is_saved_to_a_file(
    proxy: Proxy, origin: OriginServer, exports: Path
) -> None:
    app = ProxycapApp(proxy.store_path, proxy.session.control)
    async with app.run_test(size=(120, 36)) as pilot:
        notes = recorded_notes(app)
        text = "a line of text to copy\n" * 6000
        with proxy.client() as c:
            await asyncio.to_thread(c.post, f"{origin.url}/echo", content=text, headers={"content-type": "text/plain"})
        await until(pilot, lambda: len(app.view) == 1 and listed(app)[0]["state"] == "done")
        await pilot.press("y", "c")
        await until(pilot, lambda: notes and notes[-1].startswith("saved curl command"), what="the note")
        assert "too big for the clipboard" in notes[-1]
        saved = Path(notes[-1].rsplit(" to ", 1)[1])
        assert saved.parent == exports and saved.read_text().startswith("curl ") and text in saved.read_text()
        assert app.clipboard == ""


async def test_export_the_view_and_its_marked_flows(
    proxy: Proxy, origin: OriginServer, tmp_path: Path, exports: Path
) -> None:
    app = ProxycapApp(proxy.store_path, proxy.session.control)
    async with app.run_test(size=(120, 36)) as pilot:
        notes = recorded_notes(app)
        with proxy.client() as c:
            await fetch(c, f"{origin.url}/json", f"{origin.url}/html", f"{origin.url}/status/404")
            await asyncio.to_thread(c.get, f"{origin.url}/xml", headers={"authorization": "Bearer s3cr3t"})
        await until(pilot, lambda: len(app.view) == 4 and all(r["state"] == "done" for r in listed(app)))
        await pilot.press("slash", *"~u json | ~u xml", "enter")
        await until(pilot, lambda: app.view.spec.expr == "~u json | ~u xml" and not app.view.loading)
        assert len(app.view) == 2

        await pilot.press("E")
        await until(pilot, lambda: isinstance(app.screen, ExportScreen), what="the export dialog")
        field = app.screen.query_one("#export-path", Input)
        assert field.value.endswith(".har")
        field.value = str(tmp_path / "view.har")
        await pilot.press("enter")
        await until(pilot, lambda: notes and notes[-1].startswith("exported"), what="the export's note")
        assert notes[-1] == f"exported 2 flows to {tmp_path / 'view.har'} (HAR)" and app.status.activity is None
        with open(tmp_path / "view.har", "rb") as fo:  # mitmproxy's own HAR loader
            loaded = list(FlowReader(fo).stream())
        assert [f.request.url for f in loaded] == [f"{origin.url}/json", f"{origin.url}/xml"]
        assert loaded[0].response.content == app.worker_store.load_flow(listed(app)[0]["seq"]).response.content

        await pilot.press("G", "m")  # the /xml flow
        await until(pilot, lambda: app.worker_store.count(Query(marked=True)) == 1)
        await pilot.press("E")
        await until(pilot, lambda: isinstance(app.screen, ExportScreen))
        app.screen.query_one("#marked", RadioButton).value = True
        app.screen.query_one("#jsonl", RadioButton).value = True
        app.screen.query_one("#export-redact", Checkbox).value = True
        field = app.screen.query_one("#export-path", Input)
        await pilot.pause()
        assert field.value.endswith(".jsonl")  # the suffix follows the format
        field.value = str(tmp_path / "view.har")  # and the format the suffix
        await pilot.pause()
        await pilot.press("enter")  # an existing file is replaced on a second enter only
        assert app.screen.query_one("#har", RadioButton).value and "exists" in str(
            app.screen.query_one("#export-error").render()
        )
        field.value = str(tmp_path / "marked.har")
        await pilot.press("enter")
        await until(pilot, lambda: notes[-1].startswith("exported 1 flow "), what="the marked export")
        assert notes[-1] == f"exported 1 flow to {tmp_path / 'marked.har'} (HAR); 1 value redacted"
        [entry] = json.loads((tmp_path / "marked.har").read_text())["log"]["entries"]
        assert entry["request"]["url"] == f"{origin.url}/xml"
        assert {"name": "authorization", "value": "Bearer REDACTED"} in entry["request"]["headers"]


async def test_compare_a_replay_with_its_original_and_any_two_flows(proxy: Proxy, origin: OriginServer) -> None:
    app = ProxycapApp(proxy.store_path, proxy.session.control)
    async with app.run_test(size=(120, 36)) as pilot:
        with proxy.client() as c:
            await asyncio.to_thread(c.post, f"{origin.url}/echo", json={"n": 1}, headers={"x-a": "1"})
        await until(pilot, lambda: len(app.view) == 1 and listed(app)[0]["state"] == "done")
        await pilot.press("e")  # edited and sent: a replay of the first
        await until(pilot, lambda: isinstance(app.screen, EditScreen), what="the editor")
        area = app.screen.query_one(TextArea)
        area.load_text(area.text.replace("x-a: 1", "x-a: 2"))
        await pilot.press("ctrl+s")
        await until(pilot, lambda: len(app.view) == 2 and listed(app)[1]["status"] == 200, what="the replay")

        await pilot.press("G", "equals_sign")  # the replay: compared with its original at once
        await until(pilot, lambda: isinstance(app.screen, CompareScreen), what="the comparison")
        lines = app.screen.query_one(TextLines).plain_lines()
        assert lines[0] == "Request the same" and "Status the same" in lines
        assert "Request headers 1 changed" in lines and "  ~ x-a 1 → 2" in lines
        assert "Request body the same (7 bytes)" in lines
        assert any(line.startswith("Response body 1 changed; JSON, ") for line in lines)
        assert '  ~ headers["x-a"] "1" → "2"' in lines  # the echoed request, compared as JSON
        await pilot.press("ctrl+f", *"x-a")
        assert app.screen.query_one(TextLines).where == "match 1 of 4"
        await pilot.press("escape", "escape")
        await until(pilot, lambda: not isinstance(app.screen, CompareScreen))

        with proxy.client() as c:
            await asyncio.to_thread(c.post, f"{origin.url}/echo", json={"n": 3}, headers={"x-a": "3"})
        await until(pilot, lambda: len(app.view) == 3 and listed(app)[2]["state"] == "done")
        await pilot.press("G", "equals_sign", "g", "equals_sign")  # any two flows: A first, then B
        await until(pilot, lambda: isinstance(app.screen, CompareScreen), what="the second comparison")
        assert (app.screen.a, app.screen.b) == (3, 1)
        lines = app.screen.query_one(TextLines).plain_lines()
        assert "  ~ x-a 3 → 1" in lines and "  ~ n 3 → 1" in lines


async def test_the_composer_sends_a_request_written_from_scratch(proxy: Proxy, origin: OriginServer) -> None:
    app = ProxycapApp(proxy.store_path, proxy.session.control)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("ctrl+n")
        await until(pilot, lambda: isinstance(app.screen, EditScreen), what="the composer")
        area = app.screen.query_one(TextArea)
        assert area.text.startswith("GET https://example.com/ HTTP/1.1\n")
        area.load_text(f"POST {origin.url}/echo?composed=1 HTTP/1.1\nx-c: 3\ncontent-type: text/plain\n\nfrom scratch")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: len(app.view) == 1 and listed(app)[0]["status"] == 200, what="the composed flow")
        echoed = json.loads(app.worker_store.load_flow(listed(app)[0]["seq"]).response.content)
        assert echoed["method"] == "POST" and echoed["query"] == "composed=1" and echoed["body"] == "from scratch"
        assert echoed["headers"]["x-c"] == "3"
    outcome = proxy.session.control.compose("not a request")
    assert not outcome.ok and "METHOD URL HTTP/VERSION" in outcome.message


async def test_details_name_the_file_a_flow_was_imported_from(tmp_path: Path) -> None:
    source = build_store(tmp_path / "source.db")
    store = Store(source, readonly=True)
    export_flows(store, Query(), tmp_path / "shared.har", "har")
    store.close()
    opened = Store(tmp_path / "opened.db")
    import_files(opened, [tmp_path / "shared.har"])
    opened.close()
    app = ProxycapApp(tmp_path / "opened.db")
    async with app.run_test(size=(120, 36)) as pilot:
        await until(pilot, lambda: not app.view.loading and len(app.view) > 1)
        assert not app.check_action("compose", ())  # browsing: nothing to send requests through
        await pilot.press("enter", "3")
        await until(pilot, lambda: app.inspector.doc is not None and app.inspector.active_tab == "details")
        lines = app.inspector.lines("details").plain_lines()
        assert f"  Imported     {tmp_path / 'shared.har'}" in lines

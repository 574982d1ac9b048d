"""Clients onto the proxy, in the TUI: a refused device waits in the clients panel to be allowed (for this session, or
remembered) or denied; the status bar says where devices reach a proxy listening beyond loopback; the setup screen
shows a phone how to get on; programs on this machine are named as themselves. Real proxy, real origins, real clients
(httpx from loopback aliases playing devices, curl), driven with Textual's pilot."""

from __future__ import annotations

import asyncio
import contextlib
import io
import tomllib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from conftest import Proxy
from origins import JSON_BYTES, TestPKI
from rich.console import Console
from test_access import ALLOWED, DEVICE, CountingOrigin
from test_devices import GateOrigin
from test_tui_app import until
from textual.pilot import Pilot
from textual.widgets import Static

from proxycap.devices.lan import reachable_addresses
from proxycap.devices.setup import qr_lines
from proxycap.tui.app import ProxycapApp
from proxycap.tui.chrome.setup import SetupScreen

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def counted() -> Iterator[CountingOrigin]:
    with CountingOrigin() as server:
        yield server


@pytest.fixture
def gate_origin(pki: TestPKI) -> Iterator[GateOrigin]:
    with GateOrigin(pki) as server:
        yield server


def lan_address() -> str:
    """This machine's first LAN address (the test needs one: a proxy on 0.0.0.0 is reached there)."""
    addresses = reachable_addresses("0.0.0.0")
    if not addresses:
        pytest.skip("this machine has no LAN address")
    return addresses[0]


async def get(proxy: Proxy, source_ip: str, url: str) -> httpx.Response:
    """A request through the proxy from ``source_ip``, in a thread: the app's loop runs meanwhile."""

    def run() -> httpx.Response:
        with proxy.client(source_ip) as c:
            return c.get(url)

    return await asyncio.to_thread(run)


def access_of(app: ProxycapApp, ip: str) -> str | None:
    """How the clients panel lists ``ip``: "pending", "denied", "" (a client the proxy serves), None (not at all)."""
    row = app.clients.row(ip)
    return None if row is None else row.access


def shown(app: ProxycapApp, ip: str) -> str:
    """The panel's row for ``ip`` as drawn, its lines after the first run together (a long request is folded)."""
    first, *rest = app.clients.options.get_option(ip).prompt.plain.split("\n")
    return first + "\n" + "".join(line[1:] for line in rest)


def status(app: ProxycapApp) -> str:
    return str(app.status_bar.content)


def rendered(widget: Static) -> str:
    """A Static's content as text, wide enough that no line wraps."""
    console = Console(file=io.StringIO(), width=300, record=True)
    console.print(widget.content)
    return console.export_text()


@contextlib.asynccontextmanager
async def device_waiting(proxy: Proxy, url: str) -> AsyncIterator[tuple[ProxycapApp, Pilot]]:
    """The TUI on ``proxy`` once ``DEVICE`` asked for ``url``, was refused, and waits in the clients panel, which then
    has the keyboard with the device highlighted (waiting clients come first, below "All clients")."""
    app = ProxycapApp(proxy.store_path, proxy.session.control)
    async with app.run_test(size=(120, 36)) as pilot:
        response = await get(proxy, DEVICE, url)
        assert response.status_code == 403 and "proxycap refused this device" in response.text
        await until(pilot, lambda: access_of(app, DEVICE) == "pending", what="the device listed as pending")
        await pilot.press("b", "down")
        assert app.clients.highlighted_ip() == DEVICE
        yield app, pilot


async def test_a_refused_device_waits_in_the_panel_until_allowed(gated: Proxy, counted: CountingOrigin) -> None:
    async with device_waiting(gated, f"{counted.url}/json") as (app, pilot):
        row = app.clients.row(DEVICE)
        assert row is not None and (row.request, row.flows) == (f"GET {counted.url}/json", 0)
        assert "pending" in shown(app, DEVICE) and f"GET {counted.url}/json" in shown(app, DEVICE)
        assert "1 client waits" in status(app)
        assert counted.requests == 0

        await pilot.press("a")
        await until(pilot, lambda: access_of(app, DEVICE) == "" and app.status.waiting == 0, what="allowed")
        assert "client waits" not in status(app)
        response = await get(gated, DEVICE, f"{counted.url}/json")
        assert (response.status_code, response.content, counted.requests) == (200, JSON_BYTES, 1)
        await until(pilot, lambda: app.clients.row(DEVICE).flows == 1, what="the device's flow counted")
        assert access_of(app, DEVICE) == "" and "pending" not in shown(app, DEVICE)
        assert not Path(gated.session.config.settings).exists()  # allowed for this session only


async def test_allow_and_remember_keeps_the_device_in_the_settings_file(gated: Proxy, counted: CountingOrigin) -> None:
    async with device_waiting(gated, f"{counted.url}/json") as (app, pilot):
        await pilot.press("A")
        await until(pilot, lambda: access_of(app, DEVICE) == "", what="allowed")
        settings = Path(gated.session.config.settings)
        assert tomllib.loads(settings.read_text())["clients"]["allow"] == [DEVICE]
        assert (await get(gated, DEVICE, f"{counted.url}/json")).status_code == 200
        assert counted.requests == 1


async def test_deny_keeps_the_device_refused_until_allowed_after_all(gated: Proxy, counted: CountingOrigin) -> None:
    async with device_waiting(gated, f"{counted.url}/json") as (app, pilot):
        await pilot.press("d")
        await until(pilot, lambda: access_of(app, DEVICE) == "denied", what="denied")
        assert app.status.waiting == 0 and f"GET {counted.url}/json" in shown(app, DEVICE)
        response = await get(gated, DEVICE, f"{counted.url}/json")
        assert response.status_code == 403 and "It was denied in proxycap" in response.text
        assert counted.requests == 0
        assert access_of(app, DEVICE) == "denied"

        await pilot.press("a")  # the 403 page says the panel can still let it in
        await until(pilot, lambda: access_of(app, DEVICE) == "", what="allowed after all")
        assert (await get(gated, DEVICE, f"{counted.url}/json")).status_code == 200
        assert counted.requests == 1


async def test_the_status_bar_says_where_devices_reach_a_proxy_on_the_lan(proxy_with, tmp_path: Path) -> None:
    lan = lan_address()
    proxy = proxy_with(listen_host="0.0.0.0", allow=[ALLOWED])
    app = ProxycapApp(proxy.store_path, proxy.session.control)
    async with app.run_test(size=(240, 36)) as pilot:
        await until(pilot, lambda: f"LAN {lan}:{proxy.port}" in status(app), what="the LAN note")
        assert f"allowed: localhost, {ALLOWED}/32" in status(app)
        assert (await get(proxy, DEVICE, f"http://127.0.0.1:{proxy.port}/nowhere")).status_code in (403, 404)
        await until(pilot, lambda: app.status.waiting == 1, what="the device waiting")
        await app.run_action("allow_client")  # as the command palette runs it: the client that waited longest
        await until(pilot, lambda: f"{DEVICE} (this session)" in status(app), what="the note updated")


async def test_no_lan_note_on_loopback(gated: Proxy) -> None:
    app = ProxycapApp(gated.store_path, gated.session.control)
    async with app.run_test(size=(240, 36)) as pilot:
        await until(pilot, lambda: app.clients.access, what="who may use the proxy, loaded")
        assert app.status.lan is None and "LAN" not in status(app)


async def test_the_setup_screen_shows_the_setup_url_and_its_qr_code(proxy_with) -> None:
    lan = lan_address()
    proxy = proxy_with(listen_host="0.0.0.0")
    url = f"http://{lan}:{proxy.port}/"
    app = ProxycapApp(proxy.store_path, proxy.session.control)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("D")
        await until(pilot, lambda: isinstance(app.screen, SetupScreen), what="the setup screen")
        screen = app.screen
        assert screen.qr_payload == url  # what the QR code holds: the setup page, which needs no proxy set
        assert screen.query_one("#setup-qr", Static).content.plain == "\n".join(qr_lines(url))
        where = rendered(screen.query_one("#setup-where", Static))
        assert f"{lan}  port {proxy.port}" in where
        assert all(f"{url}{path}" in where for path in ("", "ca.crt", "ca.pem", "proxy.pac"))
        steps = rendered(screen.query_one("#setup-steps", Static))
        assert all(name in steps for name in ("iOS / iPadOS", "Android", "macOS", "Windows", "Linux"))
        assert "apps ignore user-installed CAs unless they opt in" in steps

        body = screen.query_one("#setup-body")
        assert body.max_scroll_y > 0  # 80x24 holds the QR code and the addresses; the steps scroll
        await pilot.press("end")
        await until(pilot, lambda: body.scroll_y == body.max_scroll_y, what="scrolled to the end")
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, SetupScreen), what="back to the flows")


async def test_the_setup_screen_says_when_no_device_can_reach_the_proxy(gated: Proxy) -> None:
    app = ProxycapApp(gated.store_path, gated.session.control)
    async with app.run_test(size=(120, 36)) as pilot:
        await app.run_action("device_setup")  # the palette's entry
        await until(pilot, lambda: isinstance(app.screen, SetupScreen), what="the setup screen")
        assert app.screen.qr_payload is None and not app.screen.query("#setup-qr")
        where = rendered(app.screen.query_one("#setup-where", Static))
        assert f"listens on 127.0.0.1:{gated.port} only" in where and "cannot reach it" in where
        assert "proxycap tui --listen-host 0.0.0.0" in where and "--allow" in where


async def test_a_local_program_is_named_as_itself(proxy: Proxy, gate_origin: GateOrigin) -> None:
    """curl on this machine, in the clients panel and in its flow's details. The origin holds its answer until the
    panel names curl: a program that has exited can no longer be looked up."""
    app = ProxycapApp(proxy.store_path, proxy.session.control)
    async with app.run_test(size=(120, 36)) as pilot:
        curl = asyncio.create_task(asyncio.to_thread(proxy.curl, f"{gate_origin.url}/gate"))
        try:
            named = lambda: (row := app.clients.row("127.0.0.1")) is not None and row.name.startswith("curl (")  # noqa: E731
            await until(pilot, named, timeout=60, what="the client named curl")
        finally:
            gate_origin.gate.set()
        assert "opened" in await curl
        await until(pilot, lambda: len(app.view) == 1 and app.view.row(0)["state"] != "live", what="the flow done")
        await pilot.press("enter", "3")
        await until(pilot, lambda: app.inspector.doc is not None and app.inspector.active_tab == "details")
        details = app.inspector.lines("details").plain_lines()
        assert any(line.split()[:2] == ["Process", "curl"] for line in details)

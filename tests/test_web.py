"""`proxycap web`: the proxy, and its inspector served to browsers behind a token. A real `proxycap web` process, a
real WebSocket client playing a browser tab (the TUI it gets is attached to the capture), and headless Chromium
where this machine has it."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets
from origins import OriginServer, TestPKI
from test_cli import PROXYCAP

pytestmark = pytest.mark.timeout(90)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


class Web:
    def __init__(self, tmp_path: Path, confdir: Path, pki: TestPKI) -> None:
        cmd = [*PROXYCAP, "web", "-p", "0", "--store", str(tmp_path / "web.db"),
               "--log-file", str(tmp_path / "web.log"), "--confdir", str(confdir),
               "--set", f"ssl_verify_upstream_trusted_ca={pki.ca_pem}"]  # fmt: skip
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        first = self.proc.stderr.readline()
        assert "proxy on 127.0.0.1:" in first, first + self.proc.stderr.read()
        self.proxy_port = int(first.split("proxy on 127.0.0.1:")[1].split(",")[0])
        self.url = self.proc.stderr.readline().split("the inspector: ")[1].strip()
        self.root = self.url.rsplit("/", 2)[0] + "/"


@pytest.fixture
def web(tmp_path: Path, confdir: Path, pki: TestPKI) -> Iterator[Web]:
    w = Web(tmp_path, confdir, pki)
    try:
        yield w
    finally:
        w.proc.send_signal(signal.SIGTERM)
        w.proc.communicate(timeout=30)


def test_the_page_needs_its_token(web: Web) -> None:
    page = httpx.get(web.url, timeout=10)
    assert page.status_code == 200
    ws = web.url.replace("http://", "ws://") + "ws"
    assert f'data-session-websocket-url="{ws}"' in page.text  # the tab's TUI is reached below the token too
    for path in ("", "ws", "static/js/textual.js", web.url.rsplit("/", 2)[1][:-1] + "/"):
        assert httpx.get(web.root + path, timeout=10).status_code == 403, path


async def test_a_tab_gets_a_tui_attached_to_the_capture(web: Web, origin: OriginServer) -> None:
    """As the page's script does: open the WebSocket, say the size; the TUI it runs shows this capture's flows."""
    async with httpx.AsyncClient(proxy=f"http://127.0.0.1:{web.proxy_port}") as client:
        assert (await client.get(f"{origin.url}/json")).status_code == 200
    ws_url = web.url.replace("http://", "ws://") + "ws?width=140&height=30"
    screen = b""
    async with websockets.connect(ws_url) as tab:
        await tab.send(json.dumps(["resize", {"width": 140, "height": 30}]))
        deadline = asyncio.get_running_loop().time() + 30
        while b"/json" not in screen and asyncio.get_running_loop().time() < deadline:
            with_data = await asyncio.wait_for(tab.recv(), 30)
            screen += with_data if isinstance(with_data, bytes) else with_data.encode()
    assert b"/json" in screen and b"req/s" in screen  # the flow, and the live status bar


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine (apt-get install chromium)")
def test_chromium_gets_the_page_with_the_token_and_403_without(web: Web, tmp_path: Path) -> None:
    def dump(url: str) -> str:
        args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                f"--user-data-dir={tmp_path / 'chromium'}", "--dump-dom", url]  # fmt: skip
        return subprocess.run(args, capture_output=True, text=True, timeout=60).stdout

    assert 'id="terminal"' in dump(web.url) and "textual.js" in dump(web.url)
    assert "needs the URL with its token" in dump(web.root)


def test_serving_beyond_loopback_warns(tmp_path: Path, confdir: Path) -> None:
    cmd = [*PROXYCAP, "web", "-p", "0", "--web-host", "0.0.0.0", "--store", str(tmp_path / "s.db"),
           "--log-file", str(tmp_path / "l.log"), "--confdir", str(confdir)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = [proc.stderr.readline() for _ in range(3)]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert "warning: the inspector is served on 0.0.0.0" in lines[2], lines

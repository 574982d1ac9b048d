"""The setup screen: a phone or another device onto the proxy. This machine's addresses with the port, a QR code that
opens the setup page (served by the proxy itself, so a device opens it before its proxy is set, and gets the CA
there), the CA and PAC URLs, who is allowed, and short steps per platform. When the proxy listens on loopback only,
it says that no device can reach it and how to start it so that they can.

What only the capture's process knows (its addresses, who is allowed) comes from ``Control.device_setup``; the
URLs, steps and QR code are ``devices.setup``'s, as for ``proxycap setup``.
"""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.style import Style
from rich.table import Table
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import HorizontalGroup, VerticalScroll
from textual.screen import Screen
from textual.widgets import Static

from proxycap.devices.lan import hostport
from proxycap.devices.setup import CA_CRT, CA_PEM, PAC, SetupInfo, qr_lines
from proxycap.tui.chrome.keybar import KeyBar

# segno draws the light modules as blocks: light on dark, whatever the terminal's colours, or phones can't read it.
QR_STYLE = Style(color="#ffffff", bgcolor="#000000")
LABEL = Style(bold=True)
URL = Style(color="cyan")
NOTE = Style(dim=True)
WARNING = Style(color="yellow", bold=True)
HEADING = Style(bold=True, underline=True)
BESIDE = 44  # columns the text beside the QR code needs at least; narrower, it goes below


def qr_text(payload: str) -> Text:
    """``payload`` as a QR code, one terminal cell per two modules (``devices.setup.qr_lines``), quiet zone included."""
    return Text("\n".join(qr_lines(payload)), QR_STYLE, no_wrap=True, end="")


def where(info: SetupInfo, policy: str, proxyauth: bool) -> Group:
    """Where devices reach the proxy and what to open there, and who is allowed; first, when no device can reach it,
    why, and how to start it so that they can."""
    parts: list[RenderableType] = []
    fields = Table.grid(padding=(0, 2))
    fields.add_column(style=LABEL, no_wrap=True)
    fields.add_column(overflow="fold")  # a URL longer than the column goes on, never cut
    if info.reachable:
        scan = "Scan the QR code with the device's camera: it opens the setup page (the CA, these steps) at once."
        parts += [Text(scan, NOTE), Text()]
        fields.add_row("Proxy", Text.assemble((info.host, URL), f"  port {info.port}"))
        for other in info.addresses[1:]:
            fields.add_row("", f"also {hostport(other, info.port)}")
    else:
        port = f" -p {info.port}" if info.port != 8080 else ""
        parts += [
            Text(
                f"⚠ proxycap listens on {hostport(info.listen_host, info.port)} only: a phone or another device "
                "cannot reach it.",
                WARNING,
            ),
            Text("Quit proxycap and start it again listening on the LAN, allowing your network, such as:"),
            Text(f"    proxycap tui --listen-host 0.0.0.0{port} --allow 192.168.1.0/24", URL),
            Text(
                "or leave out --allow and allow each device as it comes, in the clients panel. Programs on this "
                'machine need no change: proxycap run -- CMD, eval "$(proxycap env)", proxycap browser.',
                NOTE,
            ),
            Text(),
        ]
        fields.add_row("Proxy", Text.assemble((info.host, URL), f"  port {info.port}  (this machine only)"))
    fields.add_row("Setup page", Text(info.setup_url, URL))
    fields.add_row("CA (phones)", Text(info.url(CA_CRT), URL))  # DER, which phones and Windows install
    fields.add_row("CA (PEM)", Text(info.url(CA_PEM), URL))
    fields.add_row("Auto proxy", Text(info.url(PAC), URL))  # the PAC file, for a device's "automatic proxy" setting
    fields.add_row("Allowed", policy)
    fields.add_row("", Text("others wait in the clients panel (b): a allows, A remembers", NOTE))
    if proxyauth:
        fields.add_row("Credentials", "the proxy asks for a user name and password (--proxyauth): enter them too")
    return Group(*parts, fields)


def steps(info: SetupInfo) -> Group:
    """The steps per platform, numbered, each wrapped under its own start."""
    parts: list[RenderableType] = []
    for platform, platform_steps in info.steps():
        numbered = Table.grid(padding=(0, 1))
        numbered.add_column(justify="right", no_wrap=True)
        numbered.add_column(overflow="fold")
        for i, step in enumerate(platform_steps, 1):
            numbered.add_row(f"  {i}.", step)
        parts += [Text(platform, HEADING), numbered, Text()]
    return Group(*parts)


class SetupScreen(Screen[None]):
    """Built from ``Control.device_setup``'s answer. ``qr_payload`` is what the QR code holds (None: no QR code, as no
    device can reach the proxy)."""

    BINDINGS = [Binding("escape,q,D", "dismiss", "Close")]

    def __init__(self, setup: dict[str, Any]) -> None:
        super().__init__()
        self.info = SetupInfo(setup["listen_host"], setup["port"], tuple(setup["addresses"]))
        self.policy: str = setup["policy"]
        self.proxyauth: bool = setup["proxyauth"]
        self.qr_payload = self.info.qr_text if self.info.reachable else None
        self._qr = qr_text(self.qr_payload) if self.qr_payload is not None else None
        self._qr_width = len(self._qr.plain.split("\n", 1)[0]) if self._qr is not None else 0

    def compose(self) -> ComposeResult:
        yield Static("Set up a device — on its Wi-Fi network, with this machine as its proxy", classes="screen-title")
        with VerticalScroll(id="setup-body"):
            with HorizontalGroup(id="setup-top"):
                if self._qr is not None:
                    yield Static(self._qr, id="setup-qr")
                yield Static(where(self.info, self.policy, self.proxyauth), id="setup-where")
            yield Static(steps(self.info), id="setup-steps")
        yield KeyBar()

    def on_mount(self) -> None:
        self.query_one("#setup-body").focus()

    def on_resize(self, event: events.Resize) -> None:
        """The text beside the QR code on a wide screen, below it on a narrow one."""
        wide = self._qr is None or event.size.width >= self._qr_width + BESIDE
        self.query_one("#setup-top").set_class(not wide, "-narrow")

"""Who may use the proxy, in the UI: a refused client is announced as it comes and listed in the clients panel as
pending, to allow for this session (``a``), allow and remember (``A``) or deny (``d``); the status bar counts those
waiting and, while the proxy listens beyond loopback, says where devices reach it and who is allowed.

What the capture says on the feed (``ClientRefusedEvent``, ``AccessChanged``) makes the app ask the control API who
waits and who is allowed (``Control.client_access``), in a worker; nothing polls.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from proxycap.capture.bus import AccessChanged, ClientRefusedEvent
from proxycap.tui.actions import Actions
from proxycap.tui.chrome.clients import ClientsPanel
from proxycap.tui.chrome.status import Status
from proxycap.tui.live import Live

ANNOUNCE_SECONDS = 10  # how long the toast about a refused client stays


class AccessApp(Protocol):
    """What ``ClientAccess`` uses of the app."""

    readonly: bool
    clients: ClientsPanel
    status: Status
    actions: Actions
    live: Live
    notify: Callable[..., None]


class ClientAccess:
    def __init__(self, app: AccessApp) -> None:
        self.app = app

    def refresh(self) -> None:
        """Ask again who waits and who is allowed (the answer comes as ``AccessLoaded``)."""
        if not self.app.readonly:
            self.app.actions.load_access()

    def heard(self, events: Sequence[ClientRefusedEvent | AccessChanged]) -> None:
        """Events from the feed: refused clients are announced at once (many at a time in one note), and the panel
        and status bar follow."""
        refused = [ev for ev in events if isinstance(ev, ClientRefusedEvent)]
        if refused:
            what = f"{refused[0].client_ip} was refused: {refused[0].request}"
            if len(refused) > 1:
                what = f"{len(refused)} clients were refused: {', '.join(ev.client_ip for ev in refused[:5])}"
                what += ", …" if len(refused) > 5 else ""
            self.app.notify(
                f"{what}\nb: clients panel, then a: allow, A: allow always, d: deny",
                title="Waiting to be allowed",
                severity="warning",
                timeout=ANNOUNCE_SECONDS,
                markup=False,  # a URL may hold brackets
            )
        self.refresh()

    def loaded(self, access: dict[str, Any]) -> None:
        self.app.clients.set_access(access)
        status = self.app.status
        status.lan, status.waiting = access["note"], len(access["pending"])
        self.app.live.show_status()

    def target(self) -> str | None:
        """The client to allow or deny: the one highlighted in the clients panel while it has the keyboard, else the
        one that has waited longest (None, said to the user, when there is none)."""
        panel = self.app.clients
        if panel.has_focus_within and (ip := panel.highlighted_ip()) is not None:
            return ip
        if waiting := panel.waiting():
            return waiting[0]
        self.app.notify("no client waits to be allowed: pick one in the clients panel (b)", severity="warning")
        return None

    def allow(self, remember: bool) -> None:
        if (ip := self.target()) is not None:
            self.app.actions.allow_client(ip, remember)

    def deny(self) -> None:
        if (ip := self.target()) is not None:
            self.app.actions.deny_client(ip)

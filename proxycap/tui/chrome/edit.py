"""The request editor: a captured request as text, or a request written from scratch (the composer), sent as a new
flow with ctrl+s (see ``control.editing``)."""

from __future__ import annotations

from mitmproxy import http
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static, TextArea

from proxycap.control.editing import EditError, edited


class EditScreen(ModalScreen[str | None]):
    """Returns the edited request's text once it reads as a request, or None when cancelled; unreadable text keeps the
    editor open with the reason."""

    BINDINGS = [Binding("ctrl+s", "send", "Send", priority=True), Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, seq: int | None, request: http.Request | None, text: str) -> None:
        """Flow ``seq``'s ``request`` as ``text``; no flow and no request: the composer's template."""
        super().__init__()
        self.seq = seq
        self.request = request
        self.text = text

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog editor"):
            what = "Write a request" if self.seq is None else f"Edit flow #{self.seq}'s request"
            yield Static(f"{what}, then ctrl+s sends it as a new flow; esc cancels")
            yield TextArea(self.text, soft_wrap=True, show_line_numbers=False)
            yield Static(id="edit-error")

    def action_send(self) -> None:
        text = self.query_one(TextArea).text
        try:
            edited(self.request, text)
            self.dismiss(text)
        except EditError as e:
            self.query_one("#edit-error", Static).update(Text(str(e), style="red"))

"""The editor: a message as text, sent on through the control API by the keys of the screen that uses it.

One editor for every text the user edits and sends: a captured request sent as a new flow (``e``), a flow stopped at
a breakpoint (Execute, Continue, Abort), a rule (TOML). Each use is a subclass that binds its own keys (``tui.keys``)
to ``submit``: the call runs in a worker, and text that does not read as what it should be keeps the editor open with
the reason (``CallScreen``).
"""

from __future__ import annotations

from collections.abc import Callable

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static, TextArea

from proxycap.control.api import Outcome
from proxycap.tui import keys
from proxycap.tui.chrome.calling import CallScreen
from proxycap.tui.chrome.keybar import KeyBar

Send = Callable[[str, str], Outcome]  # (the key's action, the text) → what became of it; called in a worker


class EditScreen(CallScreen):
    def __init__(self, title: str, text: str, send: Send, note: str = "", read_only: bool = False) -> None:
        super().__init__()
        self.title_text = title
        self.text = text
        self.send = send
        self.note = note
        self.read_only = read_only

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog editor"):
            yield Static(self.title_text, id="edit-title", markup=False)
            yield TextArea(self.text, soft_wrap=True, show_line_numbers=False, read_only=self.read_only)
            yield Static(self.note, id="edit-note", markup=False)
            yield Static(id="call-error")
        yield KeyBar()

    def action_submit(self, action: str) -> None:
        text, send = self.query_one(TextArea).text, self.send
        self.call(lambda: send(action, text))


class RequestEditScreen(EditScreen):
    """A captured request (``seq``), or one written from scratch (none: the composer), sent as a new flow."""

    BINDINGS = keys.bindings("request-editor")

    def __init__(self, seq: int | None, text: str, send: Send) -> None:
        what = "Write a request" if seq is None else f"Edit flow #{seq}'s request"
        super().__init__(f"{what}, then ctrl+s sends it as a new flow; esc cancels", text, send)

"""Dialogs whose action is a control API call: made in a worker, the dialog waits for its outcome."""

from __future__ import annotations

from collections.abc import Callable

from rich.text import Text
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Static

from proxycap.control.api import Outcome


class CallScreen(ModalScreen[Outcome | None]):
    """Closes with the outcome when the call went well; otherwise stays open with the reason in its ``#call-error``
    line, and what the user typed as it was. Returns None when closed without a call."""

    class Done(Message):
        def __init__(self, outcome: Outcome) -> None:
            super().__init__()
            self.outcome = outcome

    busy = False  # a call is under way: another waits for its outcome

    def call(self, call: Callable[[], Outcome]) -> None:
        if self.busy:
            return
        self.busy = True
        self.run_worker(lambda: self.post_message(self.Done(call())), thread=True, exit_on_error=False)

    def on_call_screen_done(self, message: Done) -> None:
        self.busy = False
        if message.outcome.ok:
            self.dismiss(message.outcome)
        else:
            self.show_error(message.outcome.message)

    def show_error(self, reason: str) -> None:
        self.query_one("#call-error", Static).update(Text(reason, style="red"))

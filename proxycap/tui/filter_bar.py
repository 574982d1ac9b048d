"""The filter bar: a mitmproxy filter expression (or plain URL text), applied as you type, with history.

The bar only collects text and shows state (error, progress, count); the app decides what the text means
and tells the bar how it went.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.timer import Timer
from textual.widgets import Input, Static

DEBOUNCE = 0.3  # seconds of no typing before the filter is applied
PLACEHOLDER = "filter: text in the URL, or an expression like ~d example.com & ~c 500 (? for help)"


class HistoryInput(Input):
    """An Input whose up/down keys walk through earlier filters."""

    BINDINGS = [
        Binding("up", "history(-1)", "Older filter", show=False),
        Binding("down", "history(1)", "Newer filter", show=False),
    ]

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.history: list[str] = []
        self._position: int | None = None

    def remember(self, value: str) -> None:
        value = value.strip()
        if value:
            if value in self.history:
                self.history.remove(value)
            self.history.append(value)
        self._position = None

    def action_history(self, step: int) -> None:
        if not self.history:
            return
        pos = len(self.history) if self._position is None else self._position
        pos = max(0, min(len(self.history), pos + step))
        self._position = pos
        self.value = self.history[pos] if pos < len(self.history) else ""
        self.cursor_position = len(self.value)


class FilterBar(Horizontal):
    class Changed(Message):
        """The user paused typing (or pressed enter: ``submitted``): apply ``text`` (empty: no filter)."""

        def __init__(self, text: str, submitted: bool) -> None:
            super().__init__()
            self.text = text
            self.submitted = submitted

    class Done(Message):
        """Enter or escape: give the keyboard back to the list."""

    BINDINGS = [Binding("escape", "done", "Back to the list", show=False)]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._timer: Timer | None = None

    def compose(self) -> ComposeResult:
        yield Static("/", id="filter-prompt")
        yield HistoryInput(placeholder=PLACEHOLDER, id="filter-input", select_on_focus=False)
        yield Static(id="filter-status")

    @property
    def input(self) -> HistoryInput:
        return self.query_one(HistoryInput)

    @property
    def value(self) -> str:
        return self.input.value

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(DEBOUNCE, self._apply)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._apply(submitted=True)

    def _apply(self, submitted: bool = False) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        self.post_message(self.Changed(self.value, submitted))

    def clear(self) -> None:
        """Empty the bar and apply that at once: no typing debounce for a deliberate reset."""
        self.input.value = ""
        self._apply()

    def action_done(self) -> None:
        self.post_message(self.Done())

    def show(self, text: str | Text, error: bool = False) -> None:
        """Status on the right: a count, progress, or (``error``) why the expression was not applied."""
        status = self.query_one("#filter-status", Static)
        status.set_class(error, "-error")
        status.update(text)
        status.tooltip = str(text) if error else None

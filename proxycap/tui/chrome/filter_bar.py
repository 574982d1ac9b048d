"""The filter bar: a mitmproxy filter expression (or plain URL text), applied as you type, with history.

The bar only collects text and shows state (error, progress, count); the app decides what the text means
and tells the bar how it went.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.geometry import Size
from textual.message import Message
from textual.reactive import Reactive
from textual.timer import Timer
from textual.widgets import Input, Static

from proxycap.paths import private_dir

DEBOUNCE = 0.3  # seconds of no typing before the filter is applied
HISTORY_SIZE = 100  # filters kept in the history file
PLACEHOLDER = "filter: text in the URL, or an expression like ~d example.com & ~c 500 (? for help)"


def load_history(path: Path | None) -> list[str]:
    """Filters from earlier sessions, oldest first; none if the file is missing or unreadable."""
    if path is None:
        return []
    try:
        return [line for line in path.read_text("utf-8", errors="replace").splitlines() if line.strip()]
    except OSError:
        return []


def save_history(path: Path | None, history: list[str]) -> None:
    """Keep the newest filters, private to the user (they name hosts and paths). A failure costs only the file."""
    if path is None:
        return
    try:
        private_dir(path.parent)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with open(fd, "w", encoding="utf-8") as f:
            f.write("".join(f"{line}\n" for line in history[-HISTORY_SIZE:]))
    except OSError as e:
        logging.getLogger(__name__).warning(f"cannot save the filter history to {path}: {e.strerror or e}")


class HistoryInput(Input):
    """An Input whose up/down keys walk through earlier filters, kept across sessions in ``history_file``."""

    BINDINGS = [
        Binding("up", "history(-1)", "Older filter", show=False),
        Binding("down", "history(1)", "Newer filter", show=False),
    ]
    # Input resizes its scrollable width to its text on every change, and Widget's reactive then lays out the
    # whole screen: each key typed, and clearing the filter, cost a reflow. The field is sized by CSS.
    virtual_size: Reactive[Size] = Reactive(Size(0, 0))

    def __init__(self, history_file: Path | None = None, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.history_file = history_file
        self.history = load_history(history_file)
        self._position: int | None = None

    def remember(self, value: str) -> None:
        value = value.strip()
        if value and value.splitlines() == [value]:
            if value in self.history:
                self.history.remove(value)
            self.history.append(value)
            save_history(self.history_file, self.history)
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
        """The user paused typing: apply ``text`` (empty: no filter). Enter is the app's key (it submits)."""

        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    class Done(Message):
        """Escape: give the keyboard back to the list."""

    BINDINGS = [Binding("escape", "done", "Back to the list", show=False)]

    def __init__(self, history_file: Path | None = None, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.history_file = history_file
        self._timer: Timer | None = None
        self._shown: tuple[str, bool] = ("", False)

    def compose(self) -> ComposeResult:
        yield Static("/", id="filter-prompt")
        yield HistoryInput(self.history_file, placeholder=PLACEHOLDER, id="filter-input", select_on_focus=False)
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

    def take(self) -> str:
        """The text, to apply now: the pause in typing no longer needs waiting for."""
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        return self.value

    def _apply(self) -> None:
        self.post_message(self.Changed(self.take()))

    def clear(self) -> str:
        """Empty the field for the caller to apply at once (the field and the list in one frame), without the
        field's change event: its typing pause would apply the same empty filter again a moment later."""
        with self.input.prevent(Input.Changed):
            self.input.value = ""
        return self.take()

    def action_done(self) -> None:
        self.post_message(self.Done())

    def show(self, text: str, error: bool = False) -> None:
        """Status on the right: a count, progress, or (``error``) why the expression was not applied."""
        shown = (text, error)
        if shown == self._shown:  # an update reflows the screen (the status is as wide as its text)
            return
        self._shown = shown
        status = self.query_one("#filter-status", Static)
        status.set_class(error, "-error")
        status.update(text)
        status.tooltip = text if error else None

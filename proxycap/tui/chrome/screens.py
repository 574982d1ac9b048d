"""Screens over the main one: help, event log, rename a client, confirm a deletion."""

from __future__ import annotations

from collections.abc import Iterable

from mitmproxy import flowfilter
from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Input, Static

from proxycap.query import fmt
from proxycap.tui.chrome.keybar import KeyBar
from proxycap.tui.keys import KEYS
from proxycap.tui.textlines import TextLines

HEADING = Style(bold=True, underline=True)
KEY = Style(bold=True, color="cyan")
LEVEL_STYLES = {
    "ERROR": Style(color="red", bold=True),
    "CRITICAL": Style(color="red", bold=True),
    "WARNING": Style(color="yellow"),
}

EventRow = tuple[float, str, str, "str | None", "str | None"]  # ts, level, message, client_ip, flow_id


def help_lines() -> list[Text]:
    lines: list[Text] = []
    sections: dict[str, list[Text]] = {}
    # Each column as wide as its widest entry and a gap: an operator longer than a fixed width ran into its text.
    width = max(len(k.shown_keys) for k in KEYS) + 2
    for k in KEYS:
        sections.setdefault(k.section, []).append(Text.assemble((f"  {k.shown_keys:<{width}}", KEY), k.help))
    for name, entries in sections.items():
        lines += [Text(name, HEADING), *entries, Text()]
    lines.append(Text("Filter expressions (mitmproxy syntax)", HEADING))
    lines.append(Text("  Text without ~ ! & | ( matches anywhere in the URL. Combine with & | ! and ( )."))
    width = max(len(op) for op, _ in flowfilter.help) + 2
    lines += [Text.assemble((f"  {op:<{width}}", KEY), text) for op, text in flowfilter.help]
    lines += [Text(), Text("Mouse: click a flow to select it, a column title to sort, a client to filter.")]
    return lines


def event_lines(events: Iterable[EventRow]) -> list[Text]:
    return [
        Text.assemble(
            (fmt.clock(ts) + " ", Style(dim=True)),
            (f"{level:<8}", LEVEL_STYLES.get(level, Style())),
            (f"{client} " if client else "", Style(color="cyan")),
            message,
        )
        for ts, level, message, client, _flow in events
    ]


class HelpScreen(Screen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        yield Static("proxycap — keys and filters", classes="screen-title")
        yield TextLines(help_lines(), id="help-text")
        yield KeyBar()


class EventLogScreen(Screen[None]):
    """Stored events plus those arriving while it is open (the app forwards them)."""

    BINDINGS = [Binding("escape,q,l", "dismiss", "Close"), Binding("ctrl+f", "search", "Search")]

    def __init__(self, events: list[EventRow]) -> None:
        super().__init__()
        self._events = events

    def compose(self) -> ComposeResult:
        yield Static("Event log — proxy errors, TLS failures, warnings", classes="screen-title")
        yield TextLines(id="event-lines")
        yield Input(placeholder="search", id="event-search", classes="search")
        yield KeyBar()

    def on_mount(self) -> None:
        lines = self.query_one(TextLines)
        lines.append_lines(event_lines(self._events) or [Text("no events yet", Style(dim=True, italic=True))])
        lines.jump(lines.max_scroll_y)
        lines.focus()

    def add(self, events: list[EventRow]) -> None:
        self.query_one(TextLines).append_lines(event_lines(events))

    def action_search(self) -> None:
        box = self.query_one("#event-search", Input)
        box.add_class("-visible")
        box.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.query_one(TextLines).search(event.value)
        self.query_one(TextLines).focus()


class RenameScreen(ModalScreen[str | None]):
    """Returns the new label ("" removes it), or None when cancelled."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, ip: str, label: str) -> None:
        super().__init__()
        self.ip = ip
        self.label = label

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(f"Name for client {self.ip} (empty: automatic name)")
            yield Input(value=self.label, id="rename-input")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip())


class ConfirmScreen(ModalScreen[bool]):
    BINDINGS = [Binding("y", "dismiss(True)", "Yes"), Binding("n,escape", "dismiss(False)", "No")]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self.question)
            with Horizontal(classes="buttons"):
                yield Button("Yes (y)", variant="error", id="yes")
                yield Button("No (n)", id="no")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

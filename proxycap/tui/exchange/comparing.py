"""Two flows compared (``=``): ``query.compare``'s comparison as lines, A above B, and the screen that shows them
(scrollable, searchable). The flows are loaded and compared in a worker (``compare_flows``)."""

from __future__ import annotations

import json
from typing import Any

from mitmproxy import http
from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Input, Static

from proxycap.query.compare import BodyComparison, Comparison, HeaderChange, JsonChange, compare
from proxycap.storage.store import Store
from proxycap.tui.chrome.keybar import KeyBar
from proxycap.tui.textlines import TextLines

SECTION = Style(bold=True, underline=True)
A_SIDE = Style(color="red")
B_SIDE = Style(color="green")
CHANGED = Style(color="yellow", bold=True)
DIM = Style(dim=True)
HUNK = Style(color="cyan")
SHORT = 60  # characters: a change whose two values fit this reads on one line (old → new)
VALUE_LIMIT = 500  # characters of a JSON value shown (a whole subtree added may be large)
DIFF_LINES = 5000  # lines of a unified diff shown
LEGEND = "~ changed · + only in B · - only in A · ctrl+f search"


class CompareReady(Message):
    """Flows ``a`` and ``b`` compared, as lines (``problem``: why they could not be, and ``lines`` is empty)."""

    def __init__(self, a: int, b: int, lines: list[Text], problem: str | None = None) -> None:
        super().__init__()
        self.a = a
        self.b = b
        self.lines = lines
        self.problem = problem


def compare_flows(store: Store, a: int, b: int) -> CompareReady:
    """Flow ``a`` against flow ``b``. Run it in a worker."""
    flows = store.load_flow(a), store.load_flow(b)
    for seq, flow in zip((a, b), flows, strict=True):
        if not isinstance(flow, http.HTTPFlow):
            why = "it is not stored in full (still in flight, or only its summary was kept)"
            return CompareReady(a, b, [], f"flow #{seq} cannot be compared: {why}")
    return CompareReady(a, b, comparison_lines(compare(*flows)))


def comparison_lines(c: Comparison) -> list[Text]:
    """The comparison, section by section: what is the same in a line, what differs with A above B."""
    lines: list[Text] = []
    for name, (a, b) in (("Request", c.request_line), ("Status", c.status)):
        if a == b:
            lines += [Text.assemble((name, SECTION), (" the same", DIM)), Text(f"  {a}"), Text()]
        else:
            lines += [Text(name, SECTION), *_sides("", a, b), Text()]
    lines += _headers("Request headers", c.request_headers)
    lines += _headers("Response headers", c.response_headers)
    lines += _body("Request body", c.request_body)
    lines += _body("Response body", c.response_body)
    return lines


def _sides(name: str, a: str, b: str, width: int = 0) -> list[Text]:
    """Value ``a`` above value ``b``, each marked with its flow."""
    return [
        Text.assemble(("  A ", A_SIDE), (f"{name:<{width}} ", CHANGED) if name else "", (a, A_SIDE)),
        Text.assemble(("  B ", B_SIDE), (" " * (width + 1)) if name else "", (b, B_SIDE)),
    ]


def _change(sign: str, name: str, old: str | None, new: str | None, width: int) -> list[Text]:
    """One changed, added (+) or removed (-) value under its name."""
    if old is not None and new is not None:
        if len(old) + len(new) > SHORT:
            return _sides(name, old, new, width)
        return [Text.assemble(("  ~ ", CHANGED), (f"{name:<{width}} ", CHANGED), (old, A_SIDE), " → ", (new, B_SIDE))]
    style = B_SIDE if new is not None else A_SIDE
    return [Text.assemble((f"  {sign} ", style), (f"{name:<{width}} ", style), (new if new is not None else old) or "")]


def _counted(name: str, changed: int, added: int, removed: int, note: str | None = None) -> Text:
    counts = [f"{n} {what}" for n, what in ((changed, "changed"), (added, "added"), (removed, "removed")) if n]
    extra = "; ".join(p for p in (", ".join(counts), note) if p)
    return Text.assemble((name, SECTION), (f" {extra}", DIM) if extra else "")


def _headers(name: str, changes: tuple[HeaderChange, ...]) -> list[Text]:
    if not changes:
        return [Text.assemble((name, SECTION), (" the same", DIM)), Text()]
    added = sum(h.old is None for h in changes)
    removed = sum(h.new is None for h in changes)
    lines = [_counted(name, len(changes) - added - removed, added, removed)]
    width = min(30, max(len(h.name) for h in changes))
    for h in changes:
        lines += _change("+" if h.old is None else "-", h.name, h.old, h.new, width)
    return [*lines, Text()]


def _value(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= VALUE_LIMIT else f"{text[:VALUE_LIMIT]}… ({len(text):,} characters)"


def _body(name: str, body: BodyComparison) -> list[Text]:
    if body.kind in ("same", "missing", "binary"):
        return [_counted(name, 0, 0, 0, _plain_note(body)), Text()]
    if body.kind == "text":
        return [_counted(name, 0, 0, 0, f"text, {body.note}"), *_unified(body.unified), Text()]
    lines = [_counted(name, len(body.changed), len(body.added), len(body.removed), f"JSON, {body.note}")]
    changes: list[JsonChange] = [*body.changed, *body.added, *body.removed]
    width = min(30, max(len(c.path) for c in changes))
    for change in body.changed:
        lines += _change("~", change.path, _value(change.old), _value(change.new), width)
    for change in body.added:
        lines += _change("+", change.path, None, _value(change.new), width)
    for change in body.removed:
        lines += _change("-", change.path, _value(change.old), None, width)
    lines.append(Text("  Pretty-printed, keys sorted, as a unified diff:", DIM))
    return [*lines, *_unified(body.unified), Text()]


def _plain_note(body: BodyComparison) -> str:
    """What a comparison without changes to list says: the same, binary, or missing on one side."""
    note = body.note or ""
    if body.kind == "binary":
        return f"binary: {note}"
    if body.kind == "same" and not note.startswith("the same"):
        return f"the same ({note})" if note else "the same"
    return note


def _unified(diff: tuple[str, ...]) -> list[Text]:
    lines = []
    for line in diff[:DIFF_LINES]:
        if line.startswith(("---", "+++")):
            style = Style(bold=True)
        elif line.startswith("@@"):
            style = HUNK
        else:
            style = {"+": B_SIDE, "-": A_SIDE}.get(line[:1], Style())
        lines.append(Text(f"  {line}", style))
    if len(diff) > DIFF_LINES:
        lines.append(Text(f"  … {len(diff) - DIFF_LINES:,} more lines", DIM))
    return lines


class CompareScreen(Screen[None]):
    """Flow A above flow B, section by section; ctrl+f searches, n and N go from match to match."""

    BINDINGS = [
        Binding("escape,q,equals_sign", "close", "Close", key_display="esc"),
        Binding("ctrl+f", "search", "Search"),
        Binding("n", "next_match(1)", "Next match"),
        Binding("N", "next_match(-1)", "Previous match"),
    ]

    def __init__(self, a: int, b: int, lines: list[Text]) -> None:
        super().__init__()
        self.a, self.b = a, b
        self._lines = lines

    def compose(self) -> ComposeResult:
        yield Static(self._title(), id="compare-title", classes="screen-title")
        yield TextLines(self._lines, id="compare-lines")
        yield Input(placeholder="search (enter: next match, esc: close)", id="compare-search", classes="search")
        yield KeyBar()

    def _title(self, where: str = "") -> Text:
        return Text.assemble(
            "Compare ", (f"#{self.a} (A)", A_SIDE), " with ", (f"#{self.b} (B)", B_SIDE), (f"  {where or LEGEND}", DIM)
        )

    def on_mount(self) -> None:
        self.query_one(TextLines).focus()

    def action_close(self) -> None:
        """Esc leaves the search first (its matches stay marked), then the screen."""
        search = self.query_one("#compare-search", Input)
        if search.has_class("-visible"):
            search.remove_class("-visible")
            self.query_one(TextLines).focus()
        else:
            self.dismiss()

    def action_search(self) -> None:
        search = self.query_one("#compare-search", Input)
        search.add_class("-visible")
        search.focus()

    def action_next_match(self, step: int) -> None:
        lines = self.query_one(TextLines)
        lines.next_match(step)
        self._where(lines)

    def _where(self, lines: TextLines) -> None:
        self.query_one("#compare-title", Static).update(self._title(lines.where))

    def on_input_changed(self, event: Input.Changed) -> None:
        lines = self.query_one(TextLines)
        count = lines.search(event.value)
        event.input.set_class(bool(event.value) and not count, "-error")
        self._where(lines)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Enter: the next match, and the keyboard back to the text, where n and N go on from match to match."""
        self.action_next_match(1)
        self.query_one(TextLines).focus()

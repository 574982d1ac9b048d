"""Breakpoints: the dialog that sets one (``i`` on a flow, or a typed expression), the screen that lists them (``I``).

A breakpoint is a mitmproxy filter expression and where to stop the flows it matches (``Control.add_breakpoint``).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Checkbox, Input, RadioButton, RadioSet, Static

from proxycap.tui import keys
from proxycap.tui.chrome.calling import CallScreen
from proxycap.tui.traffic.table import TableScreen

if TYPE_CHECKING:
    from proxycap.tui.traffic.controller import Traffic

_SPECIAL = re.compile(r"([.^$*+?{}\[\]\\|()])")  # what a regex reads as more than itself
_WORD = re.compile(r"[^\s\"'()]+")  # what mitmproxy's filter language reads as one unquoted word


def _word(text: str) -> str:
    """``text`` as a regex matching just it, as one word of a filter expression (quoted if need be)."""
    regex = _SPECIAL.sub(r"\\\1", text)
    return regex if _WORD.fullmatch(regex) else '"' + regex.replace("\\", "\\\\").replace('"', '\\"') + '"'


def prefill(row: dict[str, Any]) -> str:
    """A filter expression for a flow's host and path (without its query): ``~d api\\.example\\.com & ~u /v1/users``."""
    path = (row["path"] or "/").split("?", 1)[0]
    host = f"~d {_word(row['host'] or '')}"
    return f"{host} & ~u {_word(path)}" if path != "/" else host


WHERE = {"request": (True, False), "response": (False, True), "both": (True, True)}


class BreakpointDialog(CallScreen):
    """A new breakpoint: its expression (prefilled from a flow, editable), where to stop, whose flows, once or not."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, traffic: Traffic, expression: str, client: str | None) -> None:
        super().__init__()
        self.traffic = traffic
        self.expression = expression
        self.client = client  # the selected flow's: offered as "only this client"

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog breakpoint"):
            yield Static("Breakpoint: stop the flows matching a filter expression (~d domain, ~u URL, ~m method, …)")
            yield Input(self.expression, placeholder="filter expression (empty: every flow)", id="bp-filter")
            with RadioSet(id="bp-where"):
                yield RadioButton("before the request goes upstream", value=True, id="request")
                yield RadioButton("before the response reaches the client", id="response")
                yield RadioButton("both", id="both")
            if self.client:
                yield Checkbox(f"only flows from {self.client}", id="bp-only")
            else:
                yield Input(placeholder="only flows from this client IP (empty: every client)", id="bp-client")
            yield Checkbox("once: stop the next match only", id="bp-once")
            yield Static(id="call-error")
            with Horizontal(classes="buttons"):
                yield Button("Add (enter)", variant="primary", id="add")
                yield Button("Cancel (esc)", id="cancel")

    def on_input_submitted(self) -> None:
        self.add()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "add":
            self.add()
        else:
            self.dismiss(None)

    def add(self) -> None:
        expression = self.query_one("#bp-filter", Input).value.strip()
        pressed = self.query_one(RadioSet).pressed_button
        request, response = WHERE[pressed.id if pressed is not None and pressed.id else "request"]
        if self.client:
            client = self.client if self.query_one("#bp-only", Checkbox).value else None
        else:
            client = self.query_one("#bp-client", Input).value.strip() or None
        once = self.query_one("#bp-once", Checkbox).value
        control = self.traffic.control
        assert control is not None
        self.call(lambda: control.add_breakpoint(expression, request, response, client, once))


def stops(bp: dict[str, Any]) -> str:
    return "both" if bp["request"] and bp["response"] else "request" if bp["request"] else "response"


class BreakpointsScreen(TableScreen):
    """The armed breakpoints, kept current (a "once" breakpoint goes when it stops a flow)."""

    BINDINGS = keys.bindings("breakpoints")
    heading = "Breakpoints: the flows they match stop (⏸) until you send them on"
    columns = ("#", "Stops", "Filter", "Client", "Once")

    def load(self) -> None:
        bps = self.traffic.breakpoints
        self.table.set_rows(
            [
                (
                    str(bp["id"]),
                    (
                        f"#{bp['id']}",
                        stops(bp),
                        bp["filter"] or "(every flow)",
                        bp["client"] or "",
                        "once" * bp["once"],
                    ),
                )
                for bp in bps
            ]
        )
        note = (
            "n: add one · d: remove" if bps else "No breakpoints. n adds one; i on a flow, one for its host and path."
        )
        self.note(Text(note, style="dim italic"))

    traffic_changed = load

    def action_add(self) -> None:
        self.traffic.breakpoint_typed()

    def action_remove(self) -> None:
        if (key := self.table.selected_key) is not None:
            self.traffic.act(lambda c: c.remove_breakpoint(int(key)))

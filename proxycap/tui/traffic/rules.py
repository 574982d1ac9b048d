"""The rules screen (``u``): the rules file's rules in the order they apply, with their hit counts and the errors of
broken ones; add, edit, enable, disable, reorder, delete, each saved to the file through the control API.

A rule is edited as it is written in the file: a TOML table (``[[rule]]``'s fields, README "Rules"). A file that could
not be read is shown with the reason and never written over (the control API refuses changes until it is fixed and
reloaded).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import tomli_w
from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from proxycap.control.api import Control, Outcome
from proxycap.tui import keys
from proxycap.tui.chrome.edit import EditScreen
from proxycap.tui.chrome.screens import ConfirmScreen
from proxycap.tui.traffic.table import TableScreen

if TYPE_CHECKING:
    from proxycap.tui.traffic.controller import Traffic

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
HITS_INTERVAL = 1.0  # seconds between looks at the hit counts while the screen is open (a rule's hit is per request)
ERROR = Style(color="red")

# A new rule's first text, per action: the fields it takes, with examples to change.
TEMPLATES = {
    "map_local": (
        "answer from a local file, or a folder mapped by path",
        """name = ""
action = "map_local"
url = 'example\\.com/static/'  # URL regex; what follows it is the path in the folder
path = "~/src/app/dist"       # a file, or a folder (no such file there: the server answers)
filter = ""                   # mitmproxy filter expression; empty: every flow
# client = "192.168.1.20"     # only this client
""",
    ),
    "map_remote": (
        "send the request to another URL",
        """name = ""
action = "map_remote"
url = '^https://api\\.example\\.com'  # URL regex
to = "http://localhost:3000"         # what it is replaced with
filter = ""
# client = "192.168.1.20"
""",
    ),
    "modify_headers": (
        "set or remove a request or response header",
        """name = ""
action = "modify_headers"
message = "response"      # or "request"
header = "Cache-Control"
value = "no-store"        # empty: remove the header
filter = ""
# client = "192.168.1.20"
""",
    ),
    "modify_body": (
        "replace in a request or response body (regex)",
        """name = ""
action = "modify_body"
message = "response"      # or "request"
regex = '"beta": false'
replacement = '"beta": true'
filter = "~u /api/flags"
# client = "192.168.1.20"
""",
    ),
    "block": (
        "answer with a status, or close the connection (444)",
        """name = ""
action = "block"
status = 403              # 444: close the connection instead
filter = "~d ads.example.com"
# client = "192.168.1.20"
""",
    ),
    "respond": (
        "answer with a fixed response",
        """name = ""
action = "respond"
status = 200
headers = { content-type = "application/json" }
body = '{"ok": true}'     # or body_file = "answer.json" (beside the rules file)
filter = "~u /api/example$"
# client = "192.168.1.20"
""",
    ),
    "throttle": (
        "slow the flows it matches down",
        """name = ""
action = "throttle"
throttle = "3G"           # "slow 3G", "offline", KB/s ("100", "100/50"), or { latency = 200, down = 50, up = 20 }
filter = ""
client = "192.168.1.20"
""",
    ),
}


def _toml(value: Any) -> str:
    """A TOML value as people write one: a string without quotes or line breaks as a literal string (regexes and
    filter expressions read as typed, with no doubled backslashes), a table inline."""
    if isinstance(value, str) and "'" not in value and value.isprintable():
        return f"'{value}'"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_toml(v)}" for k, v in value.items()) + " }" if value else "{}"
    return tomli_w.dumps({"v": value}, multiline_strings=True).partition(" = ")[2].rstrip("\n")


def _key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _toml(key)


def rule_text(rule: dict[str, Any]) -> str:
    """A rule as it reads in the rules file (its fields, without the ``[[rule]]`` line)."""
    return "".join(f"{_key(key)} = {_toml(value)}\n" for key, value in rule.items())


def parse_rule(text: str) -> dict[str, Any]:
    """The editor's text → a rule's fields; ValueError with the reason if it is not a TOML table."""
    try:
        rule = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"not TOML: {e}") from None
    if "rule" in rule:
        raise ValueError("write the rule's fields only (name = …, action = …), without [[rule]]")
    return rule


class RuleEditScreen(EditScreen):
    """A rule as TOML; ctrl+s saves it through the control API (``save``: add, or replace a rule), or says why not."""

    BINDINGS = keys.bindings("rule-editor")

    def __init__(self, title: str, text: str, control: Control, rule_id: int | None) -> None:
        super().__init__(title, text, self._save, note="ctrl+s saves it to the rules file · esc cancels")
        self.control = control
        self.rule_id = rule_id

    def _save(self, _action: str, text: str) -> Outcome:
        """In the editor's worker."""
        try:
            rule = parse_rule(text)
        except ValueError as e:
            return Outcome(False, str(e))
        if self.rule_id is None:
            return self.control.add_rule(rule)
        outcome = self.control.edit_rule(self.rule_id, rule)
        return Outcome(outcome.ok, outcome.message, self.rule_id)


class ActionChooser(ModalScreen[str | None]):
    """Which action a new rule takes."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide"):
            yield Static("New rule: what should it do?")
            yield OptionList(
                *(
                    Option(Text.assemble((f"{name:<16}", "bold"), what), id=name)
                    for name, (what, _) in TEMPLATES.items()
                )
            )

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)


def _cells(info: dict[str, Any], n: int) -> tuple[str | Text, ...]:
    rule, error = info["rule"], info["error"]
    on = Text("⚠", ERROR) if error else "on" if info["enabled"] else Text("off", "dim")
    return (
        str(n),
        on,
        str(rule.get("action", "?")),
        info["label"],
        str(rule.get("filter", "")) or "(every flow)",
        str(rule.get("client", "")),
        f"{info['hits']:,}",
        Text(error or "", ERROR),
    )


class RulesScreen(TableScreen):
    BINDINGS = keys.bindings("rules")
    heading = "Rules, applied top to bottom"
    columns = ("#", "On", "Action", "Name", "Filter", "Client", "Hits", "Error")

    def __init__(self, traffic: Traffic, edit: int | None = None) -> None:
        super().__init__(traffic)
        self.control = traffic.control
        self.edit = edit  # a rule to open in the editor once loaded ("Mock this")
        self.data: dict[str, Any] = {"path": None, "problem": None, "rules": []}
        self._shown: list[tuple[Any, ...]] = []  # the rules as last drawn, less their hit counts

    def above(self) -> Iterable[Widget]:
        yield Static(id="rules-problem")

    def on_mount(self) -> None:
        super().on_mount()
        self.set_interval(HITS_INTERVAL, self.load)

    # --- loading --------------------------------------------------------------------------------

    def load(self, select: int | None = None) -> None:
        self.traffic.ask(lambda c: c.rules(), lambda data: self.show(data, select))

    def show(self, data: dict[str, Any], select: int | None = None) -> None:
        if not self.is_attached:
            return
        self.data = data
        table = self.table
        rules = data["rules"]
        shape = [(info["id"], info["rule"], info["enabled"], info["error"]) for info in rules]
        if shape != self._shown or select is not None:
            self._shown = shape
            table.set_rows(
                [(str(info["id"]), _cells(info, n)) for n, info in enumerate(rules, 1)],
                str(select) if select is not None else None,
            )
        else:  # only the hit counts change while traffic flows: those cells, not the table
            for info in rules:
                table.update_cell(str(info["id"]), table.ordered_columns[6].key, f"{info['hits']:,}")
        where = data["path"] or "no rules file (start proxycap with --rules FILE)"
        self.query_one("#table-title", Static).update(f"{self.heading}: {where}")
        problem = data["problem"]
        self.query_one("#rules-problem", Static).update(
            Text(f"⚠ {problem}. Nothing is written over it: fix it, then ctrl+r reloads it.", ERROR) if problem else ""
        )
        self.query_one("#rules-problem", Static).display = bool(problem)
        self._detail()
        if self.edit is not None and (info := self._info(self.edit)) is not None:
            self.edit = None
            self._open(info)

    def on_data_table_row_highlighted(self) -> None:
        self._detail()

    def _detail(self) -> None:
        info = self._selected()
        text = Text()
        if info is not None:
            if info["error"]:
                text.append(f"{info['error']}\n", ERROR)
            text.append(rule_text(info["rule"]).rstrip())
        elif not self.data["rules"]:
            text.append("No rules yet: n adds one; M on a flow mocks its response.", "dim italic")
        self.note(text)

    def _info(self, rule_id: int) -> dict[str, Any] | None:
        return next((info for info in self.data["rules"] if info["id"] == rule_id), None)

    def _selected(self) -> dict[str, Any] | None:
        key = self.table.selected_key
        return self._info(int(key)) if key is not None else None

    # --- changes --------------------------------------------------------------------------------

    def _changed(self, select: int | None = None) -> Any:
        """What a change's outcome does: the rules are loaded again, with ``select`` (or the rule it made) selected."""
        return lambda outcome: self.load(select if select is not None else outcome.id)

    def _open(self, info: dict[str, Any] | None) -> None:
        assert self.control is not None
        if info is None:
            return
        title = f"Rule {info['label']!r}" + (f" (broken: {info['error']})" if info["error"] else "")
        self.app.push_screen(RuleEditScreen(title, rule_text(info["rule"]), self.control, info["id"]), self._edited)

    def _edited(self, outcome: Outcome | None) -> None:
        self.app.say(outcome)
        if outcome is not None:
            self.load(outcome.id)

    def action_add(self) -> None:
        assert self.control is not None
        control = self.control

        def chosen(action: str | None) -> None:
            if action is not None:
                what, text = TEMPLATES[action]
                self.app.push_screen(RuleEditScreen(f"New {action} rule: {what}", text, control, None), self._edited)

        self.app.push_screen(ActionChooser(), chosen)

    def action_edit(self) -> None:
        self._open(self._selected())

    def on_data_table_row_selected(self) -> None:
        self.action_edit()

    def action_toggle(self) -> None:
        if (info := self._selected()) is not None:
            rule_id, enabled = info["id"], not info["enabled"]
            self.traffic.act(lambda c: c.set_rule_enabled(rule_id, enabled), self._changed(rule_id))

    def action_move(self, step: int) -> None:
        if (info := self._selected()) is None:
            return
        index = self.data["rules"].index(info) + step
        if 0 <= index < len(self.data["rules"]):
            rule_id = info["id"]
            self.traffic.act(lambda c: c.move_rule(rule_id, index), self._changed(rule_id))

    def action_remove(self) -> None:
        if (info := self._selected()) is None:
            return
        rule_id = info["id"]

        def answered(yes: bool | None) -> None:
            if yes:
                self.traffic.act(lambda c: c.remove_rule(rule_id), self._changed())

        self.app.push_screen(ConfirmScreen(f"Delete the rule {info['label']!r} from the rules file?"), answered)

    def action_reload(self) -> None:
        self.traffic.act(lambda c: c.reload_rules(), self._changed())

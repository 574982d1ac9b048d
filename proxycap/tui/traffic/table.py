"""Screens of things the capture keeps (breakpoints, stopped flows, rules): a table redrawn as they change without
moving the user's cursor off the row it is on, a note under it, the screen's keys."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import DataTable, Static

from proxycap.tui.chrome.keybar import KeyBar

if TYPE_CHECKING:
    from proxycap.tui.traffic.controller import Traffic

Cell = str | Text


class KeyedTable(DataTable[Cell]):
    def __init__(self, columns: Sequence[str]) -> None:
        super().__init__(cursor_type="row")
        self._columns = columns

    def on_mount(self) -> None:
        self.add_columns(*self._columns)

    @property
    def selected_key(self) -> str | None:
        if not self.row_count:
            return None
        return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value

    def set_rows(self, rows: Sequence[tuple[str, Sequence[Cell]]], select: str | None = None) -> None:
        """Show ``rows`` (key, cells); the cursor stays on its row (or goes to ``select``), else at its place."""
        keep, index = select or self.selected_key, self.cursor_row
        self.clear()
        for key, cells in rows:
            self.add_row(*cells, key=key)
        keys = [key for key, _ in rows]
        if keys:
            self.move_cursor(row=keys.index(keep) if keep in keys else min(index, len(keys) - 1), scroll=True)


class TableScreen(ModalScreen[None]):
    """A title, what ``above`` adds, the table of ``columns``, a note; ``load`` fills them once mounted. Modal, though
    it fills the screen: the list's keys (mark, delete, replay, …) would act on a flow the user cannot see."""

    heading = ""
    columns: tuple[str, ...] = ()

    def __init__(self, traffic: Traffic) -> None:
        super().__init__()
        self.traffic = traffic

    def compose(self) -> ComposeResult:
        yield Static(self.heading, id="table-title", classes="screen-title", markup=False)
        yield from self.above()
        yield KeyedTable(self.columns)
        yield Static(id="table-note", classes="screen-note")
        yield KeyBar()

    def above(self) -> Iterable[Widget]:
        return ()

    def on_mount(self) -> None:
        self.table.focus()
        self.load()

    def load(self) -> None:
        raise NotImplementedError

    @property
    def table(self) -> KeyedTable:
        return self.query_one(KeyedTable)

    def note(self, text: str | Text) -> None:
        self.query_one("#table-note", Static).update(text)

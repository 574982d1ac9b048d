"""A table of things the capture keeps (breakpoints, stopped flows, rules), redrawn as they change without moving the
user's cursor off the row it is on."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.widgets import DataTable

Cell = str | Text


class KeyedTable(DataTable[Cell]):
    def __init__(self, columns: Sequence[str], *, id: str | None = None) -> None:
        super().__init__(cursor_type="row", id=id)
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
        self.move_cursor(row=keys.index(keep) if keep in keys else min(index, len(keys) - 1), scroll=True)

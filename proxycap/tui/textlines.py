"""A read-only, searchable view of many pre-highlighted lines (bodies, headers, the event log).

A Line-API ``ScrollView``: long lines are wrapped into rows once per width, and only the rows on screen are
rendered, so a 256 kB body or a long log costs nothing while it scrolls.
"""

from __future__ import annotations

from collections.abc import Iterable

from rich.cells import get_character_cell_size
from rich.style import Style
from rich.text import Text
from textual.cache import LRUCache
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from proxycap.internals.textual import QuickScrollBars, set_virtual_size


def wrap_offsets(plain: str, width: int) -> list[int]:
    """Start offsets of the rows ``plain`` wraps into at ``width`` cells: at a space in the second half of
    a row if there is one, else mid-word (wide characters count double)."""
    if plain.isascii():
        starts, start = [0], 0
        while len(plain) - start > width:
            space = plain.rfind(" ", start + width // 2, start + width)
            start = space + 1 if space > start else start + width
            starts.append(start)
        return starts
    starts, cells = [0], 0
    for i, ch in enumerate(plain):
        size = get_character_cell_size(ch)
        if cells + size > width and cells:
            starts.append(i)
            cells = 0
        cells += size
    return starts


class TextLines(QuickScrollBars, ScrollView, can_focus=True):
    COMPONENT_CLASSES = {"text-lines--match", "text-lines--match-current"}

    def __init__(self, lines: Iterable[Text] = (), *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._lines: list[Text] = []
        self._rows: list[tuple[int, int, int]] = []  # (line, start, end) per wrapped row
        self._first_row: list[int] = []  # line → its first row
        self._width = 0
        self._strips: LRUCache[int, Strip] = LRUCache(2000)  # row → its strip
        self._style: Style | None = None  # the widget's own style: resolving it walks the DOM (half a row's cost)
        self._matches: list[tuple[int, int, int]] = []  # (line, start, end)
        self._line_matches: dict[int, list[int]] = {}
        self.current_match = -1
        self.term = ""
        self.append_lines(lines)

    # --- content --------------------------------------------------------------------------------

    def plain_lines(self) -> list[str]:
        return [line.plain for line in self._lines]

    def set_lines(self, lines: Iterable[Text], keep_position: bool = False) -> None:
        top = self._top_line() if keep_position else 0
        self._lines, self._rows, self._first_row = [], [], []
        self.append_lines(lines, follow=False)
        if self.term:
            self.search(self.term, move=False)
        self._jump_to_line(top)

    def append_lines(self, lines: Iterable[Text], follow: bool = True) -> None:
        """Add lines at the end; stays at the bottom if it was there (a log tail)."""
        at_end = follow and self.scroll_y >= self.max_scroll_y
        start = len(self._lines)
        for line in lines:
            if "\t" in line.plain:
                line = line.copy()
                line.expand_tabs(4)
            self._lines.append(line)
        self._wrap_from(start)
        if at_end and self._lines:
            self.jump(self.max_scroll_y)

    def jump(self, y: float) -> None:
        """Scroll now (forced: right after new content the scrollbar may not be known to be needed yet)."""
        self.scroll_to(y=y, animate=False, immediate=True, force=True)

    def _jump_to_line(self, line: int) -> None:
        self.jump(self._first_row[min(line, len(self._first_row) - 1)] if self._first_row else 0)

    def _wrap_from(self, start: int) -> None:
        if self._width <= 0:
            return
        for i in range(start, len(self._lines)):
            plain = self._lines[i].plain
            self._first_row.append(len(self._rows))
            offsets = wrap_offsets(plain, self._width)
            for a, b in zip(offsets, [*offsets[1:], len(plain)], strict=True):
                self._rows.append((i, a, b))
        self._strips.clear()
        set_virtual_size(self, Size(self._width, len(self._rows)))
        self.refresh()

    def _top_line(self) -> int:
        top = self.scroll_offset.y
        return self._rows[top][0] if top < len(self._rows) else 0

    def on_resize(self) -> None:
        width = self.scrollable_content_region.width
        if width != self._width and width > 0:
            top = self._top_line()
            self._width = width
            self._rows, self._first_row = [], []
            self._wrap_from(0)
            self._jump_to_line(top)

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._strips.clear()
        self._style = None

    # --- search ---------------------------------------------------------------------------------

    def search(self, term: str, move: bool = True) -> int:
        """Highlight every (case-insensitive) occurrence of ``term``; with ``move``, go to the first one
        at or below the top of the view. Returns the number of matches."""
        self.term = term
        self._matches, self._line_matches, self.current_match = [], {}, -1
        needle = term.lower()
        if needle:
            for i, line in enumerate(self._lines):
                plain = line.plain.lower()
                pos = plain.find(needle)
                while pos >= 0:
                    self._line_matches.setdefault(i, []).append(len(self._matches))
                    self._matches.append((i, pos, pos + len(needle)))
                    pos = plain.find(needle, pos + len(needle))
        self._strips.clear()
        self.refresh()
        if move and self._matches:
            top = self._top_line()
            self.current_match = next((k for k, m in enumerate(self._matches) if m[0] >= top), 0)
            self._show_match()
        return len(self._matches)

    @property
    def where(self) -> str:
        """Where the search stands, for a status line: "match 2 of 5", "no match for 'x'"."""
        if not self.term:
            return ""
        if not self._matches:
            return f"no match for {self.term!r}"
        if self.current_match < 0:
            return f"{len(self._matches)} match{'es' * (len(self._matches) > 1)}"
        return f"match {self.current_match + 1} of {len(self._matches)}"

    def next_match(self, step: int = 1) -> None:
        if not self._matches:
            return
        self.current_match = (self.current_match + step) % len(self._matches)
        self._strips.clear()
        self.refresh()
        self._show_match()

    def _show_match(self) -> None:
        line, start, _ = self._matches[self.current_match]
        if not self._first_row:
            return
        row = self._first_row[line]
        while row + 1 < len(self._rows) and self._rows[row + 1][0] == line and self._rows[row + 1][1] <= start:
            row += 1
        height = self.scrollable_content_region.height
        if not self.scroll_y <= row < self.scroll_y + height:
            self.jump(max(0, row - height // 3))

    # --- rendering ------------------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        index = self.scroll_offset.y + y
        width = self.scrollable_content_region.width
        if width != self._width and width > 0:
            self.call_later(self.on_resize)  # sized without a Resize (shown by an inline style): wrap for it
        if self._style is None:
            self._style = self.rich_style
        if index >= len(self._rows):
            return Strip.blank(width, self._style)
        strip = self._strips.get(index)
        if strip is None:
            line, start, end = self._rows[index]
            text = self._lines[line][start:end]
            if text.style and not text.spans:  # rich draws a text's own style only along with its spans
                text.stylize(text.style)
            for k in self._line_matches.get(line, ()):
                _, a, b = self._matches[k]
                if a < end and b > start:
                    name = "text-lines--match-current" if k == self.current_match else "text-lines--match"
                    style = self.get_component_rich_style(name, partial=True)
                    text.stylize(style, max(a, start) - start, min(b, end) - start)
            strip = Strip(text.render(self.app.console)).crop_extend(0, width, None).apply_style(self._style)
            self._strips[index] = strip
        return strip

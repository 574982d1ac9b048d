"""The flow list: a Line-API ``ScrollView`` over a ``FlowView``, rendering only the rows on screen.

Line 0 is a fixed header (click a title to sort); row ``i`` of the view is drawn at ``1 + i - scroll_y``.
Nothing per row is kept besides the view's row cache, so 100k flows scroll like 100.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.cache import LRUCache
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.style import Style as TextualStyle

from proxycap.internals.textual import QuickScrollBars, plain_box, set_virtual_size
from proxycap.query import fmt
from proxycap.tui.flows.model import Change, FlowView, Row
from proxycap.tui.inspector.flowdoc import status_kind

MARK = "●"
REPLAY = "↻"  # before the method of a replayed flow, as in mitmproxy's console
MODIFIED = "✎"  # before the method of a flow that a rule or breakpoint changed (Details says how)
STOPPED = "⏸"  # in the status of a flow stopped at a breakpoint


def method_cell(row: Row) -> str:
    return (REPLAY if row.get("replay_of") else "") + (MODIFIED if row.get("modified") else "") + (row["method"] or "")


def status_cell(row: Row) -> str:
    if not row.get("intercepted"):
        return fmt.status(row)
    return STOPPED if row.get("status") is None else f"{STOPPED} {row['status']}"


FEW_LINES = 4  # changed rows repainted line by line; more repaint the list (cheaper for Textual than many regions)


def short_type(content_type: str | None) -> str:
    """``application/json; charset=utf-8`` → ``json``: the list shows the part that tells types apart."""
    if not content_type:
        return ""
    return content_type.split(";", 1)[0].strip().removeprefix("application/")


def host_port(row: Row) -> str:
    default = {"http": 80, "https": 443}.get(row.get("scheme") or "")
    port = row.get("port")
    return row["host"] if port in (None, default) else f"{row['host']}:{port}"


@dataclasses.dataclass(frozen=True, slots=True)
class Column:
    title: str
    order: str  # the store column it sorts by
    width: int  # fixed width, or the minimum of a flexible column (0: sized to the largest "#")
    priority: int  # narrow terminals drop the lowest first
    cell: Callable[[Row], str]
    flex: int = 0
    max_width: int = 0
    right: bool = False


COLUMNS: tuple[Column, ...] = (
    Column("#", "seq", 0, 100, lambda r: str(r["seq"]), right=True),
    Column("Time", "ts", 12, 30, lambda r: fmt.clock(r["ts"])),
    Column("Client", "client_ip", 15, 20, lambda r: r["client_ip"] or ""),
    Column("Method", "method", 7, 80, method_cell),
    Column("Host", "host", 16, 90, host_port, flex=1, max_width=32),
    Column("Path", "path", 16, 100, lambda r: r["path"] or "", flex=3),
    Column("Status", "status", 6, 95, status_cell),
    Column("Type", "content_type", 12, 10, lambda r: short_type(r["content_type"])),
    Column("Size", "response_size", 7, 60, lambda r: fmt.size(r["response_size"]), right=True),
    Column("Dur", "duration_ms", 7, 50, lambda r: fmt.duration(r["duration_ms"]), right=True),
)


def layout(columns: tuple[Column, ...], width: int, seq_width: int) -> list[tuple[Column, int]]:
    """Column widths for ``width`` cells: drop low-priority columns until the rest fit, then share the slack
    among the flexible ones (host is capped, the path takes what is left)."""
    cols = [(c, c.width or seq_width) for c in columns]
    while len(cols) > 1 and sum(w for _, w in cols) + len(cols) > width:
        cols.remove(min(cols, key=lambda cw: cw[0].priority))
    slack = width - sum(w for _, w in cols) - len(cols)
    flex_total = sum(c.flex for c, _ in cols) or 1
    out = []
    for c, w in cols:
        extra = slack * c.flex // flex_total
        if c.max_width:
            extra = min(extra, max(0, c.max_width - w))
        out.append([c, w + extra])
    used = sum(w for _, w in out) + len(out)
    for item in out[::-1]:  # what the caps left over goes to the last flexible column
        if item[0].flex and not item[0].max_width:
            item[1] += max(0, width - used)
            break
    return [(c, w) for c, w in out]


def fit(text: str, width: int, right: bool = False) -> str:
    if text.isascii() and text.isprintable():  # one cell per character: skips Rich's per-character width lookup
        if len(text) > width:
            return text[: width - 1] + "…" if width > 1 else text[:width]
        return text.rjust(width) if right else text.ljust(width)
    if cell_len(text) > width:
        return set_cell_size(text, width - 1) + "…" if width > 1 else set_cell_size(text, width)
    return " " * (width - cell_len(text)) + text if right else set_cell_size(text, width)


class FlowList(QuickScrollBars, ScrollView, can_focus=True):
    """Keyboard: up/down/page keys move the cursor; enter inspects. Mouse: click a row, click a title to sort."""

    COMPONENT_CLASSES = {
        "flow-list--header",
        "flow-list--sorted",
        "flow-list--badge",
        "flow-list--cursor",
        "flow-list--marked",
        "flow-list--live",
        "flow-list--ok",
        "flow-list--redirect",
        "flow-list--client-error",
        "flow-list--error",
        "flow-list--stopped",
    }
    BINDINGS = [
        Binding("up", "cursor(-1)", "Up", show=False),
        Binding("down", "cursor(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home,g", "app.go_top", "First", show=False),
        Binding("end,G", "app.go_bottom", "Last", show=False),
        Binding("enter", "activate", "Inspect"),
    ]

    class Highlighted(Message):
        """The cursor moved to another flow (``seq`` None: the list is empty)."""

        def __init__(self, seq: int | None) -> None:
            super().__init__()
            self.seq = seq

    class Activated(Message):
        def __init__(self, seq: int) -> None:
            super().__init__()
            self.seq = seq

    class SortRequested(Message):
        def __init__(self, order: str) -> None:
            super().__init__()
            self.order = order

    def __init__(self, view: FlowView, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.view = view
        self.cursor = 0
        self.selected: int | None = None  # the cursor's flow; survives reloads and resorts
        self.follow = True  # stick to the newest flows while the view is at that edge
        self.new_count = 0  # flows that arrived while the user looked elsewhere
        self.show_client = True
        self._layout: list[tuple[Column, int]] = []
        # (seq, is cursor) → rendered row. A few screens' worth (sized with the layout): rows scrolled past are rarely
        # shown again, and a cached strip (with the strips Textual derives from it and caches on it) is dozens of
        # objects every full garbage collection walks.
        self._strips: LRUCache[tuple[int, bool], Strip] = LRUCache(64)
        # Resolved styles, by component name ("" = the widget's own), and by (kind, marked, cursor) for rows.
        # Textual resolves a style by walking the DOM, and under load every row on screen is new each frame.
        self._styles: dict[str, Style] = {}
        self._row_styles: dict[tuple[str | None, bool, bool], Style] = {}

    # --- geometry -------------------------------------------------------------------------------

    @property
    def body_height(self) -> int:
        return max(1, self.scrollable_content_region.height - 1)

    def at_newest_edge(self) -> bool:
        if self.view.spec.descending:
            return self.scroll_offset.y <= 0
        return self.scroll_offset.y >= self.max_scroll_y

    def _update_layout(self) -> None:
        width = self.scrollable_content_region.width - 1  # the mark gutter
        cols = COLUMNS if self.show_client else tuple(c for c in COLUMNS if c.order != "client_ip")
        new = layout(cols, width, max(2, len(str(self.view.last_seq))))
        self._strips.maxsize = 3 * self.body_height + 64
        if new != self._layout:
            self._layout = new
            self._strips.clear()

    # --- following the model --------------------------------------------------------------------

    def sync(self, change: Change) -> None:
        """Adopt a model change: keep the cursor on its flow, follow the newest edge or count what's new."""
        view, desc = self.view, self.view.spec.descending
        following = self.follow and self.at_newest_edge()
        on_newest = self.cursor >= len(view) - change.added - 1 if not desc else self.cursor == 0
        opening = change.reset and self.selected is None  # a follower sees a view's first rows from the newest
        keep_row = None  # the cursor's row on screen, kept across a reset
        if change.reset or not change.appended:
            index = view.index_of(self.selected) if self.selected is not None else None
            if change.reset and self.selected is not None:
                if index is None:  # filtered out: the nearest flow before it takes its place
                    index = view.nearest(self.selected)
                row = self.cursor - self.scroll_offset.y
                if index is not None and 0 <= row < self.body_height:
                    keep_row = row
            self.cursor = index if index is not None else min(self.cursor, max(0, len(view) - 1))
        elif desc and change.added:
            self.cursor += change.added
            if not following:
                self.jump(self.scroll_y + change.added)
        set_virtual_size(self, Size(self.scrollable_content_region.width, len(view) + 1))
        if keep_row is not None:
            self.jump(self.cursor - keep_row)
        elif following and (opening or (change.added and not change.reset)):
            if on_newest or opening:
                self.cursor = 0 if desc else max(0, len(view) - 1)
            self.scroll_newest()
        elif change.added and not change.reset:
            self.new_count += change.added
        self._cursor_moved()
        self.refresh()

    def jump(self, y: float) -> None:
        """Scroll now (forced: right after a resize the scrollbar may not be known to be needed yet)."""
        self.scroll_to(y=y, animate=False, immediate=True, force=True)

    def scroll_newest(self) -> None:
        self.new_count = 0
        if self.view.spec.descending:
            self.jump(0)
        else:
            self.jump(len(self.view) + 1 - self.scrollable_content_region.height)

    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        if self.new_count and self.at_newest_edge():
            self.new_count = 0
            self.refresh(self.region.reset_offset.crop_size((self.size.width, 1)))

    def forget(self, seqs: set[int] | None = None) -> None:
        """Drop rendered rows whose data changed (all of them with None) and repaint them."""
        if seqs is None:
            self._strips.clear()
            self.refresh()
            return
        for seq in seqs:
            self._strips.discard((seq, False))
            self._strips.discard((seq, True))
        top, end = self.scroll_offset.y, min(len(self.view), self.scroll_offset.y + self.body_height)
        lines = [index + 1 for index in range(top, end) if self.view.seq_at(index) in seqs]
        if len(lines) > FEW_LINES:  # under load most rows on screen changed: one region, not one per line
            self.refresh()
            return
        for line in lines:
            self.refresh_line(line)

    # --- cursor ---------------------------------------------------------------------------------

    def move_to(self, index: int) -> None:
        if not len(self.view):
            return
        self.cursor = max(0, min(index, len(self.view) - 1))
        top, height = self.scroll_offset.y, self.body_height
        if self.cursor < top:
            self.jump(self.cursor)
        elif self.cursor >= top + height:
            self.jump(self.cursor - height + 1)
        self._cursor_moved()
        self.refresh()

    def _cursor_moved(self) -> None:
        seq = self.view.seq_at(self.cursor) if len(self.view) else None
        if seq != self.selected:
            self.selected = seq
            self.post_message(self.Highlighted(seq))

    def action_cursor(self, step: int) -> None:
        self.move_to(self.cursor + step)

    def action_page(self, step: int) -> None:
        self.move_to(self.cursor + step * self.body_height)

    def action_activate(self) -> None:
        if self.selected is not None:
            self.post_message(self.Activated(self.selected))

    def go_top(self) -> None:
        self.move_to(0)

    def go_bottom(self) -> None:
        self.move_to(len(self.view) - 1)

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        if offset.y == 0:
            x = 1
            for col, width in self._layout:
                if x <= offset.x < x + width + 1:
                    self.post_message(self.SortRequested(col.order))
                    return
                x += width + 1
            return
        index = self.scroll_offset.y + offset.y - 1
        if index < len(self.view):
            self.move_to(index)
            if event.chain >= 2:
                self.action_activate()

    # --- rendering ------------------------------------------------------------------------------

    def _style(self, name: str) -> Style:
        style = self._styles.get(name)
        if style is None:
            style = self.rich_style if not name else self.get_component_rich_style(f"flow-list--{name}", partial=True)
            self._styles[name] = style
        return style

    def _row_style(self, kind: str | None, marked: bool, is_cursor: bool) -> Style:
        key = (kind, marked, is_cursor)
        style = self._row_styles.get(key)
        if style is None:
            style = self._style("")
            for name, applies in (("live", kind == "live"), ("marked", marked), ("cursor", is_cursor)):
                if applies:
                    style += self._style(name)
            self._row_styles[key] = style
        return style

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._styles.clear()
        self._row_styles.clear()
        self._strips.clear()

    def render_lines(self, crop: Region) -> list[Strip]:
        """Rows go out as the row cache holds them, padded and filtered once each (the strip caches both).

        Textual's styles cache rebuilds every line of a widget that scrolled or refreshed (a new Strip per line,
        then each line filter over it): a third of the list's cost per frame, and under load the list scrolls with
        every update. Without border, padding, outline, tint or opacity the rebuild adds only the padding under
        the scrollbar; given any of those, Textual's path is taken.
        """
        if not plain_box(self):
            return super().render_lines(crop)
        width, content_width = self.size.width, self.scrollable_content_region.width
        base_background, background = self.background_colors
        pad = TextualStyle(background=base_background + background).rich_style
        filters = self.get_line_filters()
        strips = []
        for y in crop.line_range:
            strip = self._line(y, content_width).adjust_cell_length(width, pad)
            for line_filter in filters:
                strip = strip.apply_filter(line_filter, background)
            strips.append(strip)
        x1, x2 = crop.column_span
        return strips if (x1, x2) == (0, width) else [strip.crop(x1, x2) for strip in strips]

    def render_line(self, y: int) -> Strip:
        return self._line(y, self.scrollable_content_region.width)

    def _line(self, y: int, width: int) -> Strip:
        if y == 0 or not self._layout:
            self._update_layout()
        if y == 0:
            return self._header(self._layout, width).apply_style(self._style(""))
        index = self.scroll_offset.y + y - 1
        if index >= len(self.view):
            return Strip.blank(width, self._style(""))
        row = self.view.row(index)  # also keeps the row cached while it is on screen
        if row is None:  # deleted meanwhile
            return Strip([Segment(fit(" …", width))]).apply_style(self._style(""))
        key = (row["seq"], index == self.cursor)
        strip = self._strips.get(key)
        if strip is None:
            strip = self._strips[key] = self._row(row, self._layout, width, key[1])
        return strip

    def _header(self, cols: list[tuple[Column, int]], width: int) -> Strip:
        spec = self.view.spec
        segments = [Segment(" ")]
        for col, w in cols:
            sorted_here = col.order == spec.order
            title = col.title + (("▼" if spec.descending else "▲") if sorted_here else "")
            segments.append(Segment(fit(title, w, col.right), self._style("sorted") if sorted_here else None))
            segments.append(Segment(" "))
        strip = Strip(segments).crop_extend(0, width, None)
        if self.new_count:
            badge = f" {self.new_count:,} new {'↑ Home' if spec.descending else '↓ End'} "
            keep = max(0, width - cell_len(badge))
            strip = Strip.join([strip.crop(0, keep), Strip([Segment(badge, self._style("badge"))])])
        return strip.apply_style(self._style("header"))

    def _row(self, row: Row, cols: list[tuple[Column, int]], width: int, is_cursor: bool) -> Strip:
        """One row, styled in one pass: each segment gets its final style (no ``apply_style`` copies)."""
        kind = status_kind(row)
        marked = bool(row.get("marked"))
        base = self._row_style(kind, marked, is_cursor)
        status_style = "stopped" if row.get("intercepted") else kind
        segments = [Segment(MARK, base + self._style("marked")) if marked else Segment(" ", base)]
        cells = 1
        for col, w in cols:
            text = fit(col.cell(row), w, col.right)
            if col.order == "status" and status_style:
                segments += (Segment(text, base + self._style(status_style)), Segment(" ", base))
            else:
                segments.append(Segment(text + " ", base))
            cells += w + 1
        strip = Strip(segments, cells)
        return strip if cells == width else strip.crop_extend(0, width, base)

"""Textual's scrolling, without the costs a list that scrolls with every live update cannot afford."""

from __future__ import annotations

from rich.color import Color
from rich.segment import Segment
from rich.style import Style
from textual.geometry import Region, Size
from textual.reactive import Reactive
from textual.scroll_view import ScrollView
from textual.scrollbar import ScrollBar, ScrollBarRender
from textual.strip import Strip
from textual.widget import Widget


def set_virtual_size(view: ScrollView, size: Size) -> None:
    """Give ``view`` ``size`` rows and columns to scroll over.

    Assigning ``virtual_size`` asks Textual to lay out the whole screen again (~3x the cost of repainting it),
    which only matters to a widget whose own size follows its content. The flow list and the text views are
    sized by CSS, and their row count changes with every live update or body shown, so when only the height
    changes the scrollbars are updated in place. A new width, or a scrollbar appearing or disappearing (its
    reactive asks for it), still lays the screen out.
    """
    if size.width != view.virtual_size.width:
        view.virtual_size = size
    elif size != view.virtual_size:
        view.set_reactive(ScrollView.virtual_size, size)
        view._scroll_update(size)


def plain_box(widget: Widget) -> bool:
    """No border, padding, outline, tint, opacity or hatch: Textual's styles cache would only pad and filter
    the widget's lines, so a widget may hand its own (cached) lines to the compositor instead."""
    styles = widget.styles
    return not (
        any(styles.gutter)
        or any(kind for kind, _ in styles.outline)
        or styles.tint.a
        or styles.text_opacity < 1
        or widget.opacity < 1
        or styles.has_rule("hatch")
    )


class QuickScrollBar(ScrollBar):
    """Textual's vertical scrollbar, drawn from a few cached lines.

    Its lines differ only in the track above or below the thumb, the thumb and the thumb's two ends, yet
    Textual's styles cache builds and filters each line afresh whenever the bar moves: ~3.8 ms for a 47-line
    bar (0.5 ms here), with every page scrolled and every live update that follows the newest flows.
    """

    # Nothing scrolls inside a bar, yet Textual's reactive for its scrollable size lays the whole screen out again
    # whenever the bar changes height: a second layout each time the inspector opens or closes and the list
    # shrinks or grows.
    virtual_size: Reactive[Size] = Reactive(Size(0, 0))

    def __init__(self, thickness: int) -> None:
        super().__init__(vertical=True, name="vertical", thickness=thickness)
        self._strips: dict[tuple[Segment, Style, int], Strip] = {}  # a line's segment → its strip (caches filters)

    def render_lines(self, crop: Region) -> list[Strip]:
        bar = self.render()
        if not isinstance(bar, ScrollBarRender) or not bar.vertical or not plain_box(self):
            return super().render_lines(crop)
        width, height = self.size
        style = self.app.console.get_style(bar.style)
        segments = bar.render_bar(
            size=height,
            virtual_size=bar.virtual_size,
            window_size=bar.window_size,
            position=bar.position,
            thickness=width,
            vertical=True,
            back_color=style.bgcolor or Color.parse("#555555"),
            bar_color=style.color or Color.parse("bright_magenta"),
        ).segments
        if crop.bottom > len(segments):  # asked for more lines than it has (while the screen is laid out anew)
            return super().render_lines(crop)
        base = self.visual_style.rich_style
        _, background = self.background_colors
        filters = self.get_line_filters()
        if len(self._strips) > 64:
            self._strips.clear()
        lines: dict[int, Strip] = {}  # the bar repeats a handful of segment objects: each is looked up once
        strips = []
        for y in crop.line_range:
            segment = segments[y]
            strip = lines.get(id(segment))
            if strip is None:
                strip = self._strips.get((segment, base, width))
                if strip is None:
                    strip = Strip([Segment(segment.text, base + segment.style)], width)
                    self._strips[segment, base, width] = strip
                for line_filter in filters:
                    strip = strip.apply_filter(line_filter, background)
                lines[id(segment)] = strip
            strips.append(strip)
        x1, x2 = crop.column_span
        return strips if (x1, x2) == (0, width) else [strip.crop(x1, x2) for strip in strips]


class QuickScrollBars:
    """Mixin for a ScrollView: its vertical scrollbar is a QuickScrollBar (Textual makes it on first use)."""

    @property
    def vertical_scrollbar(self) -> ScrollBar:
        assert isinstance(self, Widget)
        if self._vertical_scrollbar is None:
            bar = self._vertical_scrollbar = QuickScrollBar(self.scrollbar_size_vertical)
            bar.display = False
            self.app._start_widget(self, bar)
        return self._vertical_scrollbar

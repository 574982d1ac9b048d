"""Where proxycap leans on Textual's internals: every such piece is here, and tests/test_internals_textual.py shows
that each behaves as Textual's own code does.

- Scrolling without the costs a list that scrolls with every live update cannot afford (``set_virtual_size``,
  ``QuickScrollBar``), and a widget's own lines handed to the compositor (``plain_box``).
- A terminal driver that hands a lone Esc to the app as soon as its wait is over (``PromptEscapeDriver``).
"""

from __future__ import annotations

import os
import selectors
from codecs import getincrementaldecoder

from rich.color import Color
from rich.segment import Segment
from rich.style import Style
from textual._time import get_time
from textual._xterm_parser import XTermParser
from textual.cache import LRUCache
from textual.drivers.linux_driver import LinuxDriver
from textual.geometry import Region, Size
from textual.reactive import Reactive
from textual.scroll_view import ScrollView
from textual.scrollbar import ScrollBar, ScrollBarRender
from textual.strip import Strip
from textual.widget import Widget

from proxycap.runtime import switching


def set_virtual_size(view: ScrollView, size: Size) -> None:
    """Give ``view`` ``size`` rows and columns to scroll over.

    Assigning ``virtual_size`` asks Textual to lay out the whole screen again (dearer than repainting it:
    bench/RESULTS.md, "List frames"), which only matters to a widget whose own size follows its content. The flow
    list and the text views are sized by CSS, and their row count changes with every live update or body shown, so
    when only the height changes the scrollbars are updated in place. A new width, or a scrollbar appearing or
    disappearing (its reactive asks for it), still lays the screen out.
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
    Textual's styles cache builds and filters each line afresh whenever the bar moves, with every page scrolled
    and every live update that follows the newest flows (bench/RESULTS.md, "Key frames").
    """

    # Nothing scrolls inside a bar, yet Textual's reactive for its scrollable size lays the whole screen out again
    # whenever the bar changes height: a second layout each time the inspector opens or closes and the list
    # shrinks or grows.
    virtual_size: Reactive[Size] = Reactive(Size(0, 0))

    def __init__(self, thickness: int) -> None:
        super().__init__(vertical=True, name="vertical", thickness=thickness)
        # A line's segment → its strip (which caches the line filters' results).
        self._strips: LRUCache[tuple[Segment, Style, int], Strip] = LRUCache(64)

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


class PromptEscapeDriver(LinuxDriver):
    """Textual's Linux driver, with an input thread that hands a lone Esc on as soon as its wait is over.

    A terminal sends Esc as the same byte that starts every escape sequence, so Textual's input parser waits
    ``ESCDELAY`` ms for more before calling it a key. But Textual's input thread only looks at that wait's end
    when its 100 ms poll of the terminal times out: Esc (close the inspector, clear the filter) reached the app
    100-200 ms after the key, whatever ``ESCDELAY`` said. This thread sleeps until the parser's deadline instead.
    (``proxycap tui`` also lowers ``ESCDELAY``'s default: see ``cli.capture.TEXTUAL_ENV``.) The thread also tells
    ``runtime.switching`` that input arrived, before the input is parsed.
    """

    IDLE_POLL = 0.1  # seconds between looks at exit_event while the terminal is quiet

    def run_input_thread(self) -> None:
        parser = XTermParser(self._debug)
        decode = getincrementaldecoder("utf-8")().decode
        with selectors.SelectSelector() as selector:
            selector.register(self.fileno, selectors.EVENT_READ)
            while not self.exit_event.is_set():
                deadline = parser._timeout_time  # set while a lone Esc (or a partial sequence) waits
                timeout = self.IDLE_POLL if deadline is None else min(self.IDLE_POLL, max(0.0, deadline - get_time()))
                if selector.select(timeout):
                    switching.input_arrived()
                    data = decode(os.read(self.fileno, 4096))
                    if not data:  # stdin was a pipe and it ended
                        break
                    for event in parser.feed(data):
                        self.process_message(event)
                for event in parser.tick():
                    self.process_message(event)

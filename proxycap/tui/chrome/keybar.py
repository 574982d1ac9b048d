"""The key bar at the bottom of each screen: the keys the focused widget and the app offer now.

Textual's ``Footer`` shows the same bindings, but it unmounts and mounts a widget per key each time they may have
changed (every focus move, the inspector opening or closing), restyling each key twice and reflowing the whole
screen: beside a busy proxy that was a large share of a keypress's time to the next frame
(bench/RESULTS.md, "Key frames"). This bar is one line of text, redrawn only when what it shows changes; a click
on a key presses it, as with ``Footer``.
"""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual import events
from textual.cache import LRUCache
from textual.screen import Screen
from textual.strip import Strip
from textual.widget import Widget

KeyEntry = tuple[str, str, str, bool]  # key, how it is written, description, enabled


class KeyBar(Widget):
    ALLOW_SELECT = False
    COMPONENT_CLASSES = {"key-bar--key", "key-bar--description"}
    KEEP = "help"  # the action whose key stays on a screen too narrow for every key
    DEFAULT_CSS = """
    KeyBar {
        dock: bottom;
        height: 1;
        color: $footer-foreground;
        background: $footer-background;
    }
    KeyBar > .key-bar--key {
        color: $footer-key-foreground;
        background: $footer-key-background;
        text-style: bold;
    }
    KeyBar > .key-bar--description {
        color: $footer-description-foreground;
        background: $footer-description-background;
    }
    """

    def __init__(self) -> None:
        super().__init__()
        self._keys: tuple[tuple[str, KeyEntry], ...] = ()  # (action, key)
        self._palette: KeyEntry | None = None  # the command palette's key, shown on the right
        # Drawn lines by what they show: rebuilding the bar would slow every key's frames, and the inspector
        # opening or closing swaps between two of them (bench/RESULTS.md, "Key frames").
        self._lines: LRUCache[tuple[object, ...], Strip] = LRUCache(8)

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)
        self._bindings_changed(self.screen)

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def _bindings_changed(self, screen: Screen) -> None:
        app = self.app
        shown: dict[str, KeyEntry] = {}  # one key per action, the first bound (as Footer does)
        palette = None
        for key, (_, binding, enabled, _tip) in screen.active_bindings.items():
            entry = (key, app.get_key_display(binding), binding.description, enabled)
            if key == app.COMMAND_PALETTE_BINDING and app.ENABLE_COMMAND_PALETTE:
                palette = entry
            elif binding.show:
                shown.setdefault(binding.action, entry)
        keys = tuple(shown.items())
        if (keys, palette) != (self._keys, self._palette):
            self._keys, self._palette = keys, palette
            self.refresh()

    def _entry(self, entry: KeyEntry, styles: tuple[Style, Style]) -> Text:
        key, display, description, enabled = entry
        meta = Style(meta={"key": key, "enabled": enabled}, dim=not enabled)
        return Text.assemble((f" {display} ", styles[0] + meta), (f"{description} ", styles[1] + meta))

    def _fit(self, width: int, styles: tuple[Style, Style]) -> list[Text]:
        """Every key if they fit; else as many as fit from the left, and the help key, which lists the rest."""
        texts = [(action, self._entry(entry, styles)) for action, entry in self._keys]
        if sum(text.cell_len for _, text in texts) <= width:
            return [text for _, text in texts]
        kept = [text for action, text in texts if action == self.KEEP]
        room = width - sum(text.cell_len for text in kept)
        fit = []
        for action, text in texts:
            if action == self.KEEP:
                continue
            if text.cell_len > room:
                break
            fit.append(text)
            room -= text.cell_len
        return fit + kept

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._lines.clear()

    def render_line(self, y: int) -> Strip:
        key = (self._keys, self._palette, self.size.width)
        line = self._lines.get(key)
        if line is None:
            segments = self._text().render(self.app.console)
            line = self._lines[key] = Strip(segments).apply_style(self.rich_style)
        return line

    def _text(self) -> Text:
        styles = self.get_component_rich_style("key-bar--key"), self.get_component_rich_style("key-bar--description")
        line = Text(no_wrap=True, overflow="ellipsis", end="")
        for text in self._fit(self.size.width, styles):
            line.append_text(text)
        if self._palette is not None:
            right = self._entry(self._palette, styles)
            gap = self.size.width - line.cell_len - right.cell_len
            if gap > 0:
                line.append(" " * gap)
                line.append_text(right)
        return line

    def on_click(self, event: events.Click) -> None:
        meta = event.style.meta
        if "key" in meta:
            event.stop()
            if meta["enabled"]:
                self.app.simulate_key(meta["key"])
            else:
                self.app.bell()

"""The inspector: the selected flow's request, response, details and WebSocket messages, in tabs.

Loading the full flow and prettifying bodies happen in a worker; the UI thread only swaps in the lines, first
a screenful of each big body, then all of it. Changing the body view re-renders from the flow already loaded.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from mitmproxy import http
from rich.style import Style
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Input, Static, TabbedContent, TabPane
from textual.worker import get_current_worker

from proxycap.storage.store import Store
from proxycap.tui.inspector import bodyview, flowdoc
from proxycap.tui.inspector.flowdoc import DocOptions, FlowDoc
from proxycap.tui.textlines import TextLines

TABS = {"request": "Request", "response": "Response", "details": "Details", "websocket": "WebSocket"}
HINT = "v view · V keep view · x raw · + more · ctrl+f search · z zoom"
# Characters of each body rendered first (~300 lines of indented JSON, several screens): they show at once, the
# rest of a big body follows, as highlighting it whole would hold the first frame up (bench/RESULTS.md, "Key frames").
PREVIEW = 4 * 1024
# ... and the rest starts this much later, if the flow is still shown: browsing flows with the inspector open,
# the user moves on first, and a build already running cannot be stopped (it would compete with the next one).
REST_DELAY = 0.25
# An opening inspector appears with its first screenful, or after this long with "loading…" (see ``open``).
REVEAL_WAIT = 0.15


class Inspector(Vertical):
    ALLOW_MAXIMIZE = True  # "z", and how it opens on short terminals

    class Revealed(Message):
        """The inspector has appeared (the app gives it the keyboard on short terminals)."""

    class Built(Message):
        """A worker built flow ``seq``'s document (``doc`` None: the flow was deleted)."""

        def __init__(
            self,
            seq: int,
            doc: FlowDoc | None,
            loaded: tuple[http.HTTPFlow | None, dict[str, Any]] | None,
            keep_position: bool,
        ) -> None:
            super().__init__()
            self.seq = seq
            self.doc = doc
            self.loaded = loaded
            self.keep_position = keep_position

    def __init__(self, store: Store, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.store = store  # the workers' connection
        self._opening = False  # open() was called, the inspector is not shown yet
        self._websocket_tab = False  # whether that tab is shown (it is hidden when the inspector first appears)
        self.seq: int | None = None
        self.options = DocOptions()
        self.pinned = False  # the body view chosen is kept for the flows shown next
        self.doc: FlowDoc | None = None
        self._flow: http.HTTPFlow | None = None
        self._row: dict[str, Any] | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="inspector-title", markup=False)
        with TabbedContent(initial="response", id="inspector-tabs"):
            for tab_id, title in TABS.items():
                with TabPane(title, id=tab_id):
                    yield TextLines(id=f"lines-{tab_id}")
        yield Input(placeholder="search (enter: next match, esc: close)", id="inspector-search", classes="search")
        yield Static(id="inspector-note", markup=False)

    # --- open, close, which flow ---------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self.display or self._opening

    def open(self, seq: int) -> None:
        """Inspect ``seq``, appearing with its first screenful: one full layout of the screen instead of two (an
        empty inspector, then its content), each costly beside a busy proxy (bench/RESULTS.md, "Key frames"). At
        most ``REVEAL_WAIT`` later."""
        if self.display:
            self.show_flow(seq)
            self.post_message(self.Revealed())
            return
        self._opening = True
        self.show_flow(seq)
        self.set_timer(REVEAL_WAIT, self._reveal)

    def close(self) -> None:
        self._opening = False
        self.display = False
        self.call_after_refresh(self._forget)  # after the frame: letting go of a big body's lines takes ms

    def _forget(self) -> None:
        if not (self.display or self._opening):  # unless opened again meanwhile
            self.show_flow(None)

    def _reveal(self) -> None:
        if self._opening:
            self._opening = False
            self.display = True  # an inline style, not a class: no restyle of its widgets
            self._show_websocket_tab(self._websocket_tab)
            self.post_message(self.Revealed())

    def _show_websocket_tab(self, shown: bool) -> None:
        """Show or hide the WebSocket tab. Also what makes the tabs place their underline when the inspector
        appears: shown by an inline style, they get no Resize event."""
        self._websocket_tab = shown
        tabs = self.query_one(TabbedContent)
        if shown:
            tabs.show_tab("websocket")
        else:
            if tabs.active == "websocket":
                tabs.active = "response"
            tabs.hide_tab("websocket")

    def show_flow(self, seq: int | None, reload: bool = False) -> None:
        """Inspect ``seq`` (``reload``: it changed, load it again)."""
        if seq == self.seq and not reload:
            return
        self.seq = seq
        if seq is None:
            self.workers.cancel_group(self, "inspector")  # a big body still rendering is no longer wanted
            self.doc = self._flow = self._row = None
            self._title(Text("no flow selected", Style(dim=True)))
            for tab_id in TABS:
                self.lines(tab_id).set_lines([])
            return
        if not reload:
            self._title(Text(f"#{seq} loading…", Style(dim=True)))
            if not self.pinned:  # another flow: its bodies shown as their types say
                self.options = DocOptions()
        self._load(seq, self.options, None, keep_position=reload)

    def _title(self, text: Text) -> None:
        self.query_one("#inspector-title", Static).update(text, layout=False)  # a line: its size is fixed

    @work(thread=True, exclusive=True, group="inspector", exit_on_error=False)
    def _load(
        self,
        seq: int,
        options: DocOptions,
        loaded: tuple[http.HTTPFlow | None, dict[str, Any]] | None,
        keep_position: bool,
    ) -> None:
        if loaded is None:
            row = self.store.rows([seq]).get(seq)
            if row is None:
                self.post_message(self.Built(seq, None, None, keep_position))
                return
            if row.get("replay_of"):  # the original by its number, as the list shows it (None: deleted since)
                row = {**row, "replay_of_seq": self.store.seq_of(row["replay_of"])}
            loaded = (self.store.load_flow(seq), row)
        worker = get_current_worker()
        # A preview only for a flow opened afresh: cut short, it would move a reader of the full body up to its end.
        first = options.limit > PREVIEW and not keep_position
        for rest, limit in enumerate((PREVIEW, options.limit) if first else (options.limit,)):
            if rest:
                time.sleep(REST_DELAY)
                if worker.is_cancelled or seq != self.seq:
                    return
            doc = flowdoc.build(*loaded, dataclasses.replace(options, limit=limit))
            if worker.is_cancelled or seq != self.seq:
                return
            self.post_message(self.Built(seq, doc, loaded, keep_position))
            if not (doc.request.truncated or doc.response.truncated):
                return
            keep_position = True  # the rest of a big body: where the user may already have scrolled to

    def on_inspector_built(self, message: Built) -> None:
        message.stop()
        seq, doc, loaded, keep_position = message.seq, message.doc, message.loaded, message.keep_position
        if seq != self.seq:
            return
        if doc is None or loaded is None:
            self._title(Text(f"#{seq} was deleted", Style(dim=True)))
            return
        self._flow, self._row = loaded
        self.doc = doc
        self._title(doc.title)
        for tab_id, lines in (
            ("request", doc.request.lines),
            ("response", doc.response.lines),
            ("details", doc.details),
            ("websocket", doc.websocket or []),
        ):
            self.lines(tab_id).set_lines(lines, keep_position=keep_position)
        websocket = doc.websocket is not None
        if self._opening:
            self._websocket_tab = websocket  # shown or hidden as it appears, just below
        elif websocket != self._websocket_tab:  # each change restyles and reflows the tabs
            self._show_websocket_tab(websocket)
        self._note()
        self._reveal()

    # --- tabs, views, search --------------------------------------------------------------------

    def lines(self, tab_id: str | None = None) -> TextLines:
        return self.query_one(f"#lines-{tab_id or self.active_tab}", TextLines)

    @property
    def active_tab(self) -> str:
        return self.query_one(TabbedContent).active or "response"

    def show_tab(self, tab_id: str) -> None:
        if tab_id == "websocket" and (self.doc is None or self.doc.websocket is None):
            return
        self.query_one(TabbedContent).active = tab_id

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        search = self.query_one("#inspector-search", Input)
        if search.value:
            self.lines().search(search.value)
        self._note()

    def _note(self) -> None:
        tab = self.active_tab
        body = None
        if self.doc is not None and tab in ("request", "response"):
            body = self.doc.request if tab == "request" else self.doc.response
        parts = [self.lines().where, f"{tab} body: {body.description}" if body and body.description else "", HINT]
        self.query_one("#inspector-note", Static).update(" · ".join(p for p in parts if p), layout=False)

    def _rerender(self, **changes: Any) -> None:
        self.options = dataclasses.replace(self.options, **changes)
        if self.seq is not None and self._row is not None:
            self._load(self.seq, self.options, (self._flow, self._row), keep_position=True)

    def cycle_view(self) -> None:
        """Next body view for the tab shown (request or response)."""
        tab = self.active_tab if self.active_tab in ("request", "response") else "response"
        field = f"{tab}_mode"
        current = getattr(self.options, field)
        self._rerender(raw=False, **{field: bodyview.MODES[(bodyview.MODES.index(current) + 1) % len(bodyview.MODES)]})
        self.app.notify(f"{tab} body view: {getattr(self.options, field)}", timeout=2)

    def toggle_pin(self) -> None:
        """Keep the body view chosen (``v``, ``x``) for the flows shown next, or let each follow its body's type."""
        self.pinned = not self.pinned
        self.app.notify(
            "body view kept for every flow" if self.pinned else "body view follows each body's type", timeout=2
        )

    def toggle_raw(self) -> None:
        self._rerender(raw=not self.options.raw)

    def more(self) -> None:
        self._rerender(limit=self.options.limit + bodyview.LIMIT)

    def open_search(self) -> Input:
        """Show the search field; the app focuses it."""
        search = self.query_one("#inspector-search", Input)
        search.add_class("-visible")
        return search

    def next_match(self, step: int) -> None:
        self.lines().next_match(step)
        self._note()

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        count = self.lines().search(event.value)
        event.input.set_class(bool(event.value) and not count, "-error")
        self._note()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Enter: the next match, and the keyboard back to the text, where n and N go from match to match (in the
        field they were letters to search for)."""
        event.stop()
        self.next_match(1)
        self.lines().focus()

    @property
    def searching(self) -> bool:
        return self.query_one("#inspector-search", Input).has_class("-visible")

    def close_search(self) -> None:
        """Hide the search field (its matches stay marked) and give the keyboard back to the text."""
        self.query_one("#inspector-search", Input).remove_class("-visible")
        self.lines().focus()

    def on_key(self, event: Any) -> None:
        if event.key == "escape" and self.query_one("#inspector-search", Input).has_focus:
            event.stop()
            self.close_search()

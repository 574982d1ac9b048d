"""``proxycap tui``: the Textual app: its layout, its keys, and the messages between its parts.

The app owns the view state and reacts to messages from its widgets; widgets render what they are given. Keeping
the view in step with the capture is ``live.Live``'s job; acting on the capture (replay, edit, delete, mark, name a
client) is ``actions.Actions``', through the control API. Both hand their workers' results back as messages
(``tui.messages``), which the app passes on.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
from collections.abc import Callable
from pathlib import Path

from textual import events
from textual.actions import SkipAction
from textual.app import App, ComposeResult
from textual.containers import Horizontal, Vertical
from textual.driver import Driver
from textual.drivers.linux_driver import LinuxDriver
from textual.widget import Widget
from textual.widgets import Input

from proxycap.capture.bus import AccessChanged, ClientRefusedEvent
from proxycap.control.api import Control, Outcome
from proxycap.internals.textual import PromptEscapeDriver
from proxycap.query.filters import FilterError
from proxycap.query.views import ViewSpec
from proxycap.storage.store import Store
from proxycap.tui import keys, messages
from proxycap.tui.access import ClientAccess
from proxycap.tui.actions import Actions
from proxycap.tui.chrome.clients import ClientNames, ClientsPanel
from proxycap.tui.chrome.edit import RequestEditScreen
from proxycap.tui.chrome.filter_bar import FilterBar
from proxycap.tui.chrome.keybar import KeyBar
from proxycap.tui.chrome.screens import ConfirmScreen, EventLogScreen, EventRow, HelpScreen, RenameScreen
from proxycap.tui.chrome.setup import SetupScreen
from proxycap.tui.chrome.status import Status, StatusBar
from proxycap.tui.commands import ProxycapCommands
from proxycap.tui.exchange.actions import ExchangeActions
from proxycap.tui.flows.flow_list import FlowList
from proxycap.tui.flows.model import SORT_COLUMNS, Change, FlowView
from proxycap.tui.inspector.panel import Inspector
from proxycap.tui.live import FEED_LIMIT, Live
from proxycap.tui.traffic import handlers
from proxycap.tui.traffic.controller import Traffic

NARROW = 100  # below this many columns the clients panel hides (until toggled by hand)
SHORT = 30  # below this many rows the inspector opens full screen
UNMOUNT_WAIT = 5.0  # seconds to let running workers finish on exit
INSPECTOR_ACTIONS = {
    "zoom_inspector", "show_tab", "body_view", "pin_body_view", "toggle_raw", "more_body", "search_body", "next_match"
}  # fmt: skip
WRITE_ACTIONS = {
    "toggle_mark", "delete", "rename_client", "toggle_pause", "replay", "edit_replay", "compose", *handlers.ACTIONS
}  # fmt: skip
LIVE_ACTIONS = {"allow_client", "deny_client", "device_setup"}  # about the running proxy


async def caught_up(widget: Widget, timeout: float = 1.0) -> None:
    """Wait until ``widget`` has handled the messages sent to it so far: its queue is first in, first out."""
    done = asyncio.get_running_loop().create_future()
    if widget.call_later(lambda: done.done() or done.set_result(None)):
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done, timeout)


class ProxycapApp(handlers.TrafficHandlers, ExchangeActions, App[int]):  # tui/traffic, tui/exchange
    CSS_PATH = "proxycap.tcss"
    TITLE = "proxycap"
    BINDINGS = keys.bindings()
    COMMANDS = App.COMMANDS | {ProxycapCommands}
    ALLOW_IN_MAXIMIZED_VIEW = "KeyBar, StatusBar"
    ESCAPE_TO_MINIMIZE = False

    def __init__(
        self,
        store_path: Path,
        control: Control | None = None,
        client: str | None = None,
        history_file: Path | None = None,
        settle: Callable[[], None] | None = None,
    ) -> None:
        """Live when given a running capture's ``control`` API, else a read-only browser of the store.

        Opens the store now, so a bad store fails before the UI takes the screen. ``history_file`` keeps the
        filter history across sessions (none: this session only). ``settle`` is called once the first frame is
        drawn: what exists then (the screen's widgets, styles, Textual itself) lives as long as the app.
        """
        super().__init__()
        self._settle = settle
        self.history_file = history_file
        self.readonly = control is None
        self.store_path = Path(store_path)
        self.store = Store(self.store_path, readonly=True)  # UI thread: small indexed reads
        self.worker_store = Store(self.store_path, readonly=True)  # workers: scans, bodies
        self.view = FlowView(self.store)
        self.view.spec = ViewSpec(client_ip=client)
        self._clients_toggled = False  # once the user toggles the clients panel, resizing no longer decides
        self.resolver = ClientNames()
        self.status = Status(self.store_path, control.listen_addrs() if control else None)
        self.events: collections.deque[EventRow] = collections.deque(maxlen=1000)
        self._event_screen: EventLogScreen | None = None
        # What the store committed, and log lines: the view reads the rest from the store.
        feed = control.subscribe("tui", FEED_LIMIT) if control else None
        self.live = Live(self, feed, beside_proxy=control is not None and control.in_process)
        self.actions = Actions(self, control)
        self.traffic = Traffic(self, control)  # breakpoints, stopped flows, rules, throttling
        self.client_access = ClientAccess(self)  # clients waiting to be allowed, the LAN note

    def get_driver_class(self) -> type[Driver]:
        """Textual's terminal driver, but answering a lone Esc without its extra 100 ms (``internals.textual``)."""
        driver = super().get_driver_class()
        return PromptEscapeDriver if driver is LinuxDriver else driver

    # --- layout ---------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        # Kept as attributes: timers may still fire while the screen is torn down, when queries fail.
        self.filter_bar = FilterBar(self.history_file, id="filter-bar")
        self.clients = ClientsPanel(self.view.spec.client_ip, id="clients")
        self.flows = FlowList(self.view, id="flows")
        self.inspector = Inspector(self.worker_store, id="inspector")
        self.status_bar = StatusBar(id="status")
        yield self.filter_bar
        with Horizontal(id="main"):
            yield self.clients
            with Vertical(id="right"):
                yield self.flows
                yield self.inspector
        yield self.status_bar
        yield KeyBar()

    @property
    def inspecting(self) -> bool:
        return self.inspector.is_open

    def on_mount(self) -> None:
        self.clients.display = self.size.width >= NARROW
        self.flows.show_client = self.view.spec.client_ip is None
        self.flows.follow = not self.readonly  # live: open at the newest flows; a browsed capture at its first
        self.flows.focus()
        self.live.start()
        self.traffic.start()
        self.client_access.refresh()
        if self.status.listen is not None:
            self.sub_title = ", ".join(f"{h}:{p}" for h, p in self.status.listen)

    def on_ready(self) -> None:
        if self._settle is not None:
            self._settle()

    async def on_unmount(self) -> None:
        self.live.stop()
        self.resolver.close()
        self.workers.cancel_all()
        # Thread workers can't be interrupted: let them finish their store call before the stores close (a cancelled
        # worker's wait raises WorkerCancelled: gathered as a result, it does not cut the waiting for the others short).
        waits = asyncio.gather(*(worker.wait() for worker in self.workers), return_exceptions=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(waits, UNMOUNT_WAIT)
        self.store.close()
        self.worker_store.close()

    # --- what workers hand back -------------------------------------------------------------------

    def on_rows_found(self, message: messages.RowsFound) -> None:
        self.live.apply(message.generation, message.found)

    def on_rows_resorted(self, message: messages.RowsResorted) -> None:
        self.live.apply_resort(message.generation, message.ordered)

    def on_clients_loaded(self, message: messages.ClientsLoaded) -> None:
        self.live.show_clients(message.rows, message.trusted)

    def on_action_done(self, message: messages.ActionDone) -> None:
        if message.announce or not message.outcome.ok:
            self.say(message.outcome)

    def say(self, outcome: Outcome | None) -> None:
        """Tell the user what became of an action (nothing if it was called off)."""
        if outcome is not None:
            self.notify(outcome.message, severity="information" if outcome.ok else "warning", timeout=3)

    def proxy_stopped(self) -> None:
        """The capture this window is attached to stopped: what it stored can still be browsed, nothing changed."""
        self.readonly = True
        self.status.listen = None
        self.status.proxy_stopped = True
        self.live.show_status()
        self.refresh_bindings()
        self.notify("the proxy stopped: this window browses its capture read-only", severity="warning", timeout=10)

    def on_access_loaded(self, message: messages.AccessLoaded) -> None:
        self.client_access.loaded(message.access)

    def access_changed(self, events: list[ClientRefusedEvent | AccessChanged]) -> None:
        """Clients refused, allowed or denied, from the feed."""
        self.client_access.heard(events)

    def log_lines(self, lines: list[EventRow]) -> None:
        """Log lines from the feed: counted in the status bar, and added to the event log if it is open."""
        self.events.extend(lines)
        self.status.warnings += len(lines)
        if self._event_screen is not None:
            self._event_screen.add(lines)

    # --- messages from widgets ------------------------------------------------------------------

    def on_filter_bar_changed(self, message: FilterBar.Changed) -> None:
        if message.text == self.filter_bar.value:  # else stale: Enter, or the next pause in typing, applies it
            self._filter(message.text)

    def _filter(self, text: str, submitted: bool = False) -> None:
        """Apply a filter (a bad expression says why and changes nothing); ``submitted``: and go to the list."""
        try:
            spec = self.view.spec.with_filter(text)
        except FilterError as e:
            self.filter_bar.show(str(e), error=True)
            return
        self.filter_bar.show("")
        if submitted:
            self.filter_bar.input.remember(text)
            self.screen.set_focus(self.flows)
        if spec != self.view.spec:
            self.live.set_spec(spec)

    def on_filter_bar_done(self, _: FilterBar.Done) -> None:
        self.flows.focus()

    def on_clients_panel_selected(self, message: ClientsPanel.Selected) -> None:
        self.live.set_spec(dataclasses.replace(self.view.spec, client_ip=message.ip))
        self.live.clients_changed()

    def on_flow_list_highlighted(self, message: FlowList.Highlighted) -> None:
        if self.inspecting:
            self.inspector.show_flow(message.seq)

    def on_flow_list_activated(self, message: FlowList.Activated) -> None:
        self.action_inspect()

    def on_flow_list_sort_requested(self, message: FlowList.SortRequested) -> None:
        spec = self.view.spec
        if message.order == spec.order:
            self.live.set_spec(dataclasses.replace(spec, descending=not spec.descending))
        else:
            self.live.set_spec(dataclasses.replace(spec, order=message.order, descending=False))

    # --- actions --------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in INSPECTOR_ACTIONS:
            return self.inspecting
        if action in WRITE_ACTIONS or action in LIVE_ACTIONS:
            return not self.readonly
        if action == "submit_filter":  # Enter is Enter elsewhere
            return self.focused is self.filter_bar.input
        return True

    def _focus_now(self, widget: Callable[[], Widget]) -> None:
        """Move the keyboard at once. The key that asks is a priority binding, which the app runs before it hands
        the next key to the focused widget: keys typed right behind it (a paste, a fast typist, keys an SSH link
        delivers together) go where the user is now looking. ``Widget.focus()`` would wait behind those keys, so
        they went to the list: the text typed after `/`, or the End after `z`, which moved the selection to the
        last flow."""
        self._skip_in_fields()
        self.screen.set_focus(widget())

    def _skip_in_fields(self) -> None:
        """A priority key is just a key in a text field or a dialog."""
        if isinstance(self.focused, Input) or self.screen is not self.flows.screen:
            raise SkipAction

    def action_focus_filter(self) -> None:
        self._focus_now(lambda: self.filter_bar.input)

    async def action_submit_filter(self) -> None:
        """Enter in the filter bar: apply it, and go to the list unless the expression is bad. It is a priority
        binding (see ``_focus_now``) so that the keys after it go where that leaves the keyboard; the keys before
        it may still wait in the field's queue, so they are let through first."""
        await caught_up(self.filter_bar.input)
        self._filter(self.filter_bar.take(), submitted=True)

    def action_inspect(self) -> None:
        if self.flows.selected is None:
            return
        self.inspector.open(self.flows.selected)
        self.refresh_bindings()

    def on_inspector_revealed(self, _: Inspector.Revealed) -> None:
        if self.size.height < SHORT:
            self.screen.maximize(self.inspector)
            self.inspector.lines().focus()
        self.refresh_bindings()

    def action_back(self) -> None:
        if self.inspecting and self.inspector.searching:  # Esc leaves the search first, then the inspector
            self.inspector.close_search()
        elif self.inspecting:
            self.screen.minimize()
            self.inspector.close()
            self.flows.focus()
            self.refresh_bindings()
        elif self.filter_bar.value:
            self._filter(self.filter_bar.clear())

    def action_zoom_inspector(self) -> None:
        if self.screen.maximized is self.inspector:
            self._skip_in_fields()
            self.screen.minimize()
        else:
            self._focus_now(self.inspector.lines)
            self.screen.maximize(self.inspector)

    def action_show_tab(self, tab: str) -> None:
        self.inspector.show_tab(tab)

    def action_body_view(self) -> None:
        self.inspector.cycle_view()

    def action_pin_body_view(self) -> None:
        self.inspector.toggle_pin()

    def action_toggle_raw(self) -> None:
        self.inspector.toggle_raw()

    def action_more_body(self) -> None:
        self.inspector.more()

    def action_search_body(self) -> None:
        self._focus_now(self.inspector.open_search)

    def action_next_match(self, step: int) -> None:
        self.inspector.next_match(step)

    def action_toggle_pause(self) -> None:
        if self.view.frozen:
            self.view.thaw()
            self.flows.forget()
        else:
            self.view.frozen = True
        self.notify("display paused (still recording)" if self.view.frozen else "display resumed", timeout=2)

    def action_toggle_follow(self) -> None:
        self.flows.follow = not self.flows.follow
        if self.flows.follow:
            self.flows.go_top() if self.view.spec.descending else self.flows.go_bottom()
        self.notify(f"follow {'on' if self.flows.follow else 'off'}", timeout=2)

    def action_go_top(self) -> None:
        self.flows.go_top()

    def action_go_bottom(self) -> None:
        self.flows.go_bottom()

    def action_toggle_mark(self) -> None:
        seq = self.flows.selected
        row = self.view.cached(seq) if seq is not None else None
        if seq is None or row is None:
            return
        marked = not row.get("marked")
        self.view.set_marked([seq], marked)  # at once; the store's confirmation redraws it from the store
        self.actions.set_marked([seq], marked)
        self.flows.forget({seq})
        self.flows.action_cursor(1)

    def action_replay(self) -> None:
        if self.flows.selected is not None:
            self.actions.replay(self.flows.selected)

    def action_edit_replay(self) -> None:
        if self.flows.selected is not None and not self.traffic.edit_selected():  # a stopped flow: where it stopped
            self.actions.edit(self.flows.selected)

    def on_editor_ready(self, message: messages.EditorReady) -> None:
        send = self.actions.send_edited(message.seq)
        self.push_screen(RequestEditScreen(message.seq, message.text, send), self.say)

    def action_delete(self) -> None:
        if self.flows.selected is not None:
            members = self.view.snapshot() if self.view.spec.expr else None
            self.actions.ask_delete(self.view.spec, members, self.flows.selected)

    def on_deletion_asked(self, message: messages.DeletionAsked) -> None:
        targets = message.targets

        def done(yes: bool | None) -> None:
            if yes:
                if self.view.remove(targets):  # at once; other windows hear it from the store
                    self.flows.sync(Change(reset=True, appended=False))
                self.actions.delete(targets)

        self.push_screen(ConfirmScreen(f"Delete {message.what} from the store? This cannot be undone."), done)

    def action_clear_view(self) -> None:
        floor = max(self.view.last_seq, self.store.max_seq())
        self.live.set_spec(dataclasses.replace(self.view.spec, floor=floor))
        self.notify(f"cleared: flows up to #{floor} are hidden (C shows them again)", timeout=3)

    def action_unclear_view(self) -> None:
        self.live.set_spec(dataclasses.replace(self.view.spec, floor=0))

    def action_cycle_sort(self) -> None:
        spec = self.view.spec
        order = SORT_COLUMNS[(SORT_COLUMNS.index(spec.order) + 1) % len(SORT_COLUMNS)]
        self.live.set_spec(dataclasses.replace(spec, order=order, descending=False))

    def action_reverse_sort(self) -> None:
        self.live.set_spec(dataclasses.replace(self.view.spec, descending=not self.view.spec.descending))

    def action_rename_client(self) -> None:
        ip = self.clients.highlighted_ip() if self.clients.has_focus_within else None
        if ip is None:
            ip = self.view.spec.client_ip
        if ip is None and self.flows.selected is not None and (row := self.view.cached(self.flows.selected)):
            ip = row["client_ip"]
        if ip is None:
            self.notify("select a client or a flow first", severity="warning")
            return
        current = self.clients.row(ip)

        def done(label: str | None) -> None:
            if label is not None:
                self.actions.set_label(ip, label or None)

        self.push_screen(RenameScreen(ip, current.name if current and current.labelled else ""), done)

    def action_toggle_clients(self) -> None:
        self._clients_toggled = True
        self.clients.display = not self.clients.display
        if not self.clients.display and self.clients.has_focus_within:
            self.flows.focus()

    def action_focus_clients(self) -> None:
        """The keyboard to the clients panel (shown if it was hidden); from there, b or Esc comes back."""
        if not self.clients.display:
            self._clients_toggled = True
            self.clients.display = True
        self.clients.options.focus()

    def action_focus_flows(self) -> None:
        self.flows.focus()

    def on_clients_panel_entered(self, _: ClientsPanel.Entered) -> None:
        self.client_access.refresh()

    def action_allow_client(self, remember: bool = False) -> None:
        self.client_access.allow(remember)

    def action_deny_client(self) -> None:
        self.client_access.deny()

    def action_device_setup(self) -> None:
        self.actions.load_setup()

    def on_setup_loaded(self, message: messages.SetupLoaded) -> None:
        if self.screen is self.flows.screen:  # not over a dialog opened meanwhile
            self.push_screen(SetupScreen(message.setup))

    def on_resize(self, event: events.Resize) -> None:
        """Collapse the clients panel when the terminal gets narrow (and bring it back), until the user decides."""
        if not self._clients_toggled:
            self.clients.display = event.size.width >= NARROW

    def action_event_log(self) -> None:
        self.run_worker(self._load_event_log, thread=True, group="events", exclusive=True, exit_on_error=False)

    def _load_event_log(self) -> None:
        self.post_message(messages.EventLogLoaded(self.worker_store.events(1000)))

    def on_event_log_loaded(self, message: messages.EventLogLoaded) -> None:
        stored = message.rows
        last = stored[-1][0] if stored else 0.0
        rows = list(stored) + [e for e in self.events if e[0] > last]  # live ones the writer has not stored yet
        self._event_screen = EventLogScreen(rows)
        self.status.warnings = 0

        def closed(_: None) -> None:
            self._event_screen = None

        self.push_screen(self._event_screen, closed)

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_quit(self) -> None:
        self.traffic.quit(lambda: self.exit(0))  # stopped flows: asks, and sends them on first

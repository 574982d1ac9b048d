"""``proxycap tui``: the Textual app and its wiring to the capture session.

The app owns the view state and reacts to messages from its widgets; widgets render what they are given.
Live traffic arrives two ways: a timer drains the app's bus subscription (updates to rows already on screen,
log lines, the request rate) and asks the store for rows past the last one seen (new flows, an indexed
range query). Anything that may take long (full loads, filter expressions, resorting, client stats, reverse
DNS, flow bodies, writes) runs in a thread worker on a second store connection.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mitmproxy import http
from textual import events, work
from textual.actions import SkipAction
from textual.app import App, ComposeResult
from textual.containers import Horizontal, Vertical
from textual.driver import Driver
from textual.drivers.linux_driver import LinuxDriver
from textual.widget import Widget
from textual.widgets import Input
from textual.worker import Worker, get_current_worker

from proxycap.capture.bus import ClientEvent, FlowEvent, LogEvent
from proxycap.capture.engine import EngineError
from proxycap.capture.summary import META_REPLAY_OF
from proxycap.control.editing import EditError, request_text
from proxycap.control.session import CaptureSession
from proxycap.internals.textual import PromptEscapeDriver
from proxycap.query.filters import FilterError
from proxycap.query.views import Found, ViewSpec, discover_sql, load_quick, load_sql, resort, scan_expr
from proxycap.runtime import gcsettle, switching
from proxycap.storage.store import Store
from proxycap.tui import keys
from proxycap.tui.chrome.clients import ClientRow, ClientsPanel, ReverseDNS, client_rows
from proxycap.tui.chrome.edit import EditScreen
from proxycap.tui.chrome.filter_bar import FilterBar
from proxycap.tui.chrome.keybar import KeyBar
from proxycap.tui.chrome.screens import ConfirmScreen, EventLogScreen, EventRow, HelpScreen, RenameScreen
from proxycap.tui.chrome.status import Status, StatusBar
from proxycap.tui.commands import ProxycapCommands
from proxycap.tui.flows.flow_list import FlowList
from proxycap.tui.flows.model import SORT_COLUMNS, Change, FlowView
from proxycap.tui.inspector.panel import Inspector

TICK = 0.1  # seconds between bus drains / store polls, at the most
# The UI shares the GIL with the proxy it watches: while flows stream in, each tick's redraw of the whole list
# costs tens of ms, so ticks are spaced to keep the UI thread under this share of a core (keys still answer at
# once; only the live updates slow down), down to one a second. 5 % rather than 10 %: +7-9 % of the proxy's
# throughput under full load (bench/RESULTS.md), for a list scrolling 2-4 times a second instead of 4-8.
UI_SHARE = 0.05
MAX_TICK = 1.0
# While the proxy is busy, one live update every 2 s: each one (drawn in one go, tui/switching.py) delays the
# requests in flight, whatever its length, so how often it comes is what counts in the proxy's p99 latency
# (-15-40 %, bench/RESULTS.md). A flood scrolls by unread anyway.
BUSY_RATE = 200  # flows a second
BUSY_TICK = 2.0
CLIENTS_INTERVAL = 1.0
CLIENTS_MAX_SHARE = 0.05  # the clients panel's refresh may take at most this share of the time
RESORT_INTERVAL = 1.0  # at most this often while new flows arrive in a non-# sort
INSPECT_DELAY = 0.3  # after a change to the inspected flow, let the store writer catch up before reloading
RATE_WINDOW = 5.0
NARROW = 100  # below this many columns the clients panel hides (until toggled by hand)
SHORT = 30  # below this many rows the inspector opens full screen
BUS_LIMIT = 50_000
UNMOUNT_WAIT = 5.0  # seconds to let running workers finish on exit
INSPECTOR_ACTIONS = {"zoom_inspector", "show_tab", "body_view", "toggle_raw", "more_body", "search_body", "next_match"}
WRITE_ACTIONS = {"toggle_mark", "delete", "rename_client", "toggle_pause", "replay", "edit_replay"}


async def caught_up(widget: Widget, timeout: float = 1.0) -> None:
    """Wait until ``widget`` has handled the messages sent to it so far: its queue is first in, first out."""
    done = asyncio.get_running_loop().create_future()
    if widget.call_later(lambda: done.done() or done.set_result(None)):
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done, timeout)


def tick_interval(cpu: float, rate: float) -> float:
    """Seconds to the next tick, after one that took ``cpu`` seconds of the UI thread with its frames."""
    return BUSY_TICK if rate >= BUSY_RATE else min(MAX_TICK, max(TICK, cpu / UI_SHARE))


class ProxycapApp(App[int]):
    CSS_PATH = "proxycap.tcss"
    TITLE = "proxycap"
    BINDINGS = keys.bindings()
    COMMANDS = App.COMMANDS | {ProxycapCommands}
    ALLOW_IN_MAXIMIZED_VIEW = "KeyBar, StatusBar"
    ESCAPE_TO_MINIMIZE = False

    def __init__(
        self,
        store_path: Path,
        session: CaptureSession | None = None,
        client: str | None = None,
        history_file: Path | None = None,
        settle: Callable[[], None] | None = None,
    ) -> None:
        """Live when given a started ``session`` (not stopped here), else a read-only browser of the store.

        Opens the store now, so a bad store fails before the UI takes the screen. ``history_file`` keeps the
        filter history across sessions (none: this session only). ``settle`` is called once the first frame is
        drawn: what exists then (the screen's widgets, styles, Textual itself) lives as long as the app.
        """
        super().__init__()
        self._settle = settle
        self.history_file = history_file
        self.session = session
        self.readonly = session is None
        self.store_path = Path(store_path)
        self.store = Store(self.store_path, readonly=self.readonly)  # UI thread: small indexed reads
        self.worker_store = Store(self.store_path, readonly=self.readonly)  # workers: scans, bodies, writes
        # Which flows changed, not how: rows come from the store, so the proxy's thread makes no summaries for the UI.
        self.sub = session.bus.subscribe("tui", limit=BUS_LIMIT, summaries=False) if session else None
        self.view = FlowView(self.store)
        self._clients_toggled = False  # once the user toggles the clients panel, resizing no longer decides
        self._closing = False
        self._clients_at = self._clients_cost = 0.0  # when the clients panel was last loaded, and how long it took
        self.view.spec = ViewSpec(client_ip=client)
        self.resolver = ReverseDNS()
        self.status = Status(self.store_path, session.engine.listen_addrs if session else None)
        self.events: collections.deque[EventRow] = collections.deque(maxlen=1000)
        self._rate: collections.deque[tuple[float, int]] = collections.deque()
        self._scan_worker: Worker[None] | None = None
        self._resort_worker: Worker[None] | None = None
        self._last_resort = 0.0
        self._clients_dirty = True
        self._clients_rows: list[ClientRow] | None = None  # loaded, not shown yet
        self._inspect_due: float | None = None
        self._tick_cpu = 0.0  # the UI thread's CPU time at the last tick (spaces ticks out under load)
        self._event_screen: EventLogScreen | None = None

    def get_driver_class(self) -> type[Driver]:
        """Textual's terminal driver, but answering a lone Esc without its extra 100 ms (``driver.py``)."""
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
        self._reload()
        self._tick_cpu = time.thread_time()
        self._tick_timer = self.set_timer(TICK, self._tick)
        self._clients_timer = self.set_interval(CLIENTS_INTERVAL, self._refresh_clients)
        self._refresh_clients()
        if self.session is not None:
            self.sub_title = ", ".join(f"{h}:{p}" for h, p in self.status.listen or [])

    def on_ready(self) -> None:
        if self._settle is not None:
            self._settle()

    async def on_unmount(self) -> None:
        self._closing = True  # a timer already under way must not touch the stores closed below
        switching.restore()
        self._tick_timer.stop()
        self._clients_timer.stop()
        if self.sub is not None:
            self.sub.close()
        self.resolver.close()
        self.workers.cancel_all()
        # Thread workers can't be interrupted: let them finish their store call before the stores close (a cancelled
        # worker's wait raises WorkerCancelled: gathered as a result, it does not cut the waiting for the others short).
        waits = asyncio.gather(*(worker.wait() for worker in self.workers), return_exceptions=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(waits, UNMOUNT_WAIT)
        self.store.close()
        self.worker_store.close()

    # --- loading the view -----------------------------------------------------------------------

    def _set_spec(self, spec: ViewSpec) -> None:
        self.flows.show_client = spec.client_ip is None
        if self.view.begin(spec):
            self._reload()
        else:
            self.flows.sync(Change(reset=True, appended=False))

    def _reload(self) -> None:
        """Load the current spec from the store (in a worker; replaces the list when it is done)."""
        spec, gen = self.view.spec, self.view.generation
        if spec.expr:
            self.filter_bar.show("filtering…")
            self._scan_worker = self._scan(gen, spec, spec.floor, [], True)
        else:
            # The first screenful in the very next frame (a worker's result would come a frame later); the
            # whole view after that frame, so its scan does not slow the frame down.
            quick = load_quick(self.store, spec, self.flows.body_height, self.flows.selected)
            if quick is None:
                self._load(gen, spec)
            else:
                self._apply(gen, quick)
                if not quick.done:
                    self.call_after_refresh(self._load, gen, spec)

    @work(thread=True, exclusive=True, group="view", exit_on_error=False)
    def _load(self, gen: int, spec: ViewSpec) -> None:
        if gen == self.view.generation:  # not overtaken while it waited for its turn
            self.call_from_thread(self._apply, gen, load_sql(self.worker_store, spec))

    @work(thread=True, exclusive=True, group="view", exit_on_error=False)
    def _scan(self, gen: int, spec: ViewSpec, after: int, recheck: list[str], reset: bool) -> None:
        worker = get_current_worker()
        scan_expr(
            self.worker_store,
            spec,
            after,
            recheck,
            report=lambda batch: self.call_from_thread(self._apply, gen, batch),
            cancelled=lambda: worker.is_cancelled or gen != self.view.generation,
            reset=reset,
        )

    def _apply(self, gen: int, batch: Found) -> None:
        if gen != self.view.generation:
            return
        self.flows.sync(self.view.apply(batch))
        if self.view.spec.expr:
            if batch.done:
                self.filter_bar.show(f"{len(self.view):,} matching")
            elif batch.total:
                self.filter_bar.show(f"filtering… {100 * batch.scanned // batch.total}% · {len(self.view):,} found")
        if batch.seqs:
            self._clients_dirty = True
        if batch.reset:
            self._show_status()  # a new view's count at once, not at the next tick (up to a second away)

    @work(thread=True, exclusive=True, group="resort", exit_on_error=False)
    def _resort(self, gen: int, spec: ViewSpec, members: list[int]) -> None:
        ordered = resort(self.worker_store, spec, members)
        self.call_from_thread(self._apply_resort, gen, ordered)

    def _apply_resort(self, gen: int, ordered: list[int]) -> None:
        if gen == self.view.generation:
            self.flows.sync(self.view.apply_resort(ordered))

    # --- live updates ---------------------------------------------------------------------------

    def _tick(self) -> None:
        if self._closing:
            return
        now = time.monotonic()
        switching.updating()
        self.call_after_refresh(self._updated)
        cpu, self._tick_cpu = self._tick_cpu, time.thread_time()
        self._tick_timer = self.set_timer(tick_interval(self._tick_cpu - cpu, self.status.rate), self._tick)
        if self.sub is not None:
            self._drain(now)
        view = self.view
        if not view.frozen and not view.loading:
            if view.spec.expr:
                idle = self._scan_worker is None or self._scan_worker.is_finished
                if idle and (view.recheck or self.store.max_seq() > view.last_seq):
                    recheck, view.recheck = list(view.recheck), set()
                    self._scan_worker = self._scan(view.generation, view.spec, view.last_seq, recheck, False)
            elif batch := discover_sql(self.store, view.spec, view.last_seq):
                self._apply(view.generation, batch)
            idle = self._resort_worker is None or self._resort_worker.is_finished
            if view.unsorted and idle and now - self._last_resort >= RESORT_INTERVAL:
                self._last_resort = now
                self._resort_worker = self._resort(view.generation, view.spec, view.snapshot())
        if self._inspect_due is not None and now >= self._inspect_due:
            self._inspect_due = None
            self.inspector.show_flow(self.inspector.seq, reload=True)
        if self._clients_rows is not None:
            self.clients.update_rows(self._clients_rows)
            self.status.total = sum(r.flows for r in self._clients_rows)
            self._clients_rows = None
        self._show_status()

    def _updated(self) -> None:
        """The tick's frame is drawn: a full collection now stalls the requests its update already held up."""
        gcsettle.collect_due()
        switching.updated()

    def _drain(self, now: float) -> None:
        """Apply what the bus brought since the last tick."""
        assert self.sub is not None
        if self.sub.take_lagged():  # events were dropped: trust only the store
            self.view.invalidate()
            self.flows.forget()
            self.view.begin(self.view.spec, force=True)
            self._reload()
        flow_events: list[FlowEvent] = []
        logs: list[EventRow] = []
        requests = 0
        events = self.sub.drain(BUS_LIMIT)
        for ev in events:
            if isinstance(ev, FlowEvent):
                flow_events.append(ev)
                requests += ev.kind in ("response", "error")  # once per flow: only slow ones announce their request
            elif isinstance(ev, LogEvent):
                logs.append((ev.ts, ev.level, ev.message, ev.client_ip, ev.flow_id))
            elif isinstance(ev, ClientEvent):
                self._clients_dirty = True
        if flow_events:
            self._clients_dirty = True
            if self.inspector.seq in self.view.apply_events(flow_events, now) and self._inspect_due is None:
                self._inspect_due = now + INSPECT_DELAY
        if stale := self.view.stale(now):
            self.flows.forget(stale)
        self._rate.append((now, requests))
        while self._rate and self._rate[0][0] < now - RATE_WINDOW:
            self._rate.popleft()
        if logs:
            self.events.extend(logs)
            self.status.warnings += len(logs)
            if self._event_screen is not None:
                self._event_screen.add(logs)

    def _show_status(self) -> None:
        s = self.status
        s.shown = None if self.view.loading else len(self.view)
        if s.shown is not None and self.view.spec.shows_all:
            s.total = s.shown  # exact at once; the clients panel's sum is up to a refresh behind
        s.paused = self.view.frozen
        s.rate = sum(n for _, n in self._rate) / RATE_WINDOW
        self.status_bar.show(s)

    def _clients_changed(self) -> None:
        """The user changed something the panel shows: refresh it on the next round, whatever it costs."""
        self._clients_dirty = True
        self._clients_at = 0.0

    def _refresh_clients(self) -> None:
        """Refresh the per-client counts, less often as the store grows (its GROUP BY scans every flow)."""
        due = time.monotonic() - self._clients_at >= self._clients_cost / CLIENTS_MAX_SHARE
        if not self._closing and (self._clients_dirty or self.resolver.pending) and due:
            self._clients_dirty = False
            self._load_clients(self.view.spec.client_ip)

    @work(thread=True, exclusive=True, group="clients", exit_on_error=False)
    def _load_clients(self, include: str | None) -> None:
        start = time.monotonic()
        rows = client_rows(self.worker_store, self.resolver, include)
        trusted = self.status.ca_hint and self.worker_store.https_answered()
        self._clients_at, self._clients_cost = start, time.monotonic() - start
        self.call_from_thread(self._show_clients, rows, trusted)

    def _show_clients(self, rows: list[ClientRow], trusted: bool) -> None:
        """Shown by the next tick, in the frame that shows the new flows: a frame of its own would redraw the whole
        screen (Textual redraws the box around everything that changed, here the panel and the status bar)."""
        self._clients_rows = rows
        self.status.ca_hint = self.status.ca_hint and not trusted

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
            self._set_spec(spec)

    def on_filter_bar_done(self, _: FilterBar.Done) -> None:
        self.flows.focus()

    def on_clients_panel_selected(self, message: ClientsPanel.Selected) -> None:
        self._set_spec(dataclasses.replace(self.view.spec, client_ip=message.ip))
        self._clients_changed()

    def on_flow_list_highlighted(self, message: FlowList.Highlighted) -> None:
        if self.inspecting:
            self.inspector.show_flow(message.seq)

    def on_flow_list_activated(self, message: FlowList.Activated) -> None:
        self.action_inspect()

    def on_flow_list_sort_requested(self, message: FlowList.SortRequested) -> None:
        spec = self.view.spec
        if message.order == spec.order:
            self._set_spec(dataclasses.replace(spec, descending=not spec.descending))
        else:
            self._set_spec(dataclasses.replace(spec, order=message.order, descending=False))

    # --- actions --------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in INSPECTOR_ACTIONS:
            return self.inspecting
        if action in WRITE_ACTIONS:
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
        if self.inspecting:
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
        self.view.set_marked([seq], marked)
        self._write(self.worker_store.set_marked, [seq], marked)
        self.flows.forget({seq})
        self.flows.action_cursor(1)

    def action_replay(self) -> None:
        if self.flows.selected is not None:
            self._replay(self.flows.selected)

    def action_edit_replay(self) -> None:
        if self.flows.selected is not None:
            self._edit(self.flows.selected)

    @work(thread=True, group="replay", exit_on_error=False)
    def _edit(self, seq: int) -> None:
        original = self.worker_store.load_flow(seq)
        try:
            if not isinstance(original, http.HTTPFlow):
                raise EditError("it is not an HTTP flow")
            text = request_text(original.request)
        except EditError as e:
            self.call_from_thread(self.notify, f"flow #{seq} cannot be edited: {e}", severity="warning")
            return

        def done(request: http.Request | None) -> None:
            if request is not None:
                self._replay(seq, original, request)

        self.call_from_thread(self.push_screen, EditScreen(seq, original.request, text), done)

    @work(thread=True, group="replay", exit_on_error=False)
    def _replay(self, seq: int, original: http.HTTPFlow | None = None, request: http.Request | None = None) -> None:
        """Replay a copy (a new flow, naming the original), as Fiddler reissues a session: mitmproxy would replay
        the flow itself and overwrite its response, and the stored flow would change under the user. ``original``:
        the flow if already loaded; ``request``: an edited one to send instead of the captured."""
        assert self.session is not None
        if original is None:
            original = self.worker_store.load_flow(seq)
        if not isinstance(original, http.HTTPFlow):
            self.call_from_thread(self.notify, f"flow #{seq} cannot be replayed", severity="warning")
            return
        again = original.copy()
        if request is not None:
            again.request = request
        again.metadata[META_REPLAY_OF] = original.id
        try:
            error = self.session.engine.replay(again)
        except (EngineError, TimeoutError) as e:
            error = str(e) or "the proxy did not answer"
        message = f"replay of #{seq}: {error}" if error else f"replaying #{seq}: the answer comes as a new flow"
        self.call_from_thread(self.notify, message, severity="warning" if error else "information", timeout=3)

    def action_delete(self) -> None:
        if self.flows.selected is not None:
            self._find_deletable(
                self.view.spec, self.view.snapshot() if self.view.spec.expr else None, self.flows.selected
            )

    @work(thread=True, exclusive=True, group="delete", exit_on_error=False)
    def _find_deletable(self, spec: ViewSpec, members: list[int] | None, selected: int) -> None:
        """The marked flows in the view, or else the selected one; then ask."""
        query = dataclasses.replace(spec.query(), marked=True)
        marked = self.worker_store.seqs(query)
        if members is not None:
            keep = set(members)
            marked = [s for s in marked if s in keep]
        targets = marked or [selected]
        what = f"the {len(targets):,} marked flows" if marked else f"flow #{selected}"
        self.call_from_thread(self._confirm_delete, targets, what)

    def _confirm_delete(self, targets: list[int], what: str) -> None:
        def done(yes: bool | None) -> None:
            if yes:
                self.view.remove(targets)
                self.flows.sync(Change(reset=True, appended=False))
                self._write(self.worker_store.delete, targets)

        self.push_screen(ConfirmScreen(f"Delete {what} from the store? This cannot be undone."), done)

    @work(thread=True, group="write", exit_on_error=False)
    def _write(self, method: Any, *args: Any) -> None:
        method(*args)
        self._clients_changed()

    def action_clear_view(self) -> None:
        floor = max(self.view.last_seq, self.store.max_seq())
        self._set_spec(dataclasses.replace(self.view.spec, floor=floor))
        self.notify(f"cleared: flows up to #{floor} are hidden (C shows them again)", timeout=3)

    def action_unclear_view(self) -> None:
        self._set_spec(dataclasses.replace(self.view.spec, floor=0))

    def action_cycle_sort(self) -> None:
        spec = self.view.spec
        order = SORT_COLUMNS[(SORT_COLUMNS.index(spec.order) + 1) % len(SORT_COLUMNS)]
        self._set_spec(dataclasses.replace(spec, order=order, descending=False))

    def action_reverse_sort(self) -> None:
        self._set_spec(dataclasses.replace(self.view.spec, descending=not self.view.spec.descending))

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
                self._write(self.worker_store.set_label, ip, label or None)

        self.push_screen(RenameScreen(ip, current.name if current and current.labelled else ""), done)

    def action_toggle_clients(self) -> None:
        self._clients_toggled = True
        self.clients.display = not self.clients.display

    def on_resize(self, event: events.Resize) -> None:
        """Collapse the clients panel when the terminal gets narrow (and bring it back), until the user decides."""
        if not self._clients_toggled:
            self.clients.display = event.size.width >= NARROW

    def action_event_log(self) -> None:
        self._open_event_log()

    @work(thread=True, exclusive=True, group="events", exit_on_error=False)
    def _open_event_log(self) -> None:
        stored = self.worker_store.events(1000)
        self.call_from_thread(self._show_event_log, stored)

    def _show_event_log(self, stored: list[EventRow]) -> None:
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
        self.exit(0)

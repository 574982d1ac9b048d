"""Keeping the screen in step with the capture: views loaded in workers, and live updates paced by the UI's CPU.

A timer drains the control feed (what the store committed, log lines worth showing) and asks the store only for
what it committed: the rows past the last one seen (new flows, an indexed range query), and the cached rows it
changed. Anything that may take long (whole views, filter expressions, resorting, client counts, reverse DNS) runs
in a worker on the app's second store connection and comes back as a message (``tui.messages``).
"""

from __future__ import annotations

import collections
import contextlib
import time
from collections.abc import Callable
from typing import Any, Protocol

from textual.css.query import NoMatches
from textual.timer import Timer
from textual.worker import Worker, get_current_worker

from proxycap.capture.bus import AccessChanged, BreakpointsChanged, ClientRefusedEvent, Committed, LogEvent, StoreStatus
from proxycap.control.api import Feed
from proxycap.query.views import Found, ViewSpec, discover_sql, load_quick, load_sql, resort, scan_expr
from proxycap.runtime import gcsettle, switching
from proxycap.storage.store import Store
from proxycap.tui.chrome.clients import ClientNames, ClientRow, ClientsPanel, client_rows
from proxycap.tui.chrome.filter_bar import FilterBar
from proxycap.tui.chrome.screens import EventRow
from proxycap.tui.chrome.status import Status, StatusBar
from proxycap.tui.flows.flow_list import FlowList
from proxycap.tui.flows.model import Change, FlowView
from proxycap.tui.inspector.panel import Inspector
from proxycap.tui.messages import ClientsLoaded, RowsFound, RowsResorted

TICK = 0.1  # seconds between feed drains, at the most
# The UI shares the GIL with the proxy it watches: while flows stream in, each tick's redraw of the whole list
# costs tens of ms, so ticks are spaced to keep the UI thread under this share of a core (keys still answer at
# once; only the live updates slow down), down to one a second. 5 % rather than 10 %: more of the proxy's
# throughput under full load (bench/RESULTS.md, "Live updates under load"), for a list that scrolls less often.
UI_SHARE = 0.05
MAX_TICK = 1.0
# While the proxy is busy, one live update every 2 s: each one (drawn in one go, runtime/switching.py) delays the
# requests in flight, whatever its length, so how often it comes is what counts in the proxy's p99 latency
# (bench/RESULTS.md, "Live updates under load"). A flood scrolls by unread anyway.
BUSY_RATE = 200  # flows a second
BUSY_TICK = 2.0
# A window attached from another process has a GIL of its own: it updates as often as its CPU allows, taking at
# most this share of a core (the proxy keeps the rest of a shared machine).
ATTACHED_SHARE = 0.25
CLIENTS_INTERVAL = 1.0
CLIENTS_MAX_SHARE = 0.05  # the clients panel's refresh may take at most this share of the time
RESORT_INTERVAL = 1.0  # at most this often while new flows arrive in a non-# sort
RATE_WINDOW = 5.0
FEED_LIMIT = 50_000


def tick_interval(cpu: float, rate: float, beside_proxy: bool = True) -> float:
    """Seconds to the next tick, after one that took ``cpu`` seconds of the UI thread with its frames; with
    ``beside_proxy`` the UI runs in the proxy's process."""
    if not beside_proxy:
        return min(MAX_TICK, max(TICK, cpu / ATTACHED_SHARE))
    return BUSY_TICK if rate >= BUSY_RATE else min(MAX_TICK, max(TICK, cpu / UI_SHARE))


class LiveApp(Protocol):
    """What ``Live`` uses of the app: its stores, its parts, and Textual's timers, workers and messages."""

    view: FlowView
    store: Store  # the UI thread's connection
    worker_store: Store  # the workers'
    resolver: ClientNames
    status: Status
    flows: FlowList
    filter_bar: FilterBar
    clients: ClientsPanel
    inspector: Inspector
    status_bar: StatusBar
    run_worker: Callable[..., Worker[Any]]
    set_timer: Callable[..., Timer]
    set_interval: Callable[..., Timer]
    call_after_refresh: Callable[..., bool]
    post_message: Callable[..., bool]

    def log_lines(self, lines: list[EventRow]) -> None: ...

    def proxy_stopped(self) -> None: ...

    def breakpoints_changed(self, event: BreakpointsChanged | None) -> None: ...

    def access_changed(self, events: list[ClientRefusedEvent | AccessChanged]) -> None: ...


class Live:
    """The app's view of the capture, kept current: loads, ticks, client counts. Owned by the app, which forwards
    the workers' messages to it."""

    def __init__(self, app: LiveApp, feed: Feed | None, beside_proxy: bool) -> None:
        self.app = app
        self.view = app.view
        self.feed = feed
        self.beside_proxy = beside_proxy  # shares the proxy's GIL: live updates make way for it
        self.closing = False
        self._rate: collections.deque[tuple[float, int]] = collections.deque()
        self._scan_worker: Worker[None] | None = None
        self._resort_worker: Worker[None] | None = None
        self._last_resort = 0.0
        self._committed = False  # the store committed something since the last tick
        self._clients_dirty = True
        self._clients_rows: list[ClientRow] | None = None  # loaded, not shown yet
        self._clients_at = self._clients_cost = 0.0  # when the clients panel was last loaded, and how long it took
        self._tick_cpu = 0.0  # the UI thread's CPU time at the last tick (spaces ticks out under load)
        self._tick_timer: Timer | None = None
        self._clients_timer: Timer | None = None

    def start(self) -> None:
        self.reload()
        self._tick_cpu = time.thread_time()
        self._tick_timer = self.app.set_timer(TICK, self.tick)
        self._clients_timer = self.app.set_interval(CLIENTS_INTERVAL, self.refresh_clients)
        self.refresh_clients()

    def stop(self) -> None:
        """The app is closing: a timer already under way must not touch the stores it closes next."""
        self.closing = True
        switching.restore()
        for timer in (self._tick_timer, self._clients_timer):
            if timer is not None:
                timer.stop()
        if self.feed is not None:
            self.feed.close()

    def _work(self, fn: Callable[..., None], *args: Any, group: str, exclusive: bool = True) -> Worker[None]:
        return self.app.run_worker(
            lambda: fn(*args), thread=True, group=group, exclusive=exclusive, exit_on_error=False
        )

    # --- loading the view -----------------------------------------------------------------------

    def set_spec(self, spec: ViewSpec) -> None:
        self.app.flows.show_client = spec.client_ip is None
        if self.view.begin(spec):
            self.reload()
        else:
            self.app.flows.sync(Change(reset=True, appended=False))

    def reload(self) -> None:
        """Load the current spec from the store (in a worker; replaces the list when it is done)."""
        spec, gen = self.view.spec, self.view.generation
        if spec.expr:
            self.app.filter_bar.show("filtering…")
            self._scan_worker = self._work(self._scan, gen, spec, spec.floor, [], True, group="view")
            return
        # The first screenful in the very next frame (a worker's result would come a frame later); the
        # whole view after that frame, so its scan does not slow the frame down.
        flows = self.app.flows
        quick = load_quick(self.app.store, spec, flows.body_height, flows.selected)
        if quick is None:
            self._work(self._load, gen, spec, group="view")
        else:
            self.apply(gen, quick)
            if not quick.done:
                self.app.call_after_refresh(self._work, self._load, gen, spec, group="view")

    def _load(self, gen: int, spec: ViewSpec) -> None:
        if gen == self.view.generation:  # not overtaken while it waited for its turn
            self.app.post_message(RowsFound(gen, load_sql(self.app.worker_store, spec)))

    def _scan(self, gen: int, spec: ViewSpec, after: int, recheck: list[str], reset: bool) -> None:
        worker = get_current_worker()
        scan_expr(
            self.app.worker_store,
            spec,
            after,
            recheck,
            report=lambda found: self.app.post_message(RowsFound(gen, found)),
            cancelled=lambda: worker.is_cancelled or gen != self.view.generation,
            reset=reset,
        )

    def apply(self, gen: int, found: Found) -> None:
        if gen != self.view.generation:
            return
        self.app.flows.sync(self.view.apply(found))
        if found.undecided:  # live when the scan read them: those finished since are checked again
            self.view.finished(self.app.store.finished(found.undecided))
        if self.view.spec.expr:
            if found.done:
                self.app.filter_bar.show(f"{len(self.view):,} matching")
            elif found.total:
                self.app.filter_bar.show(f"filtering… {100 * found.scanned // found.total}% · {len(self.view):,} found")
        if found.seqs:
            self._clients_dirty = True
        if found.reset:
            self.show_status()  # a new view's count at once, not at the next tick (up to a second away)

    def _resort(self, gen: int, spec: ViewSpec, members: list[int]) -> None:
        self.app.post_message(RowsResorted(gen, resort(self.app.worker_store, spec, members)))

    def apply_resort(self, gen: int, ordered: list[int]) -> None:
        if gen == self.view.generation:
            self.app.flows.sync(self.view.apply_resort(ordered))

    # --- live updates ---------------------------------------------------------------------------

    def tick(self) -> None:
        if self.closing:
            return
        now = time.monotonic()
        switching.updating()
        self.app.call_after_refresh(self._updated)
        cpu, self._tick_cpu = self._tick_cpu, time.thread_time()
        interval = tick_interval(self._tick_cpu - cpu, self.app.status.rate, self.beside_proxy)
        self._tick_timer = self.app.set_timer(interval, self.tick)
        if self.feed is not None:
            self._drain(now)
        view = self.view
        if self._committed and not view.frozen and not view.loading:
            self._committed = False
            if view.spec.expr:
                idle = self._scan_worker is None or self._scan_worker.is_finished
                if idle and (view.recheck or self.app.store.max_seq() > view.last_seq):
                    recheck, view.recheck = list(view.recheck), set()
                    self._scan_worker = self._work(
                        self._scan, view.generation, view.spec, view.last_seq, recheck, False, group="view"
                    )
                else:
                    self._committed = True  # look again at the next tick
            elif found := discover_sql(self.app.store, view.spec, view.last_seq):
                self.apply(view.generation, found)
            idle = self._resort_worker is None or self._resort_worker.is_finished
            if view.unsorted and idle and now - self._last_resort >= RESORT_INTERVAL:
                self._last_resort = now
                self._resort_worker = self._work(
                    self._resort, view.generation, view.spec, view.snapshot(), group="resort"
                )
            elif view.unsorted:
                self._committed = True
        if self._clients_rows is not None:
            with contextlib.suppress(NoMatches):  # the app is closing: the panel's list is gone already
                self.app.clients.update_rows(self._clients_rows)
            self.app.status.total = sum(r.flows for r in self._clients_rows)
            self._clients_rows = None
        self.show_status()

    def _updated(self) -> None:
        """The tick's frame is drawn: a full collection now stalls the requests its update already held up."""
        gcsettle.collect_due()
        switching.updated()

    def _drain(self, now: float) -> None:
        """Apply what the feed brought since the last tick."""
        assert self.feed is not None
        app, view = self.app, self.view
        if self.feed.take_lagged():  # events were dropped: trust only the store
            view.invalidate()
            app.flows.forget()
            view.begin(view.spec, force=True)
            self.reload()
            app.breakpoints_changed(None)
        logs: list[EventRow] = []
        breakpoints: BreakpointsChanged | None = None  # each says it all: the last one will do
        access: list[ClientRefusedEvent | AccessChanged] = []
        finished = 0
        changed: set[int] = set()  # cached rows to draw again
        touched: set[int] = set()  # every row that changed
        for ev in self.feed.drain(FEED_LIMIT):
            if isinstance(ev, Committed):
                self._committed = True
                self._clients_dirty = True
                finished += sum(state != "live" for _, _, state in ev.flows)
                changed |= view.committed(ev)
                touched.update(seq for _, seq, _ in ev.flows)
                touched.update(ev.edited)
                if ev.removed and view.remove(ev.removed):
                    app.flows.sync(Change(reset=True, appended=False))
                if ev.clients:
                    self.clients_changed()
            elif isinstance(ev, LogEvent):
                logs.append((ev.ts, ev.level, ev.message, ev.client_ip, ev.flow_id))
            elif isinstance(ev, StoreStatus):
                app.status.store_problem = ev.message if ev.state == "failing" else None
                app.status.lost += ev.lost
            elif isinstance(ev, BreakpointsChanged):
                breakpoints = ev
            elif isinstance(ev, ClientRefusedEvent | AccessChanged):
                access.append(ev)
        if changed:
            app.flows.forget(changed)
        if app.inspector.seq in touched:
            app.inspector.show_flow(app.inspector.seq, reload=True)
        self._rate.append((now, finished))
        while self._rate and self._rate[0][0] < now - RATE_WINDOW:
            self._rate.popleft()
        if logs:
            app.log_lines(logs)
        if breakpoints is not None:
            app.breakpoints_changed(breakpoints)
        if access:
            app.access_changed(access)
        if self.feed.ended:  # the capture (another process) stopped: the window stays, reading the store
            self.feed.close()
            self.feed = None
            app.proxy_stopped()

    def show_status(self) -> None:
        s = self.app.status
        s.shown = None if self.view.loading else len(self.view)
        if s.shown is not None and self.view.spec.shows_all:
            s.total = s.shown  # exact at once; the clients panel's sum is up to a refresh behind
        s.paused = self.view.frozen
        s.rate = sum(n for _, n in self._rate) / RATE_WINDOW
        self.app.status_bar.show(s)

    # --- the clients panel ----------------------------------------------------------------------

    def clients_changed(self) -> None:
        """The user changed something the panel shows: refresh it on the next round, whatever it costs."""
        self._clients_dirty = True
        self._clients_at = 0.0

    def refresh_clients(self) -> None:
        """Refresh the per-client counts, less often as the store grows (its GROUP BY scans every flow)."""
        due = time.monotonic() - self._clients_at >= self._clients_cost / CLIENTS_MAX_SHARE
        if not self.closing and (self._clients_dirty or self.app.resolver.pending) and due:
            self._clients_dirty = False
            self._work(self._load_clients, self.view.spec.client_ip, group="clients")

    def _load_clients(self, include: str | None) -> None:
        start = time.monotonic()
        app = self.app
        rows = client_rows(app.worker_store, app.resolver, include)
        trusted = app.status.ca_hint and app.worker_store.https_answered()
        self._clients_at, self._clients_cost = start, time.monotonic() - start
        app.post_message(ClientsLoaded(rows, trusted))

    def show_clients(self, rows: list[ClientRow], trusted: bool) -> None:
        """Shown by the next tick, in the frame that shows the new flows: a frame of its own would redraw the whole
        screen (Textual redraws the box around everything that changed, here the panel and the status bar)."""
        self._clients_rows = rows
        self.app.status.ca_hint = self.app.status.ca_hint and not trusted

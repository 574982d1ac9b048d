"""The app's actions to copy, export, compare and compose: each opens a screen or starts a worker, and handles what
its worker posts back. Nothing here reads the store or calls the control API on the UI thread, but for the one
indexed look-up of a replay's original."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual.worker import Worker, get_current_worker

from proxycap.exchange.composer import composer_template
from proxycap.storage.store import Query, Store
from proxycap.tui.actions import Actions
from proxycap.tui.chrome.edit import RequestEditScreen
from proxycap.tui.chrome.screens import ConfirmScreen
from proxycap.tui.chrome.status import Status, StatusBar
from proxycap.tui.exchange.comparing import CompareReady, CompareScreen, compare_flows
from proxycap.tui.exchange.copying import CopyMade, CopyMenu, make_copy
from proxycap.tui.exchange.exporting import ExportDone, ExportOrder, ExportProgress, ExportScreen, run_export
from proxycap.tui.flows.flow_list import FlowList
from proxycap.tui.flows.model import FlowView

NOTE_TIMEOUT = 8  # seconds a note naming a file stays up: long enough to read the path


class ExchangeActions:
    """A mixin of the app (``ProxycapApp``): Textual finds its ``action_`` and ``on_`` methods there, so the app's
    module holds none of this. It uses the app's parts annotated below, and Textual's ``App`` methods."""

    flows: FlowList
    view: FlowView
    store: Store  # the UI thread's connection
    store_path: Path
    worker_store: Store
    status: Status
    status_bar: StatusBar
    actions: Actions
    screen: Any
    run_worker: Callable[..., Worker[Any]]
    push_screen: Callable[..., Any]
    post_message: Callable[..., bool]
    notify: Callable[..., None]
    copy_to_clipboard: Callable[[str], None]

    _compare_first: int | None = None  # the flow = was pressed on first (A), until = on a second one (B)
    _export_worker: Worker[None] | None = None

    def _selected(self) -> int | None:
        """The selected flow, if the key was pressed over the flows (in a dialog, its own keys are meant)."""
        return self.flows.selected if self.screen is self.flows.screen else None

    def _work(self, fn: Callable[[], Any], group: str) -> Worker[Any]:
        return self.run_worker(fn, thread=True, group=group, exit_on_error=False)

    # --- copy -----------------------------------------------------------------------------------

    def action_copy_menu(self, to_file: bool = False) -> None:
        if (seq := self._selected()) is not None:
            self.push_screen(CopyMenu(seq, to_file), lambda fmt: fmt and self._copy(seq, fmt, to_file))

    def action_copy(self, fmt: str) -> None:
        if (seq := self._selected()) is not None:
            self._copy(seq, fmt, to_file=False)

    def _copy(self, seq: int, fmt: str, to_file: bool) -> None:
        store = self.worker_store
        self._work(lambda: self.post_message(make_copy(store, seq, fmt, to_file)), group="copy")

    def on_copy_made(self, message: CopyMade) -> None:
        if message.text is not None:
            self.copy_to_clipboard(message.text)
        self.notify(message.note, severity="information" if message.ok else "warning", timeout=NOTE_TIMEOUT)

    # --- export ---------------------------------------------------------------------------------

    def action_export(self, marked: bool = False) -> None:
        """The export dialog; while an export runs, the offer to cancel it."""
        if self.screen is not self.flows.screen:
            return
        running = self._export_worker
        if running is not None and not running.is_finished:
            question = f"An export is running ({self.status.activity}). Cancel it?"
            self.push_screen(ConfirmScreen(question), lambda yes: yes and running.cancel())
            return
        if not len(self.view) and not self.view.loading:
            self.notify("nothing to export: the view is empty", severity="warning")
            return
        # The view as it is now: its filters, up to the last flow it has taken in.
        spec, upto = self.view.spec, self.view.last_seq or None
        query = dataclasses.replace(spec.query(), upto_seq=upto)

        def chosen(order: ExportOrder | None) -> None:
            if order is not None:
                self._export(query, spec.expr, order)

        self.push_screen(ExportScreen(len(self.view), marked), chosen)

    def _export(self, query: Query, expr: str | None, order: ExportOrder) -> None:
        self._export_progress(f"exporting to {order.path.name}…")
        store_path = self.store_path

        def work() -> None:
            worker = get_current_worker()
            run_export(store_path, query, expr, order, self.post_message, lambda: worker.is_cancelled)

        self._export_worker = self._work(work, group="export")

    def _export_progress(self, activity: str | None) -> None:
        self.status.activity = activity
        self.status_bar.show(self.status)

    def on_export_progress(self, message: ExportProgress) -> None:
        of = f" of {message.total:,}" if message.total else ""
        self._export_progress(f"exporting: {message.done:,}{of} flows")

    def on_export_done(self, message: ExportDone) -> None:
        self._export_progress(None)
        self.notify(message.line, severity="information" if message.ok else "warning", timeout=NOTE_TIMEOUT)

    # --- compare --------------------------------------------------------------------------------

    def action_compare(self) -> None:
        """= on a flow remembers it as A, = on a second compares them; = on a replay, with nothing remembered,
        compares it with its original."""
        seq = self._selected()
        if seq is None:
            return
        first, self._compare_first = self._compare_first, None
        if first == seq:
            self.notify(f"#{seq} is no longer remembered for a comparison", timeout=3)
            return
        if first is None:
            row = self.view.cached(seq)
            first = self.store.seq_of(row["replay_of"]) if row and row.get("replay_of") else None
        if first is None:
            self._compare_first = seq
            self.notify(f"#{seq} is A: select another flow and press = to compare them (= on #{seq}: forget it)")
            return
        store = self.worker_store
        self._work(lambda: self.post_message(compare_flows(store, first, seq)), group="compare")

    def on_compare_ready(self, message: CompareReady) -> None:
        if message.problem:
            self.notify(message.problem, severity="warning")
        else:
            self.push_screen(CompareScreen(message.a, message.b, message.lines))

    # --- compose --------------------------------------------------------------------------------

    def action_compose(self) -> None:
        """The request editor with a request to write from scratch; ctrl+s sends it as a new flow."""
        if self.screen is not self.flows.screen:
            return

        self.push_screen(RequestEditScreen(None, composer_template(), self.actions.send_composed()), self.say)

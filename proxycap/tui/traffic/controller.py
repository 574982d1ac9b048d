"""The UI's side of changing traffic in flight: what the capture says of its breakpoints, the flows stopped at them and
its throttling, and the control API calls the keys and screens make.

What is stopped and armed comes from the capture's ``BreakpointsChanged`` events (drained with the feed by
``tui.live``), so the status bar, the list of stopped flows and an open editor learn of a change at once without
asking. Calls run in workers; their answers come back to the UI thread as ``Answered`` messages. Nothing here moves
the keyboard: a flow that stops is counted, listed and announced, never opened for the user.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar, runtime_checkable

from textual.screen import Screen
from textual.worker import Worker

from proxycap.capture.bus import BreakpointsChanged
from proxycap.control.api import Control, Outcome
from proxycap.tui.chrome.screens import ConfirmScreen
from proxycap.tui.chrome.status import Status, StatusBar
from proxycap.tui.flows.flow_list import FlowList
from proxycap.tui.flows.model import FlowView
from proxycap.tui.messages import Answered
from proxycap.tui.traffic.breakpoints import BreakpointDialog, BreakpointsScreen, prefill
from proxycap.tui.traffic.rules import RulesScreen
from proxycap.tui.traffic.stopped import StoppedEditScreen, StoppedScreen, stopped_before
from proxycap.tui.traffic.throttle import ThrottleDialog

T = TypeVar("T")


class TrafficApp(Protocol):
    """What ``Traffic`` uses of the app."""

    view: FlowView
    flows: FlowList
    status: Status
    status_bar: StatusBar
    screen_stack: list[Screen[Any]]
    run_worker: Callable[..., Worker[Any]]
    post_message: Callable[..., bool]
    push_screen: Callable[..., Any]
    notify: Callable[..., None]

    def say(self, outcome: Outcome | None) -> None: ...


@runtime_checkable
class Follows(Protocol):
    """A screen that shows what is stopped or armed: told when that changes."""

    def traffic_changed(self) -> None: ...


class Traffic:
    def __init__(self, app: TrafficApp, control: Control | None) -> None:
        self.app = app
        self.control = control
        self.stopped: list[dict[str, Any]] = []  # as the capture last said: oldest first
        self.breakpoints: list[dict[str, Any]] = []
        self.throttle: str | None = None
        self._quitting = False

    # --- calls ----------------------------------------------------------------------------------

    def ask(self, call: Callable[[Control], T], then: Callable[[T], None]) -> None:
        """``call`` on the control API in a worker; ``then`` gets its answer on the UI thread."""
        control, app = self.control, self.app
        assert control is not None
        app.run_worker(
            lambda: app.post_message(Answered(call(control), then)), thread=True, group="traffic", exit_on_error=False
        )

    def act(self, call: Callable[[Control], Outcome], then: Callable[[Outcome], None] | None = None) -> None:
        """``call`` in a worker; its outcome is said, then handed to ``then``."""

        def done(outcome: Outcome) -> None:
            self.app.say(outcome)
            if then is not None:
                then(outcome)

        self.ask(call, done)

    # --- what the capture says ------------------------------------------------------------------

    def start(self) -> None:
        """Learn what is stopped, armed and throttled now (flows may have stopped before the UI started)."""
        if self.control is not None:
            self.ask(lambda c: (c.stopped(), c.breakpoints(), c.throttle()), self._loaded)

    def _loaded(self, answer: tuple[list[dict[str, Any]], list[dict[str, Any]], str | None]) -> None:
        stopped, breakpoints, self.throttle = answer
        self._update(stopped, breakpoints)

    def changed(self, event: BreakpointsChanged | None) -> None:
        """The capture's word on breakpoints and stopped flows; None: events were lost, so ask again."""
        if event is None:
            self.start()
        else:
            self._update(event.stopped, event.breakpoints)

    def _update(self, stopped: list[dict[str, Any]], breakpoints: list[dict[str, Any]]) -> None:
        known = self.stopped_ids()
        arrived = [s for s in stopped if s["flow_id"] not in known]
        self.stopped, self.breakpoints = stopped, breakpoints
        self.show_status()
        for screen in self.app.screen_stack:
            if isinstance(screen, Follows):
                screen.traffic_changed()
        if arrived:  # a toast: it takes no keys from what the user is doing
            first = arrived[0]
            more = f" (and {len(arrived) - 1} more)" if len(arrived) > 1 else ""
            self.app.notify(
                f"{first['method']} {first['url']}{more}, {stopped_before(first)}. e: edit it, w: the stopped flows",
                title="⏸ Stopped at a breakpoint",
                timeout=6,
            )

    def stopped_ids(self) -> set[str]:
        return {s["flow_id"] for s in self.stopped}

    def show_status(self) -> None:
        status = self.app.status
        status.stopped_flows, status.breakpoints = len(self.stopped), len(self.breakpoints)
        status.throttle = self.throttle
        self.app.status_bar.show(status)

    # --- the selected flow ----------------------------------------------------------------------

    def _selected(self) -> dict[str, Any] | None:
        seq = self.app.flows.selected
        row = self.app.view.cached(seq) if seq is not None else None
        if row is None:
            self.app.notify("select a flow first", severity="warning")
        return row

    def selected_stopped(self, quiet: bool = False) -> str | None:
        """The selected flow's id if it is stopped (else None, said unless ``quiet``)."""
        seq = self.app.flows.selected
        row = self.app.view.cached(seq) if seq is not None else None
        if row is not None and row["id"] in self.stopped_ids():
            return row["id"]
        if not quiet:
            self.app.notify("the selected flow is not stopped (w lists those that are)", severity="warning")
        return None

    # --- stopped flows --------------------------------------------------------------------------

    def open(self, flow_id: str) -> None:
        """Open a stopped flow in the editor, where it stopped."""

        def opened(info: dict[str, Any]) -> None:
            if info["phase"] is None:
                self.app.say(Outcome(False, info["reason"]))
            else:
                self.app.push_screen(StoppedEditScreen(info, self), self.app.say)

        self.ask(lambda c: c.stopped_text(flow_id), opened)

    def edit_selected(self) -> bool:
        """``e`` on a stopped flow edits it where it stopped; False if the selected flow is not stopped."""
        flow_id = self.selected_stopped(quiet=True)
        if flow_id is not None:
            self.open(flow_id)
        return flow_id is not None

    def resume(self, flow_id: str) -> None:
        self.act(lambda c: c.resume(flow_id))

    def abort(self, flow_id: str) -> None:
        self.act(lambda c: c.abort(flow_id))

    def resume_all(self) -> None:
        self.act(lambda c: c.resume_all())

    def show_stopped(self) -> None:
        self.app.push_screen(StoppedScreen(self))

    # --- breakpoints ----------------------------------------------------------------------------

    def breakpoint_on_selected(self) -> None:
        if (row := self._selected()) is not None:
            self.app.push_screen(BreakpointDialog(self, prefill(row), row["client_ip"]), self.app.say)

    def breakpoint_typed(self) -> None:
        self.app.push_screen(BreakpointDialog(self, "", None), self.app.say)

    def show_breakpoints(self) -> None:
        self.app.push_screen(BreakpointsScreen(self))

    # --- rules ----------------------------------------------------------------------------------

    def show_rules(self, edit: int | None = None) -> None:
        """The rules screen; ``edit``: with that rule open in the editor."""
        self.app.push_screen(RulesScreen(self, edit))

    def mock_selected(self) -> None:
        if (row := self._selected()) is None:
            return
        seq = row["seq"]

        def made(outcome: Outcome) -> None:
            if outcome.ok:
                self.show_rules(edit=outcome.id)

        self.act(lambda c: c.mock(seq), made)

    # --- throttling -----------------------------------------------------------------------------

    def throttle_dialog(self) -> None:
        def done(outcome: Outcome | None) -> None:
            self.app.say(outcome)
            if outcome is not None:
                self.ask(lambda c: c.throttle(), self._throttled)

        self.app.push_screen(ThrottleDialog(self), done)

    def set_throttle(self, profile: str) -> None:
        self.act(lambda c: c.set_throttle(profile), lambda _: self.ask(lambda c: c.throttle(), self._throttled))

    def _throttled(self, throttle: str | None) -> None:
        self.throttle = throttle
        self.show_status()

    # --- quitting -------------------------------------------------------------------------------

    def quit(self, exit: Callable[[], None]) -> None:
        """Quit (``exit``), first asking what to do with stopped flows: they are sent on unchanged before the proxy
        stops (and the breakpoints go, so that none stops meanwhile). The capture is asked, not the last event: a
        flow may have stopped since."""
        if self.control is None:
            exit()
            return
        if self._quitting:
            return
        self._quitting = True

        def asked(stopped: list[dict[str, Any]]) -> None:
            if not stopped:
                exit()
                return
            n = len(stopped)
            question = (
                f"{n} flow{'s' * (n != 1)} stopped at breakpoints. Quit? "
                f"{'They are' if n > 1 else 'It is'} sent on unchanged first."
            )
            self.app.push_screen(ConfirmScreen(question), answered)

        def answered(yes: bool | None) -> None:
            self._quitting = bool(yes)
            if yes:
                self.ask(release, lambda _: exit())

        def release(control: Control) -> Outcome:
            for bp in control.breakpoints():
                control.remove_breakpoint(bp["id"])
            return control.resume_all()

        self.ask(lambda c: c.stopped(), asked)

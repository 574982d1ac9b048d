"""The app's keys for breakpoints, stopped flows, rules and throttling (``tui.keys``), and the capture's word on them:
a mixin of ``ProxycapApp`` (Textual finds actions and message handlers on the app's class), which holds the
``Traffic`` they act through."""

from __future__ import annotations

from proxycap.capture.bus import BreakpointsChanged
from proxycap.tui.messages import Answered
from proxycap.tui.traffic.controller import Traffic

# The actions that need a running capture (none with --open).
ACTIONS = {
    "add_breakpoint",
    "add_breakpoint_typed",
    "breakpoints",
    "stopped_flows",
    "continue_flow",
    "abort_flow",
    "resume_all",
    "rules",
    "mock",
    "throttle",
    "set_throttle",
}


class TrafficHandlers:
    traffic: Traffic

    def breakpoints_changed(self, event: BreakpointsChanged | None) -> None:
        """From the feed (``tui.live``); None: events were lost."""
        self.traffic.changed(event)

    def on_answered(self, message: Answered) -> None:
        message.then(message.answer)

    def action_add_breakpoint(self) -> None:
        self.traffic.breakpoint_on_selected()

    def action_add_breakpoint_typed(self) -> None:
        self.traffic.breakpoint_typed()

    def action_breakpoints(self) -> None:
        self.traffic.show_breakpoints()

    def action_stopped_flows(self) -> None:
        self.traffic.show_stopped()

    def action_continue_flow(self) -> None:
        if (flow_id := self.traffic.selected_stopped()) is not None:
            self.traffic.resume(flow_id)

    def action_abort_flow(self) -> None:
        if (flow_id := self.traffic.selected_stopped()) is not None:
            self.traffic.abort(flow_id)

    def action_resume_all(self) -> None:
        self.traffic.resume_all()

    def action_rules(self) -> None:
        self.traffic.show_rules()

    def action_mock(self) -> None:
        self.traffic.mock_selected()

    def action_throttle(self) -> None:
        self.traffic.throttle_dialog()

    def action_set_throttle(self, profile: str) -> None:
        self.traffic.set_throttle(profile)

"""The throttle dialog (``t``): a profile for all traffic (a preset or KB/s, and added latency), or none."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Input, Static

from proxycap.tui.chrome.calling import CallScreen
from proxycap.tui.keys import THROTTLE_PRESETS

if TYPE_CHECKING:
    from proxycap.tui.traffic.controller import Traffic


class ThrottleDialog(CallScreen):
    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, traffic: Traffic) -> None:
        super().__init__()
        self.traffic = traffic

    def compose(self) -> ComposeResult:
        now = self.traffic.throttle
        with Vertical(classes="dialog throttle"):
            yield Static(f"Throttle all traffic (now: {now or 'not throttled'})")
            yield Input(placeholder='KB/s ("100", or "100/50" down/up), a preset, or "off"', id="throttle-profile")
            yield Input(placeholder="added latency in ms (optional)", id="throttle-latency", type="number")
            yield Static(id="call-error")
            with Horizontal(classes="buttons"):
                for name, _ in THROTTLE_PRESETS:
                    yield Button(name, id=f"preset-{name.replace(' ', '-')}", name=name)
                yield Button("Set (enter)", variant="primary", id="set")

    def on_input_submitted(self) -> None:
        self.set_profile(self.query_one("#throttle-profile", Input).value)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.set_profile(event.button.name or self.query_one("#throttle-profile", Input).value)

    def set_profile(self, profile: str) -> None:
        latency_text = self.query_one("#throttle-latency", Input).value.strip()
        try:
            latency = float(latency_text) if latency_text else 0.0
        except ValueError:
            self.show_error(f"latency must be a number of ms, not {latency_text!r}")
            return
        if not profile.strip() and not latency:
            self.show_error('type a rate in KB/s, a preset or "off", or a latency')
            return
        if profile == "off":
            latency = 0.0
        control = self.traffic.control
        assert control is not None
        self.call(lambda: control.set_throttle(profile, latency))

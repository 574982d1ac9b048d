"""The status bar: where the proxy listens (and, beyond loopback, where devices reach it and who is allowed), whether
the display is live, counts, rate, clients waiting to be allowed, flows stopped at breakpoints, throttling, work
under way, store, CA hint."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from rich.style import Style
from rich.text import Text
from textual.widgets import Static

CA_HINT = "HTTPS: trust the CA (D: device setup, or proxycap ca)"
SEPARATOR = Text(" │ ", Style(dim=True))


@dataclasses.dataclass(slots=True)
class Status:
    store: Path
    listen: list[tuple[str, int]] | None  # None: read-only (no proxy)
    proxy_stopped: bool = False  # the proxy this window was attached to stopped
    paused: bool = False
    total: int = 0
    shown: int | None = 0  # None: still counting
    rate: float = 0.0
    warnings: int = 0
    ca_hint: bool = True
    store_problem: str | None = None  # the store cannot be written now: why
    lost: int = 0  # flows the store could not keep, this session
    stopped_flows: int = 0  # flows stopped at breakpoints
    breakpoints: int = 0  # armed
    throttle: str | None = None  # the profile throttling all traffic
    activity: str | None = None  # work under way in the background (an export's progress)
    lan: str | None = None  # listening beyond loopback: where devices reach the proxy and who is allowed
    waiting: int = 0  # clients refused and waiting to be allowed


def render(s: Status) -> Text:
    parts: list[Text] = []
    if s.listen is None:
        parts.append(
            Text("proxy stopped · read-only" if s.proxy_stopped else "read-only", Style(bold=True, color="yellow"))
        )
    else:
        state = Text("❚❚ paused", Style(bold=True, color="yellow")) if s.paused else Text("● rec", Style(color="red"))
        state.append(" " + ", ".join(f"{h}:{p}" for h, p in s.listen))
        parts.append(state)
    if s.waiting:
        clients = "client waits" if s.waiting == 1 else "clients wait"
        parts.append(Text(f"⚠ {s.waiting} {clients} (b, then a: allow)", Style(color="yellow", bold=True)))
    parts.append(Text(f"{'…' if s.shown is None else format(s.shown, ',')} shown / {s.total:,} flows"))
    if s.listen is not None:
        parts.append(Text(f"{s.rate:.1f} req/s"))
    if s.activity:
        parts.append(Text(s.activity, Style(color="cyan", bold=True)))
    if s.store_problem:
        parts.append(Text(f"⚠ store: {s.store_problem}", Style(color="red", bold=True)))
    if s.lost:
        parts.append(Text(f"⚠ {s.lost:,} flows not stored (l: log)", Style(color="red", bold=True)))
    if s.stopped_flows:
        parts.append(Text(f"⏸ {s.stopped_flows} stopped (w)", Style(bold=True, color="yellow")))
    elif s.breakpoints:
        parts.append(Text(f"{s.breakpoints} breakpoint{'s' * (s.breakpoints != 1)} (I)", Style(color="yellow")))
    if s.throttle:
        parts.append(Text(f"throttled: {s.throttle} (t)", Style(color="magenta")))
    if s.warnings:
        parts.append(Text(f"⚠ {s.warnings} (l: log)", Style(color="yellow")))
    if s.lan and s.listen is not None:
        parts.append(Text(f"{s.lan} (D: setup)", Style(color="cyan")))
    if s.ca_hint and s.listen is not None:
        parts.append(Text(CA_HINT, Style(color="cyan")))
    parts.append(Text(str(s.store), Style(dim=True)))
    return Text(" ").append_text(SEPARATOR.join(parts))


class StatusBar(Static):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, markup=False)
        self._last: str | None = None

    def show(self, status: Status) -> None:
        text = render(status)
        text.no_wrap = True
        text.overflow = "ellipsis"
        if text.markup != self._last:
            self._last = text.markup
            self.update(text, layout=False)  # one line, full width: its text never changes its size

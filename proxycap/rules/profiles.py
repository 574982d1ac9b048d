"""Throttle profiles: added latency and download/upload rates, with browsers' presets.

KB means 1000 bytes, as browsers' developer tools count. The presets are Chrome DevTools' (its "3G", formerly
"Fast 3G", and "Slow 3G"): a rate there is its kbit/s times a factor for the link's overhead.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

KB = 1000


@dataclasses.dataclass(frozen=True)
class Profile:
    latency: float = 0.0  # ms added before each request goes on
    down: float | None = None  # KB/s towards the client; None: not limited
    up: float | None = None  # KB/s towards the server
    offline: bool = False  # every request fails: the client's connection is closed
    name: str = ""  # a preset's

    def __str__(self) -> str:
        if self.name:
            return self.name
        parts = [f"{_num(rate)} KB/s {way}" for rate, way in ((self.down, "down"), (self.up, "up")) if rate]
        if self.latency:
            parts.append(f"+{_num(self.latency)} ms")
        return ", ".join(parts) or "no limits"

    @property
    def limits(self) -> bool:
        return bool(self.latency or self.down or self.up or self.offline)


PRESETS = {
    "3g": Profile(562.5, 180.0, 84.375, name="3G"),
    "slow 3g": Profile(2000.0, 50.0, 50.0, name="slow 3G"),
    "offline": Profile(offline=True, name="offline"),
}


def _num(x: float) -> str:
    return f"{x:g}"


def _rate(text: str) -> float:
    rate = float(text)
    if not rate > 0:
        raise ValueError
    return rate


def parse(value: Any) -> Profile:
    """A preset's name ("3G", "slow 3G", "offline"), "DOWN" or "DOWN/UP" in KB/s, or a table with ``preset``,
    ``latency`` (ms), ``down`` and ``up`` (KB/s); ValueError with the reason in one line."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str):
        key = re.sub(r"[\s_-]+", " ", value.strip().lower())
        if key in PRESETS:
            return PRESETS[key]
        try:
            down, _, up = value.strip().partition("/")
            return Profile(down=_rate(down), up=_rate(up) if up else _rate(down))
        except ValueError:
            raise ValueError(
                f"not a throttle profile: {value!r} (a rate in KB/s such as 100 or 100/50, or one of "
                f"{', '.join(p.name for p in PRESETS.values())})"
            ) from None
    if isinstance(value, dict):
        unknown = set(value) - {"preset", "latency", "down", "up"}
        if unknown:
            raise ValueError(f"unknown throttle field {sorted(unknown)[0]!r} (preset, latency, down, up)")
        base = parse(value["preset"]) if "preset" in value else Profile()
        try:
            latency = float(value.get("latency", base.latency))
            down = _rate(value["down"]) if "down" in value else base.down
            up = _rate(value["up"]) if "up" in value else base.up
        except (TypeError, ValueError):
            raise ValueError("throttle latency must be a number of ms, down and up rates above 0 KB/s") from None
        if latency < 0:
            raise ValueError("throttle latency must not be negative")
        return Profile(latency, down, up, base.offline)
    raise ValueError(f"not a throttle profile: {value!r}")


def with_latency(profile: Profile | None, latency: float) -> Profile | None:
    """``profile`` with ``latency`` ms (``--latency`` over ``--throttle``); None if that limits nothing."""
    new = dataclasses.replace(profile or Profile(), latency=latency, name="")
    return new if new.limits else None

"""How readily the UI thread hands the GIL to the proxy's thread, which shares the process with it.

A frame is 10-20 ms of Python. Meanwhile the proxy's thread waits out CPython's switch interval (5 ms) at each of
its I/O waits, and every request in flight takes that much longer: most of ``proxycap tui``'s p99 latency. While
the UI only draws live updates a 0.5 ms interval lets the proxy in sooner (p99 -20-30 %, bench/RESULTS.md); but
while the user types it slowed the keys' frames (opening the inspector 31 -> 55 ms), so input restores the default.
"""

from __future__ import annotations

import sys
import time

from proxycap.session import SWITCH_INTERVAL

LIVE = SWITCH_INTERVAL  # seconds: the switch interval while the UI only follows the traffic
QUIET = 0.5  # seconds without input before it counts as only following
DEFAULT = sys.getswitchinterval()

_last_input = 0.0


def input_arrived() -> None:
    """From the terminal's input thread, before the input is parsed: the keys' frames come first."""
    global _last_input
    _last_input = time.monotonic()
    sys.setswitchinterval(DEFAULT)


def following() -> None:
    """From the UI's live-update tick."""
    if time.monotonic() - _last_input >= QUIET:
        sys.setswitchinterval(LIVE)


def restore() -> None:
    """The app is gone: leave the interpreter as it was."""
    sys.setswitchinterval(DEFAULT)

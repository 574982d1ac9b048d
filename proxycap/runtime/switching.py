"""How readily a thread hands the GIL to the proxy's thread, which shares the process with it (CPython's switch
interval).

The proxy's thread shares the GIL with the store writer's threads, and after each of its I/O waits it may wait out
CPython's switch interval (5 ms) while one of them runs a batch. 0.5 ms lets it in sooner, lowering `record`'s p99
(bench/RESULTS.md, "Switch interval"); `record` runs with it throughout (``recording``).

In `tui`, the UI thread shares it too.

A live update (the tick and its frame) is a long stretch of Python. Handing the GIL over every 0.1-0.5 ms stretched
it to twice that and slowed every request that passed meanwhile; held until the frame is drawn, it delays only the
few requests in flight, so while the UI only follows the traffic an update runs with a 50 ms switch interval
(bench/RESULTS.md, "Switch interval"). Between updates the interval is 0.5 ms, as in `record`: the writer's
threads then take their turns without holding the proxy up. Input restores the default (5 ms) before it is
parsed: a short interval slowed the keys' frames (same section).
"""

from __future__ import annotations

import sys
import time

LIVE = 0.0005  # seconds: the switch interval while only the proxy and the writer run (and between live updates)
UPDATING = 0.05  # seconds: while a live update is drawn
QUIET = 0.5  # seconds without input before it counts as only following
DEFAULT = sys.getswitchinterval()

_last_input = 0.0


def recording() -> None:
    """For a process that only proxies and records (``proxycap record``)."""
    sys.setswitchinterval(LIVE)


def input_arrived() -> None:
    """From the terminal's input thread, before the input is parsed: the keys' frames come first."""
    global _last_input
    _last_input = time.monotonic()
    sys.setswitchinterval(DEFAULT)


def _following(interval: float) -> None:
    if time.monotonic() - _last_input >= QUIET:
        sys.setswitchinterval(interval)


def updating() -> None:
    """From the UI's live-update tick: hold the GIL until its frame is drawn."""
    _following(UPDATING)


def updated() -> None:
    """After the live update's frame."""
    _following(LIVE)


def restore() -> None:
    """The app is gone: leave the interpreter as it was."""
    sys.setswitchinterval(DEFAULT)

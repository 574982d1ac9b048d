"""Garbage-collector settings for a process that forwards traffic while it holds a large, long-lived heap.

mitmproxy leaves reference cycles behind with every flow, so the collector runs often; each full collection walks
every object in the process (mitmproxy, Textual, caches) with the GIL held, stalling the proxy for long enough to
be most of `proxycap tui`'s p99 latency (bench/RESULTS.md, "Garbage collection").
Startup's objects live as long as the process: freezing them takes them out of every collection. The young
generation is a little larger than CPython's 700 objects, so fewer cycles are promoted into full collections; not
much larger, because a young collection's pause grows with it (bench/RESULTS.md, "Garbage collection").

A process with a UI can take the full collections out of the proxy's path: `settle(defer_full=True)` leaves them to
`collect_due()`, which the UI calls right after drawing (a full collection there is a few ms that stall the requests
the frame already held up, instead of a pause of its own that holds up others).
"""

from __future__ import annotations

import gc

THRESHOLDS = (2_000, 10, 10)
NEVER = 2**31 - 1  # middle-generation collections before a full one: CPython's own trigger never fires

_deferred = False


def settle(defer_full: bool = False) -> None:
    """Call once the long-lived objects exist (the proxy running, the UI loaded). Only for the CLI's own process:
    a library user (or a test run) keeps its own collector settings."""
    global _deferred
    _deferred = defer_full
    gc.set_threshold(*THRESHOLDS[:2], NEVER if defer_full else THRESHOLDS[2])
    gc.collect()
    gc.freeze()


def collect_due() -> bool:
    """With full collections deferred, make one if CPython would have by now (as many middle-generation collections
    since the last one as its threshold); True if it did."""
    if not _deferred or gc.get_count()[2] < THRESHOLDS[2]:
        return False
    gc.collect()
    return True

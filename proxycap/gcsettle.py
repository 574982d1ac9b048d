"""Garbage-collector settings for a process that forwards traffic while it holds a large, long-lived heap.

mitmproxy leaves reference cycles behind with every flow, so the collector runs often; each full collection
walks every object in the process (mitmproxy, Textual, caches: 150k+ objects) with the GIL held, stalling the
proxy for about 100 ms at a time, which was most of `proxycap tui`'s p99 latency (bench/RESULTS.md). Startup's
objects live as long as the process: freezing them takes them out of every collection. The young generation is
a little larger than CPython's 700 objects, so fewer cycles are promoted into full collections; not much larger,
because a young collection's pause grows with it (measured under load: ~1 ms at 2,000, 14-45 ms at 20,000).
"""

from __future__ import annotations

import gc

THRESHOLDS = (2_000, 10, 10)


def settle() -> None:
    """Call once the long-lived objects exist (the proxy running, the UI loaded). Only for the CLI's own process:
    a library user (or a test run) keeps its own collector settings."""
    gc.set_threshold(*THRESHOLDS)
    gc.collect()
    gc.freeze()

"""Garbage-collector settings for a process that forwards traffic while it holds a large, long-lived heap.

mitmproxy leaves reference cycles behind with every flow, so the collector runs often; each full collection
walks every object in the process (mitmproxy, Textual, caches: 150k+ objects) with the GIL held, stalling the
proxy for about 100 ms at a time, which was most of `proxycap tui`'s p99 latency (bench/RESULTS.md). Startup's
objects live as long as the process: freezing them takes them out of every collection, and a larger young
generation lets cycles die young instead of being promoted into (and rescanned by) full collections.
"""

from __future__ import annotations

import gc

THRESHOLDS = (20_000, 20, 10)


def settle() -> None:
    """Call once the long-lived objects exist (the proxy running, the UI loaded). Only for the CLI's own process:
    a library user (or a test run) keeps its own collector settings."""
    gc.set_threshold(*THRESHOLDS)
    gc.collect()
    gc.freeze()

"""Loaded by every Python process started with this folder on PYTHONPATH (``python -m bench.probe``).

In the proxycap process (the one whose engine starts) it records, without changing what it measures:
garbage collections (generation, pause, thread), the engine loop's lag (a 2 ms timer's lateness) and each
thread's CPU time, and writes them as JSON to ``$PROXYCAP_PROBE_OUT`` once a second. ``$PROXYCAP_PROBE_GC``
("700,10,10") replaces proxycap's collector thresholds.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sys
import threading
import time

OUT = os.environ.get("PROXYCAP_PROBE_OUT")
_gcs: list[tuple[float, int, float, str]] = []  # (when, generation, pause ms, thread)
_lags: list[float] = []  # ms late, per 2 ms timer
_cpu: list[tuple[float, dict[str, float]]] = []  # (when, thread name → CPU s)
_start: list[float] = []


def _on_gc(phase: str, info: dict) -> None:
    if phase == "start":
        _start[:] = [time.perf_counter()]
    elif _start:
        pause = (time.perf_counter() - _start[0]) * 1000
        _gcs.append((time.time(), info["generation"], pause, threading.current_thread().name))


async def _lag_monitor() -> None:
    while True:
        t0 = time.perf_counter()
        await asyncio.sleep(0.002)
        _lags.append((time.perf_counter() - t0) * 1000 - 2)


def _thread_cpu() -> dict[str, float]:
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for t in threading.enumerate():
        try:
            with open(f"/proc/self/task/{t.native_id}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            out[t.name] = (int(fields[11]) + int(fields[12])) / tick  # utime + stime
        except (OSError, IndexError, ValueError):
            pass
    return out


def _dump() -> None:
    while True:
        time.sleep(1)
        if not _lags:  # the engine has not started yet
            continue
        _cpu.append((time.time(), _thread_cpu()))
        tmp = f"{OUT}.tmp"
        with open(tmp, "w") as f:
            json.dump({"gc": _gcs, "lag": _lags, "cpu": _cpu}, f)
        os.replace(tmp, OUT)


def _install() -> None:
    import proxycap.capture.engine
    import proxycap.runtime.gcsettle

    if thresholds := os.environ.get("PROXYCAP_PROBE_GC"):
        proxycap.runtime.gcsettle.THRESHOLDS = tuple(int(x) for x in thresholds.split(","))

    engine = proxycap.capture.engine.Engine
    start = engine.start

    def started(self: proxycap.capture.engine.Engine, *args: object, **kwargs: object) -> None:
        start(self, *args, **kwargs)
        self.submit(_lag_monitor)  # on the engine's loop until it stops

    engine.start = started
    gc.callbacks.append(_on_gc)
    threading.Thread(target=_dump, name="probe", daemon=True).start()


if OUT and sys.orig_argv[1:3] == ["-m", "proxycap"]:  # the CLI, not the store writer child or a tool
    _install()

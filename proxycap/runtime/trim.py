"""Handing freed heap back to the operating system while bodies pass through a process."""

from __future__ import annotations

import ctypes
import time
from typing import Any

TRIM_INTERVAL = 5.0  # seconds between handing freed heap back to the OS while flows pass through


class Trimmer:
    """Calls glibc's ``malloc_trim`` now and then while bodies pass through this process.

    Bodies are allocated and freed by the thousand; glibc keeps the freed heap (in every thread's arena) unless
    asked to return it, so RSS would creep up with the flows although nothing is held (bench/RESULTS.md, "Memory").
    """

    def __init__(self) -> None:
        try:
            self._trim: Any = ctypes.CDLL(None).malloc_trim
        except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to do
            self._trim = None
        self._busy = False
        self._last = time.monotonic()

    def after(self, handled: int) -> None:
        self._busy = self._busy or handled > 0
        if self._trim is not None and self._busy and time.monotonic() - self._last >= TRIM_INTERVAL:
            self._trim(0)
            self._busy, self._last = False, time.monotonic()

"""Experiment: the writer stalls once for 8 s after 3000 events, and after every big batch (a backlog) freed heap
memory is given back to the OS with glibc's malloc_trim (the proposed fix)."""

import ctypes
import time

import proxycap.writer as writer

_orig = writer.StoreWriter._write
_state = {"n": 0, "stalled": False}
_libc = ctypes.CDLL("libc.so.6")


def _write(self, events):
    _state["n"] += len(events)
    if _state["n"] > 3000 and not _state["stalled"]:
        _state["stalled"] = True
        time.sleep(8)
    out = _orig(self, events)
    if len(events) > 500:
        _libc.malloc_trim(0)
    return out


writer.StoreWriter._write = _write

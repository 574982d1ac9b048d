"""Experiment: the store writer stalls once for 8 s (a slow disk, a checkpoint, CPU contention) after 3000 events."""
import time

import proxycap.writer as writer

_orig = writer.StoreWriter._write
_state = {"n": 0, "stalled": False}


def _write(self, events):
    _state["n"] += len(events)
    if _state["n"] > 3000 and not _state["stalled"]:
        _state["stalled"] = True
        time.sleep(8)
    return _orig(self, events)


writer.StoreWriter._write = _write

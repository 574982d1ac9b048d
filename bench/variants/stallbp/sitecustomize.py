"""Experiment: the writer stalls once for 8 s after 3000 events (as in stall/), with the backpressure of bp/."""

import asyncio
import time

from proxycap.addons import recorder

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


LIMIT = 300  # queued events (x 64 KB bodies: ~20 MB)
_response, _error = recorder.Recorder.response, recorder.Recorder.error


async def _wait_for_writer(self):
    sub = next((s for s in self.bus._subs if s.name == "store-writer"), None)
    while sub is not None and len(sub.queue) > LIMIT:
        await asyncio.sleep(0.005)


async def response(self, f):
    _response(self, f)
    await _wait_for_writer(self)


async def error(self, f):
    _error(self, f)
    await _wait_for_writer(self)


recorder.Recorder.response = response
recorder.Recorder.error = error

"""A/B variant: backpressure. When the store writer's backlog exceeds LIMIT events, the recorder's response/error
hooks wait (asynchronously, on the proxy loop) until it drains: the proxy slows to what the store can take instead
of queueing full flows (bodies) in memory without bound."""

import asyncio

from proxycap.addons import recorder

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

# A/B: publish the request event without the full state (the response/error event carries it)
from proxycap.addons import recorder


def request(self, f):
    self._publish("request", f, with_state=False)
recorder.Recorder.request = request

"""Recording into a proxycap store from stock mitmproxy tools, as a mitmproxy script:

    mitmdump -s "$(python -m proxycap.control.standalone)" --set proxycap_store=~/captures.db

(run as a module, it prints its own path). It wires what ``proxycap record`` wires: the recorder publishes on a bus
and a store writer stores what it hears.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mitmproxy import ctx, exceptions

from proxycap.addons.recorder import Recorder
from proxycap.capture.bus import Bus
from proxycap.capture.summary import count_streamed
from proxycap.internals.mitmproxy import count_streamed_bodies
from proxycap.storage.store import StoreError, check_store
from proxycap.storage.writer import StoreWriter


class StandaloneRecording:
    def __init__(self) -> None:
        count_streamed_bodies(count_streamed)
        self.bus = Bus()
        self.recorder = Recorder(self.bus)
        self.addons = [self.recorder]  # mitmproxy calls the recorder's hooks as a child of this addon
        self.writer: StoreWriter | None = None

    def load(self, loader: Any) -> None:
        loader.add_option("proxycap_store", str, "", "Record flows into this proxycap store (SQLite).")

    def configure(self, updated: set[str]) -> None:
        if "proxycap_store" not in updated or not ctx.options.proxycap_store:
            return
        if self.writer:
            self.writer.stop()
        path = Path(ctx.options.proxycap_store).expanduser()
        try:
            check_store(path)
            self.writer = StoreWriter(path, self.bus)
            self.writer.start()
        except StoreError as e:
            self.writer = None
            raise exceptions.OptionsError(str(e)) from None

    def done(self) -> None:
        self.recorder.done()  # this hook runs before its children's: what the recorder holds goes to the writer first
        if self.writer:
            self.writer.stop()
            self.writer = None


addons = [StandaloneRecording()]

if __name__ == "__main__":
    print(__file__)

"""A capture session: bus, store writer and engine started and stopped in the right order, and the control API
(``control``) through which UIs act on it.

Shared by ``proxycap record`` and ``proxycap tui``. Stopping stops the proxy first (no new events), then
lets the writer flush everything still queued, so a clean exit never loses a captured flow.
"""

from __future__ import annotations

import logging
from pathlib import Path

from proxycap.addons.access import Access
from proxycap.addons.recorder import Recorder
from proxycap.capture.bus import Bus
from proxycap.capture.engine import Engine, EngineConfig
from proxycap.capture.logs import setup_logging
from proxycap.control.api import LocalControl
from proxycap.storage.store import Query, Store
from proxycap.storage.writer import StoreWriter


class CaptureSession:
    def __init__(self, config: EngineConfig, store_path: Path, log_file: Path | None) -> None:
        self.bus = Bus()
        self.config = config
        self.store_path = store_path
        self.log_file = log_file
        self.engine = Engine(config, [Recorder(self.bus), Access()])
        self.writer: StoreWriter | None = None
        self.control: LocalControl | None = None

    def start(self) -> None:
        """Open the store, then the proxy; raises StoreError or EngineError with a one-line reason."""
        setup_logging(self.log_file, self.bus)
        self.writer = StoreWriter(self.store_path, self.bus)
        self.writer.start()
        try:
            self.engine.start()
        except BaseException:
            self.writer.stop()
            raise
        self.control = LocalControl(self.engine, self.bus, self.store_path)
        logging.getLogger(__name__).info(f"proxy listening on {self.engine.listen_addrs}, store {self.store_path}")

    def stop(self) -> int:
        """Stop the proxy, flush the store; returns how many flows this session added to it."""
        self.engine.stop()
        if self.control is not None:
            self.control.close()
            self.control = None
        if not self.writer:
            return 0
        self.writer.stop()
        seq_at_start, self.writer = self.writer.seq_at_start, None
        store = Store(self.store_path, readonly=True)
        try:
            return store.count(Query(after_seq=seq_at_start))
        finally:
            store.close()

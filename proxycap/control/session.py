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
from proxycap.addons.setup import SetupServer
from proxycap.capture.bus import Bus
from proxycap.capture.engine import Engine, EngineConfig
from proxycap.capture.logs import setup_logging
from proxycap.control.api import LocalControl
from proxycap.paths import readable_by_others
from proxycap.storage.store import check_store
from proxycap.storage.writer import StoreWriter, WriterReport

logger = logging.getLogger(__name__)


class CaptureSession:
    def __init__(self, config: EngineConfig, store_path: Path, log_file: Path | None) -> None:
        self.bus = Bus()
        self.config = config
        self.store_path = store_path.expanduser()
        self.log_file = log_file
        self.access = Access(self.bus)  # who may use the proxy: allow and deny at runtime, from any thread
        # The setup pages answer before the access check (devices not allowed yet fetch the CA), which comes before
        # the recorder (refused clients are neither recorded nor counted).
        self.engine = Engine(config, [SetupServer(), self.access, Recorder(self.bus)])
        self.writer: StoreWriter | None = None
        self.control: LocalControl | None = None
        self.warnings: list[str] = []  # said once at start, for the terminal or the UI

    def start(self) -> None:
        """Check that the store can be written (creating nothing yet), start the proxy, then open the store (made
        if new) and its writer. Raises StoreError or EngineError with a one-line reason, having created nothing."""
        setup_logging(self.log_file, self.bus)
        check_store(self.store_path)
        self.writer = StoreWriter(self.store_path, self.bus)  # subscribed from now on: no flow goes unstored
        try:
            self.engine.start()
            self.writer.start()
        except BaseException:
            self.engine.stop()
            self.writer.stop()
            self.writer = None
            raise
        self.control = LocalControl(self.engine, self.bus, self.store_path)
        if readable_by_others(self.store_path):
            self.warnings.append(
                f"{self.store_path} is readable by other users, and captures hold passwords and cookies: "
                f"chmod 600 {self.store_path}"
            )
        for warning in self.warnings:
            logger.warning(warning)
        logger.info(f"proxy listening on {self.engine.listen_addrs}, store {self.store_path}")

    def stop(self) -> WriterReport:
        """Stop the proxy (in-flight flows get a short grace, then end as errors), then flush the store; returns
        what this session's writer stored and lost."""
        self.engine.stop()
        if self.control is not None:
            self.control.close()
            self.control = None
        if not self.writer:
            return WriterReport()
        writer, self.writer = self.writer, None
        return writer.stop()

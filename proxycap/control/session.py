"""A capture session: bus, store writer and engine started and stopped in the right order, and the control API
(``control``) through which UIs act on it.

Shared by ``proxycap record`` and ``proxycap tui``. Stopping stops the proxy first (no new events), then
lets the writer flush everything still queued, so a clean exit never loses a captured flow.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import time
from pathlib import Path

from proxycap.addons.access import Access
from proxycap.addons.breakpoints import Breakpoints
from proxycap.addons.recorder import STOPPED, Recorder
from proxycap.addons.rules import Rules
from proxycap.addons.setup import SetupServer
from proxycap.addons.throttle import Throttle
from proxycap.capture.bus import Bus
from proxycap.capture.engine import Engine, EngineConfig, EngineError
from proxycap.capture.logs import setup_logging
from proxycap.control.local import LocalControl
from proxycap.control.server import ControlError, ControlServer, socket_path
from proxycap.paths import readable_by_others
from proxycap.storage.store import check_store
from proxycap.storage.writer import StoreWriter, WriterReport

logger = logging.getLogger(__name__)

GRACE = 2.0  # seconds the flows in flight get to finish when the proxy stops


class CaptureSession:
    def __init__(
        self, config: EngineConfig, store_path: Path, log_file: Path | None, control_port: int | None = None
    ) -> None:
        """``control_port``: also offer the control API on this loopback TCP port, with a token (0: any port)."""
        self.bus = Bus()
        self.config = config
        self.store_path = store_path.expanduser()
        self.log_file = log_file
        self.recorder = Recorder(self.bus)
        self.access = Access(self.bus)  # who may use the proxy: allow and deny at runtime, from any thread
        self.rules = Rules()
        self.throttle = Throttle()
        self.breakpoints = Breakpoints(self.bus)  # tells the UI of stopped flows on the bus
        # In this order: the setup pages answer before the access check (devices not allowed yet fetch the CA); a
        # refused client goes no further (neither recorded nor counted); what rules, throttling and breakpoints change
        # in a hook is recorded by the recorder's handler for that hook.
        self.engine = Engine(
            config, [SetupServer(), self.access, self.rules, self.throttle, self.breakpoints, self.recorder]
        )
        self.writer: StoreWriter | None = None
        self.control: LocalControl | None = None
        self.control_port = control_port
        self.server: ControlServer | None = None  # the control API for windows in other processes
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
        self.control = LocalControl(self)
        self.server = ControlServer(self.control, socket_path(self.engine.listen_addrs[0][1]), self.control_port)
        try:
            self.server.start()
        except (ControlError, OSError):
            self.stop()
            raise
        if readable_by_others(self.store_path):
            self.warnings.append(
                f"{self.store_path} is readable by other users, and captures hold passwords and cookies: "
                f"chmod 600 {self.store_path}"
            )
        for warning in self.warnings:
            logger.warning(warning)
        logger.info(f"proxy listening on {self.engine.listen_addrs}, store {self.store_path}")

    def stop(self) -> WriterReport:
        """Stop the proxy, then flush the store; returns what this session's writer stored and lost.

        Nothing new is let in (the listeners close first, and requests on connections still open are refused), the
        flows in flight get ``GRACE`` seconds to finish, and the rest end as errors that say the proxy stopped: no
        flow is left live in the store."""
        if self.server is not None:  # attached windows hear that the capture stopped
            self.server.stop()
            self.server = None
        if self.engine.running:
            self.access.closing = True
            self.engine.stop_listening()
            deadline = time.monotonic() + GRACE
            while self.recorder.in_flight() and time.monotonic() < deadline:
                time.sleep(0.02)
            with contextlib.suppress(EngineError, concurrent.futures.TimeoutError):
                self.engine.call(self.recorder.end_in_flight, STOPPED)
        self.engine.stop()
        if self.control is not None:
            self.control.close()
            self.control = None
        if not self.writer:
            return WriterReport()
        writer, self.writer = self.writer, None
        return writer.stop()

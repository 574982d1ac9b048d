"""Where log lines go: proxycap's log file, and (warnings and up) the bus for the store and the event log.

mitmproxy logs through stdlib ``logging`` on the root logger. Nothing may reach the terminal raw: the TUI
owns the screen, and ``record`` prints only its own flow lines.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
from pathlib import Path

from proxycap.capture.bus import Bus, LogEvent
from proxycap.capture.summary import peer
from proxycap.paths import private_dir

# The recorder reports these itself, with a hint: on trusting proxycap's CA (client), or the origin's (server).
REPORTED_BY_RECORDER = ("Client TLS handshake failed", "Server TLS handshake failed")
# mitmproxy logs each connection's open and close at INFO: four lines per request when clients do not keep
# connections alive, formatted and written on the proxy's thread
# (bench/RESULTS.md, "Where the proxy's time goes"), and at 150 connections a second they would rotate the
# warnings out of the 5 MB file within minutes. The store already counts connections per client; these stay out
# of the file (connection errors stay in).
CLIENT_CHATTER = frozenset({"client connect", "client disconnect"})
SERVER_CHATTER = ("server connect ", "server disconnect ")  # + the address
MAX_MESSAGE = 500  # mitmproxy quotes whole hostile payloads in some messages
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def not_chatter(record: logging.LogRecord) -> bool:
    msg = record.msg
    return not isinstance(msg, str) or not (msg in CLIENT_CHATTER or msg.startswith(SERVER_CHATTER))


class BusHandler(logging.Handler):
    """Publishes warnings and errors as ``LogEvent`` so they are stored and shown in the event log."""

    def __init__(self, bus: Bus, level: int = logging.WARNING) -> None:
        super().__init__(level)
        self.bus = bus

    def emit(self, record: logging.LogRecord) -> None:
        if isinstance(record.msg, str) and record.msg.startswith(REPORTED_BY_RECORDER):
            return
        try:
            client = getattr(record, "client", None)
            message = record.getMessage().splitlines()[0][:MAX_MESSAGE] if record.msg else ""
            self.bus.publish(
                LogEvent(record.created, record.levelname, message, peer(client)[0] or None if client else None)
            )
        except Exception:  # a log handler must never raise into the proxy
            self.handleError(record)


class PrivateFileHandler(logging.handlers.RotatingFileHandler):
    """A rotating log file readable by its owner only: the log names hosts, clients and errors of captured flows."""

    def _open(self):  # type: ignore[no-untyped-def]  # logging's own signature
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        return open(fd, self.mode, encoding=self.encoding, errors=self.errors)  # the handler's


def setup_logging(log_file: Path | None, bus: Bus | None, level: int = logging.INFO) -> None:
    """Route the root logger to our handlers only (replacing Python's last-resort stderr output)."""
    root = logging.getLogger()
    for h in list(root.handlers):
        if isinstance(h, BusHandler | logging.handlers.RotatingFileHandler):
            root.removeHandler(h)
            h.close()
    root.setLevel(level)
    if log_file is not None:
        private_dir(log_file.parent)
        fh = PrivateFileHandler(log_file, maxBytes=5_000_000, backupCount=3, encoding="utf-8")
        fh.setFormatter(logging.Formatter(FORMAT))
        root.addHandler(fh)
    else:
        root.addHandler(logging.NullHandler())
    if bus is not None:
        root.addHandler(BusHandler(bus))
    server = logging.getLogger("mitmproxy.proxy.server")
    server.removeFilter(not_chatter)
    server.addFilter(not_chatter)
    # hpack/h2 debug chatter is noise even in the file.
    for noisy in ("hpack", "h2", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

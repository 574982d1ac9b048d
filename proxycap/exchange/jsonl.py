"""One summary per line, as ``proxycap flows --json`` prints them: for scripts and spreadsheets, not re-import."""

from __future__ import annotations

import json
from typing import Any, BinaryIO

from mitmproxy import http


class JsonlWriter:
    needs_flow = False  # the summaries alone: no flow is loaded

    def __init__(self, fo: BinaryIO) -> None:
        self.fo = fo
        self.count = 0

    def add(self, flow: http.HTTPFlow | None, row: dict[str, Any] | None = None) -> None:
        self.fo.write(json.dumps(row).encode() + b"\n")
        self.count += 1

    def close(self) -> None:
        pass

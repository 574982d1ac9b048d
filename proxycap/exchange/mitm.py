"""mitmproxy's own flow files (``mitmdump -w``, ``mitmweb --rfile``), through ``mitmproxy.io``: what this
mitmproxy writes, and what mitmproxy 9 to 12 wrote (``FlowReader`` migrates older versions)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

from mitmproxy import exceptions, http
from mitmproxy.io import FlowReader, FlowWriter

from proxycap.capture.summary import META_REPLAY_OF
from proxycap.exchange import ExchangeError


class MitmWriter:
    needs_flow = True

    def __init__(self, fo: BinaryIO) -> None:
        self._writer = FlowWriter(fo)
        self.count = 0

    def add(self, flow: http.HTTPFlow, row: dict[str, Any] | None = None) -> None:
        self._writer.add(flow)
        self.count += 1

    def close(self) -> None:
        pass


def read_mitm(fo: BinaryIO, name: str, skip: Callable[[], None] = lambda: None) -> Iterator[http.HTTPFlow]:
    """The HTTP flows of a mitmproxy flow file, one at a time, with fresh ids (a file imported twice must not
    collide with itself), replays still naming their originals. ``skip`` hears of each flow that is not HTTP (TCP,
    UDP, DNS): proxycap stores HTTP flows only."""
    ids: dict[str, str] = {}
    n = 0
    stream = FlowReader(fo).stream()
    while True:
        try:
            flow = next(stream)
        except StopIteration:
            return
        except exceptions.FlowReadException as e:
            cause = e.__cause__ or e
            detail = "truncated or damaged" if isinstance(cause, ValueError | IndexError | TypeError) else cause
            raise ExchangeError(f"{name}: flow {n + 1}: cannot be read ({detail})") from None
        n += 1
        if not isinstance(flow, http.HTTPFlow):
            skip()
            continue
        ids[flow.id] = flow.id = str(uuid.uuid4())
        if replay_of := flow.metadata.get(META_REPLAY_OF):
            flow.metadata[META_REPLAY_OF] = ids.get(replay_of, replay_of)
        yield flow

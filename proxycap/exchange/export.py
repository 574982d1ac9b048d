"""A store's flows to a file: those of a query (client, marked), optionally narrowed by a mitmproxy filter
expression, in one of the formats, streamed flow by flow (one flow in memory at a time), optionally redacted. The
file appears only once it is complete, readable by its owner only."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from mitmproxy import flowfilter, http

from proxycap.exchange import ExchangeError
from proxycap.exchange.copying import CurlScriptWriter
from proxycap.exchange.files import atomic_output
from proxycap.exchange.har_writer import HarWriter
from proxycap.exchange.jsonl import JsonlWriter
from proxycap.exchange.mitm import MitmWriter
from proxycap.exchange.redact import redact_flow, redact_row
from proxycap.exchange.saz_writer import SazWriter
from proxycap.query.filters import matching_rows, with_expression
from proxycap.storage.store import Query, Store


class Writer(Protocol):
    needs_flow: bool  # False: the summaries suffice (no full flow is loaded)
    count: int

    def add(self, flow: http.HTTPFlow | None, row: dict[str, Any] | None = None) -> None: ...
    def close(self) -> None: ...


# Format → (what it is called, its usual suffix, its writer for an open file and the file's path).
FORMATS: dict[str, tuple[str, str, Callable[[BinaryIO, Path], Writer]]] = {
    "har": ("HAR", ".har", lambda fo, path: HarWriter(fo)),
    "mitm": ("mitmproxy flows", ".mitm", lambda fo, path: MitmWriter(fo)),
    "saz": ("Fiddler SAZ", ".saz", lambda fo, path: SazWriter(fo)),
    "curl": ("curl script", ".sh", CurlScriptWriter),
    "jsonl": ("JSON lines", ".jsonl", lambda fo, path: JsonlWriter(fo)),
}


def format_for(path: Path) -> str | None:
    """The format a file name suggests, if any."""
    suffix = path.suffix.lower()
    return next((fmt for fmt, (_, s, _) in FORMATS.items() if s == suffix), None)


@dataclasses.dataclass
class ExportResult:
    path: Path
    format: str
    flows: int = 0
    redacted: int = 0  # values replaced with REDACTED
    unstored: int = 0  # matching flows left out: only their summary was kept (or they are still in flight)

    def summary(self, redact: bool = False) -> str:
        """The one line for the user: how many flows went to which file, values redacted (if asked), flows left out."""
        line = f"exported {self.flows:,} flow{'s' * (self.flows != 1)} to {self.path} ({FORMATS[self.format][0]})"
        if redact:
            line += f"; {self.redacted:,} value{'s' * (self.redacted != 1)} redacted"
        if self.unstored:
            line += f"; {self.unstored:,} left out (only their summary was kept, or still in flight)"
        return line


def export_flows(
    store: Store,
    query: Query,
    path: Path,
    fmt: str,
    *,
    flt: flowfilter.TFilter | None = None,
    redact: bool = False,
    progress: Callable[[int, int | None], None] = lambda done, total: None,
    cancelled: Callable[[], bool] = lambda: False,
) -> ExportResult:
    """Write the flows ``query`` (and ``flt``) select to ``path`` in ``fmt``. ``progress`` hears (flows done, total
    or None if only the filter can tell). ``cancelled`` stops early: the file is then not written."""
    if fmt not in FORMATS:
        raise ExchangeError(f"no export format {fmt!r} (choose from {', '.join(FORMATS)})")
    query = dataclasses.replace(query, upto_seq=query.upto_seq or store.max_seq())  # one cut, while more arrive
    narrowed = with_expression(store, query, flt) if flt is not None else query
    total = store.count(narrowed) if narrowed is not None else None
    result = ExportResult(path, fmt)

    def unstored(row: dict[str, Any]) -> None:
        result.unstored += 1

    with atomic_output(path) as fo:
        writer = FORMATS[fmt][2](fo, path)
        done = 0
        for row in matching_rows(store, query, flt, cancelled=cancelled, unstored=unstored):
            flow = None
            if writer.needs_flow:
                flow = store.load_flow(row["seq"])
                if flow is None:
                    unstored(row)
                    continue
                if redact:
                    result.redacted += redact_flow(flow)
            elif redact:
                result.redacted += redact_row(row)
            writer.add(flow, row)
            done += 1
            progress(done, total)
        if cancelled():
            raise ExchangeError(f"{path}: export cancelled, nothing written")
        writer.close()
    result.flows = writer.count
    return result

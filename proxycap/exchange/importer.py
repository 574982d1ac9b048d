"""Files into a store: HAR, SAZ and mitmproxy flow files, recognised by their content. All or nothing: every flow
of every file is written in one transaction, so a file that is not what it claims, is truncated or has a broken
entry stops the import with one line naming the file, the entry and what is wrong, and the store is left as it was.
Imported flows say where they came from (their summary's ``source``)."""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import re
import shutil
import sys
import tempfile
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from mitmproxy import connection, http

from proxycap.capture.summary import summarize
from proxycap.exchange import ExchangeError
from proxycap.exchange.har_reader import read_har
from proxycap.exchange.mitm import read_mitm
from proxycap.exchange.saz_reader import read_saz
from proxycap.internals.mitmproxy import snapshot
from proxycap.storage.store import Store

# Format → (what it is called, the suffixes that claim it).
FORMATS: dict[str, tuple[str, tuple[str, ...]]] = {
    "har": ("HAR", (".har", ".json")),
    "saz": ("Fiddler SAZ", (".saz",)),
    "mitm": ("mitmproxy flows", (".mitm", ".flows", ".dump")),
}
_SQLITE = b"SQLite format 3\x00"


def detect(path: Path) -> str | None:
    """What a file holds, from its first bytes: "har", "saz", "mitm", "store" (a proxycap store), or None."""
    with open(path, "rb") as fo:
        head = fo.read(64)
    if head.startswith(_SQLITE):
        return "store"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "saz"
    if head.removeprefix(b"\xef\xbb\xbf").lstrip().startswith(b"{"):
        return "har"
    if re.match(rb"\d+:", head):  # a tnetstring: its length, then a colon
        return "mitm"
    return None


def _checked(path: Path) -> str:
    fmt = detect(path)
    if fmt in FORMATS:
        return fmt  # type: ignore[return-value]
    claimed = next((f for f, (_, suffixes) in FORMATS.items() if path.suffix.lower() in suffixes), None)
    what = f"a {FORMATS[claimed][0]} file" if claimed else "a HAR, SAZ or mitmproxy flow file"
    if fmt == "store":
        raise ExchangeError(f"{path}: a proxycap store, not {what}: open it with --store or tui --open")
    raise ExchangeError(f"{path}: not {what} (its content is none of these)")


def read_flows(path: Path, fo: BinaryIO, skip: Callable[[], None] = lambda: None) -> Iterator[http.HTTPFlow]:
    """The flows of one file (open as ``fo``), streamed; ExchangeError at the first thing wrong."""
    return _reader(_checked(path), path, fo, skip)


def _reader(fmt: str, path: Path, fo: BinaryIO, skip: Callable[[], None]) -> Iterator[http.HTTPFlow]:
    if fmt == "har":
        return read_har(fo, str(path))
    if fmt == "saz":
        return read_saz(fo, str(path))
    return read_mitm(fo, str(path), skip)


@dataclasses.dataclass
class ImportResult:
    files: list[tuple[Path, str, int]] = dataclasses.field(default_factory=list)  # (file, format, flows)
    skipped: int = 0  # flows that are not HTTP (TCP, UDP, DNS in a mitmproxy file)

    @property
    def flows(self) -> int:
        return sum(n for _, _, n in self.files)


def import_files(
    store: Store, paths: Sequence[Path], progress: Callable[[int], None] = lambda done: None
) -> ImportResult:
    """Import ``paths`` into ``store`` in one transaction; ExchangeError (nothing written) if any is bad. Where the
    OS can fork, the files are read in a second process while this one stores their flows (bench/RESULTS.md,
    "Import and export")."""
    for path in paths:  # every file is there before anything is read
        if not path.is_file():
            raise ExchangeError(f"{path}: no such file")
    result = ImportResult()
    rows = _forked(paths, result) if FORK is not None else _read(paths, result)
    done = 0

    def counted() -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
        nonlocal done
        for row in rows:
            yield row
            done += 1
            progress(done)

    store.write(counted())
    return result


def _read(paths: Sequence[Path], result: ImportResult) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """Every flow of ``paths`` as (summary, state)."""

    def skip() -> None:
        result.skipped += 1

    conns = _RecentConnections()
    for path in paths:
        source = str(path.resolve())
        fmt = _checked(path)
        n = 0
        with open(path, "rb") as fo:
            for flow in _reader(fmt, path, fo, skip):
                summary = summarize(flow, state="error" if flow.error else "done")
                summary["source"] = source
                yield summary, snapshot(flow, conns)
                n += 1
        result.files.append((path, fmt, n))


FORK = multiprocessing.get_context("fork") if sys.platform == "linux" else None
BATCH = 200  # rows per message from the reading process


def _forked(paths: Sequence[Path], result: ImportResult) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """``_read`` in a forked process (it inherits what is imported, so it starts at once)."""
    assert FORK is not None
    receive, send = FORK.Pipe(duplex=False)
    reader = FORK.Process(target=_read_into, args=(paths, send), name="proxycap-import-reader", daemon=True)
    reader.start()
    send.close()
    try:
        while True:
            try:
                kind, payload = receive.recv()
            except EOFError:
                raise ExchangeError("the import's reading process stopped unexpectedly") from None
            if kind == "rows":
                yield from payload
            elif kind == "done":
                result.files, result.skipped = payload
                return
            else:
                raise ExchangeError(payload)
    finally:
        receive.close()
        reader.kill()
        reader.join()


def _read_into(paths: Sequence[Path], send: Any) -> None:
    """The reading process: rows in batches, then ("done", (files, skipped)) or ("error", the one-line reason)."""
    result = ImportResult()
    batch: list[tuple[dict[str, Any], dict[str, Any]]] = []
    try:
        for row in _read(paths, result):
            batch.append(row)
            if len(batch) >= BATCH:
                send.send(("rows", batch))
                batch = []
        send.send(("rows", batch))
        send.send(("done", (result.files, result.skipped)))
    except ExchangeError as e:
        send.send(("error", str(e)))
    except Exception as e:  # a defect: the import still ends in one line, with nothing written
        send.send(("error", f"import failed: {type(e).__name__}: {e}"))


class _RecentConnections:
    """``snapshot``'s connection states for an import: flows read from a file share their connections, which never
    change once read; the states of the most recent are kept."""

    LIMIT = 1000

    def __init__(self) -> None:
        self._states: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def get(self, conn: connection.Connection) -> dict[str, Any]:
        state = self._states.get(conn.id)
        if state is None:
            state = self._states[conn.id] = conn.get_state()
            if len(self._states) > self.LIMIT:
                self._states.popitem(last=False)
        return state


@contextlib.contextmanager
def opened_capture(path: Path) -> Iterator[Path]:
    """The store ``tui --open`` browses: ``path`` itself if it is a store (or nothing this module reads, for the
    store to report), else a private temporary store the file is imported into, removed when done."""
    if not path.is_file() or detect(path) not in FORMATS:
        if path.is_file() and path.suffix.lower() in {s for _, suffixes in FORMATS.values() for s in suffixes}:
            _checked(path)  # claims to be a capture file but is not: say so, not "not a proxycap store"
        yield path
        return
    folder = Path(tempfile.mkdtemp(prefix="proxycap-open-"))  # mode 0700
    try:
        store_path = folder / "capture.db"
        store = Store(store_path)
        try:
            import_files(store, [path])
        finally:
            store.close()
        yield store_path
    finally:
        shutil.rmtree(folder, ignore_errors=True)

"""``proxycap export`` and ``proxycap import``: captures to and from HAR, mitmproxy flow files, Fiddler SAZ, curl
scripts and JSON lines."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from proxycap.cli.common import UserError, add_store, client_ip
from proxycap.paths import default_store

PROGRESS_INTERVAL = 0.1  # seconds between redraws of a progress bar


def add_parsers(sub: argparse._SubParsersAction) -> None:
    from proxycap.exchange.export import FORMATS

    exp = sub.add_parser(
        "export",
        help="write stored flows to a HAR, mitmproxy, SAZ, curl or JSON lines file",
        epilog="filter expressions: mitmproxy's syntax, see proxycap flows --help-filters",
    )
    add_store(exp)
    exp.add_argument("--filter", "-f", metavar="EXPR", help="only flows this mitmproxy filter expression matches")
    exp.add_argument("--client", metavar="IP", help="only this client IP (exact match)")
    exp.add_argument("--marked", action="store_true", help="only marked flows")
    exp.add_argument("--format", choices=list(FORMATS), help="the file's format (default: from the output's suffix)")
    exp.add_argument("-o", "--output", type=Path, required=True, metavar="FILE", help="the file to write")
    exp.add_argument(
        "--redact",
        action="store_true",
        help="replace secrets (Authorization, cookies, token/key/secret/password values) with REDACTED",
    )
    exp.set_defaults(run=cmd_export)

    imp = sub.add_parser(
        "import",
        help="read HAR, SAZ and mitmproxy flow files into the store (all or nothing)",
    )
    imp.add_argument("files", nargs="+", type=Path, metavar="FILE", help=".har, .saz or mitmproxy flow file")
    add_store(imp)
    imp.set_defaults(run=cmd_import)


@contextlib.contextmanager
def _progress(what: str) -> Iterator[Callable[[int, int | None], None]]:
    """A progress bar on a terminal (stderr), nothing when stderr is not one."""
    if not sys.stderr.isatty():
        yield lambda done, total: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn(what), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    # Drawn from the caller, not from rich's refresh thread: an import forks its reading process, which a
    # multi-threaded process should not do.
    with Progress(*columns, console=Console(stderr=True), transient=True, auto_refresh=False) as bar:
        task = bar.add_task(what, total=None)
        drawn = 0.0

        def update(done: int, total: int | None) -> None:
            nonlocal drawn
            bar.update(task, completed=done, total=total)
            if (now := time.monotonic()) - drawn >= PROGRESS_INTERVAL:
                drawn = now
                bar.refresh()

        yield update


def cmd_export(args: argparse.Namespace) -> int:
    from proxycap.exchange.export import FORMATS, export_flows, format_for
    from proxycap.query.filters import FilterError, compile_filter
    from proxycap.storage.store import Query, Store

    fmt = args.format or format_for(args.output)
    if fmt is None:
        raise UserError(f"-o {args.output}: say which --format ({', '.join(FORMATS)}); its suffix does not")
    try:
        flt = compile_filter(args.filter) if args.filter else None
    except FilterError as e:
        raise UserError(f"{e} (operators: proxycap flows --help-filters)") from None
    if args.output.is_dir():
        raise UserError(f"-o {args.output}: a folder, not a file")
    query = Query(client_ip=client_ip(args.client), marked=True if args.marked else None)
    store = Store(args.store or default_store(), readonly=True)
    try:
        with _progress("exporting") as progress:
            result = export_flows(store, query, args.output, fmt, flt=flt, redact=args.redact, progress=progress)
    finally:
        store.close()
    print(result.summary(args.redact), file=sys.stderr)
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    if __debug__:
        # As the store writer's child does: unless Python runs optimised, mitmproxy type-checks every message it
        # builds, a fifth of an import's time.
        argv = ["import", *(["--store", str(args.store)] if args.store else []), "--", *map(str, args.files)]
        os.execv(sys.executable, [sys.executable, "-O", "-m", "proxycap", *argv])
    from proxycap.exchange.importer import FORMATS, import_files
    from proxycap.storage.store import Store

    store = Store(args.store or default_store())
    try:
        with _progress("importing") as progress:
            result = import_files(store, args.files, progress=lambda done: progress(done, None))
    finally:
        store.close()
    parts = [f"{n:,} from {path} ({FORMATS[fmt][0]})" for path, fmt, n in result.files]
    line = f"imported {result.flows:,} flow{'s' * (result.flows != 1)} into {store.path}: {', '.join(parts)}"
    if result.skipped:
        line += f"; {result.skipped:,} non-HTTP flows skipped"
    print(line, file=sys.stderr)
    return 0

"""Store reads with and without a CPU-bound thread beside them: ``python -m bench.convoy [--flows N]``.

The proxy's engine thread keeps the GIL busy under load. The sqlite3 module releases the GIL around every
``sqlite3_step`` and each re-acquisition then waits out the busy thread's switch interval (5 ms), so a query
read row by row, or a Python function called by SQLite per row, slows down by orders of magnitude. This shows
it on a synthetic store of summaries (no proxy needed), for the reads the TUI's filters make.
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from proxycap.query.filters import compile_filter, with_expression
from proxycap.storage.store import Query, Store


def build(path: Path, n: int) -> None:
    store = Store(path)
    try:
        rows = []
        for i in range(n):
            ip, host = f"127.0.2.{i % 8}", f"127.0.1.{i % 8}"
            url = f"http://{host}/x/{i}"
            summary = {
                "id": f"id{i}",
                "ts": float(i),
                "client_ip": ip,
                "client_port": 5000 + i % 100,
                "method": "GET",
                "scheme": "http",
                "host": host,
                "port": 80,
                "path": f"/x/{i}",
                "url": url,
                "status": 200,
                "state": "done",
            }
            rows.append((summary, None))
            if len(rows) == 5000:
                store.write(rows)
                rows = []
        store.write(rows)
    finally:
        store.close()


URL_TEXT = Query(text="127.0.1.1/")


def timings(store: Store, raw: sqlite3.Connection) -> list[tuple[str, float, int]]:
    """``raw``: a plain sqlite3 connection to the same file, for the row-by-row read the store never makes."""
    where, args = URL_TEXT.where()
    cases: list[tuple[str, Callable[[], int]]] = [
        ("client IP (indexed)", lambda: len(store.seqs(Query(client_ip="127.0.2.1")))),
        ("URL text", lambda: len(store.seqs(URL_TEXT))),
        ("~d 127.0.1.1", lambda: len(store.seqs(with_expression(store, Query(), compile_filter("~d 127.0.1.1"))))),
        ("200 visible rows", lambda: len(store.rows(list(range(5000, 5200))))),
        # The same filter read as every read was before: one step, so one GIL re-acquisition, per row.
        ("URL text, row by row", lambda: len(raw.execute(f"SELECT seq FROM flows WHERE {where}", args).fetchall())),
    ]
    out = []
    for name, fn in cases:
        t0 = time.perf_counter()
        n = fn()
        out.append((name, (time.perf_counter() - t0) * 1000, n))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--flows", type=int, default=100_000)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "convoy.db"
        build(path, args.flows)
        store = Store(path, readonly=True)
        raw = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)
        idle = timings(store, raw)
        stop = threading.Event()

        def burn() -> None:
            while not stop.is_set():
                pass  # a pure-Python loop, as the engine is

        burner = threading.Thread(target=burn, daemon=True)
        burner.start()
        try:
            busy = timings(store, raw)
        finally:
            stop.set()
            burner.join()
            store.close()
            raw.close()
    print(f"| read ({args.flows:,} flows) | rows | idle ms | beside a CPU-bound thread ms |")
    print("|---|--:|--:|--:|")
    for (name, t_idle, n), (_, t_busy, _) in zip(idle, busy, strict=True):
        print(f"| {name} | {n:,} | {t_idle:.1f} | {t_busy:.1f} |")


if __name__ == "__main__":
    main()

"""Export and import speed and memory: ``python -m bench.exchange`` (``--quick`` for a small check).

1. A store of 100,000 flows with 64 KB response bodies (text, compressible like real JSON) is exported to HAR by
   ``proxycap export`` in a child process: its time and peak RSS (the issue's bound: 200 MB).
2. A 50,000-entry HAR (Chrome's shape: request headers, a 2 KB JSON response each) is imported by
   ``proxycap import`` into a new store: entries/s (the issue's bound: 5,000/s) and peak RSS.

Peak RSS is the child's ``ru_maxrss`` plus that of the processes it waited for (an import's reading process: both
run at once, so the sum bounds the pair); times are wall-clock, and the CPU time (user + system) of both is given
too: on a shared machine the wall-clock rate says as much about the other processes. The files are made
in a temporary folder and removed afterwards (``--keep`` keeps them).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from mitmproxy import connection, http

from proxycap.capture.summary import summarize
from proxycap.exchange.har_writer import HarWriter
from proxycap.storage.store import Store

# Runs one CLI command in the child and reports its time and peak RSS as JSON on the last line.
_CHILD = """
import json, resource, sys, time
from proxycap.cli import main
start = time.perf_counter()
rc = main(sys.argv[1:])
own, helpers = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"rc": rc, "seconds": time.perf_counter() - start,
                  "cpu": sum(u.ru_utime + u.ru_stime for u in (own, helpers)),
                  "peak_rss_mb": (own.ru_maxrss + helpers.ru_maxrss) / 1024}))
"""


def _flow(i: int, body: bytes, ts: float) -> http.HTTPFlow:
    client = connection.Client(
        peername=("127.0.0.2", 40000 + i // 10 % 20000), sockname=("127.0.0.1", 8080), timestamp_start=ts
    )
    server = connection.Server(address=("api.example.com", 443), peername=("93.184.216.34", 443))
    server.timestamp_start, server.timestamp_tcp_setup, server.timestamp_tls_setup = ts, ts + 0.01, ts + 0.03
    flow = http.HTTPFlow(client, server)
    flow.request = http.Request.make(
        "GET",
        f"https://api.example.com/items/{i}?page={i % 50}",
        headers={"user-agent": "Mozilla/5.0 bench", "accept": "application/json", "cookie": f"sid={i}"},
    )
    flow.request.timestamp_start, flow.request.timestamp_end = ts + 0.03, ts + 0.031
    flow.response = http.Response.make(200, body, {"content-type": "application/json", "server": "bench"})
    flow.response.timestamp_start, flow.response.timestamp_end = ts + 0.08, ts + 0.09
    flow.id = str(uuid.uuid4())
    return flow


def _body(i: int, size: int) -> bytes:
    """JSON-like text of ``size`` bytes that differs per flow (so zstd sees realistic, not identical, data)."""
    unit = json.dumps({"id": i, "name": f"item {i}", "tags": ["a", "b", str(i % 97)], "price": i * 1.5}).encode()
    out = (b"[" + b",".join([unit] * (size // (len(unit) + 1) + 1)))[: size - 1] + b"]"
    return out


def build_store(path: Path, n: int, size: int) -> None:
    store = Store(path)
    start = time.time() - n
    batch: list = []
    for i in range(n):
        flow = _flow(i, _body(i, size), start + i)
        batch.append((summarize(flow, state="done"), flow.get_state()))
        if len(batch) == 500:
            store.write(batch)
            batch = []
    store.write(batch)
    store.close()


def build_har(path: Path, n: int, size: int) -> None:
    with open(path, "wb") as fo:
        writer = HarWriter(fo)
        start = time.time() - n
        for i in range(n):
            writer.add(_flow(i, _body(i, size), start + i))
        writer.close()


def run_cli(*args: str) -> dict[str, float]:
    p = subprocess.run([sys.executable, "-O", "-c", _CHILD, *args], capture_output=True, text=True, check=True)
    return json.loads(p.stdout.strip().splitlines()[-1])


def _times(result: dict[str, float], n: int, what: str) -> tuple[str, str, str]:
    wall, cpu = result["seconds"], result["cpu"]
    return (
        f"{wall:.1f} s ({n / wall:,.0f} {what}/s)",
        f"{cpu:.1f} s ({n / cpu:,.0f} {what}/s)",
        f"{result['peak_rss_mb']:.0f} MB",
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.exchange", description=__doc__.splitlines()[0])
    p.add_argument("--flows", type=int, default=100_000, help="flows to export (default 100000)")
    p.add_argument("--body", type=int, default=64 * 1024, help="response body size of exported flows (64 KB)")
    p.add_argument("--entries", type=int, default=50_000, help="HAR entries to import (default 50000)")
    p.add_argument("--entry-body", type=int, default=2048, help="response body size of imported entries (2 KB)")
    p.add_argument("--quick", action="store_true", help="1,000 flows and 2,000 entries: checks the harness works")
    p.add_argument("--only", choices=["export", "import"], help="run one of the two")
    p.add_argument("--keep", type=Path, default=None, metavar="DIR", help="make the files here and keep them")
    args = p.parse_args(argv)
    if args.quick:
        args.flows, args.entries = 1_000, 2_000
    work = args.keep or Path(tempfile.mkdtemp(prefix="proxycap-bench-exchange-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        rows = []
        if args.only != "import":
            store, har_out = work / "export.db", work / "export.har"
            t = time.perf_counter()
            build_store(store, args.flows, args.body)
            print(f"store of {args.flows:,} flows ({args.body:,}-byte bodies) made in {time.perf_counter() - t:.0f} s")
            exp = run_cli("export", "--store", str(store), "--format", "har", "-o", str(har_out))
            size = har_out.stat().st_size
            har_out.unlink()
            data = f"{args.flows:,} flows, {args.body // 1024} KB bodies → {size / 1e9:.2f} GB"
            rows.append(("HAR export", data, *_times(exp, args.flows, "flows")))
        if args.only != "export":
            har_in = work / "import.har"
            build_har(har_in, args.entries, args.entry_body)
            imp = run_cli("import", str(har_in), "--store", str(work / "import.db"))
            data = f"{args.entries:,} entries, {har_in.stat().st_size / 1e6:.0f} MB"
            rows.append(("HAR import", data, *_times(imp, args.entries, "entries")))
        print("\n| run | data | wall time | CPU time | peak RSS |\n| --- | --- | --- | --- | --- |")
        for row in rows:
            print("| " + " | ".join(row) + " |")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What stalls the proxy under load: ``python -m bench.probe tui --shape http-ka-1k``.

Runs proxycap (``record`` or ``tui``) with ``bench/probe_site`` on its path, which records garbage collections,
the engine loop's lag and each thread's CPU time inside the proxy's process (see its docstring), and prints,
for the measured window: req/s and latency, the loop lag's percentiles, CPU per thread (in cores), and GC
pauses per generation and thread. ``--gc 2000,10,10`` tries other collector thresholds. Not needed by the
benchmark itself; bench/RESULTS.md quotes it ("Live updates under load", "Garbage collection").
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from bench.loadgen import SHAPES
from bench.profile import under_load
from bench.targets import ROOT

SITE = Path(__file__).with_name("probe_site")


def _pct(xs: list[float], q: float) -> float:
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


def report(data: dict[str, Any], start: float, end: float) -> str:
    """The probe's samples between ``start`` and ``end`` (epoch seconds), as text."""
    lags = sorted(data["lag"][len(data["lag"]) // 4 :])  # the first quarter is start-up and warmup
    cpu = [(t, c) for t, c in data["cpu"] if start <= t <= end]
    out = [
        f"engine loop lag ms: p50 {_pct(lags, 0.5):.1f}  p99 {_pct(lags, 0.99):.1f}  p99.9 {_pct(lags, 0.999):.1f}"
        f"  max {max(lags, default=0):.1f}  (>10 ms: {sum(x > 10 for x in lags)} of {len(lags)})"
    ]
    if len(cpu) >= 2:
        (t0, a), (t1, b) = cpu[0], cpu[-1]
        shares = {k: (b[k] - a.get(k, 0)) / (t1 - t0) for k in b}
        out.append(
            "CPU, cores: "
            + ", ".join(f"{k} {v:.2f}" for k, v in sorted(shares.items(), key=lambda kv: -kv[1]) if v >= 0.005)
        )
    pauses: dict[tuple[int, str], list[float]] = collections.defaultdict(list)
    for t, gen, ms, thread in data["gc"]:
        if start <= t <= end:
            pauses[(gen, thread)].append(ms)
    for (gen, thread), ms in sorted(pauses.items()):
        out.append(
            f"GC gen{gen} on {thread}: {len(ms)} pauses, median {statistics.median(ms):.1f} ms, "
            f"max {max(ms):.1f} ms, total {sum(ms):.0f} ms"
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.probe", description=__doc__)
    p.add_argument("proxy", choices=("record", "tui"))
    p.add_argument("--shape", default="http-ka-1k", choices=list(SHAPES))
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--gc", help="collector thresholds for proxycap's own settings, e.g. 700,10,10")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "probe")
    args = p.parse_args(argv)
    samples = args.out / f"{args.proxy}-{args.shape}.json"
    env = {"PROXYCAP_PROBE_OUT": str(samples)}
    if args.gc:
        env["PROXYCAP_PROBE_GC"] = args.gc
    with under_load(f"{args.proxy}@probe", args.shape, args.seconds, args.out, {"probe": SITE}, env) as (_, gen):
        start = time.time()
        res = gen.wait()
        end = time.time()
        time.sleep(1.2)  # the probe's last write
    print(f"{args.proxy} {args.shape}: {res.rps:.0f} req/s, p50 {res.p50:.1f} ms, p99 {res.p99:.1f} ms")
    print(report(json.loads(samples.read_text()), start, end))
    return 0


if __name__ == "__main__":
    sys.exit(main())

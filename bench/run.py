"""The benchmark's single entry point: ``python -m bench`` (see ``--help`` and bench/RESULTS.md).

Scenarios:
  throughput  every proxy under every load shape, proxies alternated within each round, medians over rounds
  memory      N flows with 64 KB responses through proxycap and mitmweb, RSS at 0/25/50/100 %
  ui          filter timings on the N-flow store; keypress-to-frame in ``proxycap tui`` (tmux) under load
  filters     only the filter timings of the ui scenario
  attach      a new flow's delay and keypress-to-frame in the in-process TUI and in an attached window, under load
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import attach, report, ui
from bench.loadgen import SHAPES, SOURCES, LoadGen, LoadSpec, run_load
from bench.origin import HOSTS, Origin, start_origin
from bench.targets import ALL_PROXIES, ROOT, WATCHED, Env, OtherCpu, RssSampler, Target, Tmux, ensure_ca

CHECKPOINTS = (0.25, 0.5, 1.0)
METRICS = ("rps", "p50_ms", "p99_ms", "cpu_ms", "rss_mb", "start_s")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --- throughput -----------------------------------------------------------------------------------


def throughput(
    args: argparse.Namespace,
    env: Env,
    org: Origin,
    proxies: list[str],
) -> list[dict[str, Any]]:
    """One sample per (round, shape, proxy); the proxy order rotates every round."""
    samples: list[dict[str, Any]] = []
    for rnd in range(args.rounds):
        order = proxies[rnd % len(proxies) :] + proxies[: rnd % len(proxies)]
        for shape in args.shapes:
            for name in order:
                target = attach.Watched(env) if name == WATCHED else Target(name, env)
                try:
                    start_s = target.start()
                    spec = LoadSpec(
                        target.port,
                        org.port,
                        org.tls_port,
                        SHAPES[shape],
                        duration=args.duration,
                        warmup=args.warmup,
                        procs=args.procs,
                        conns=args.conns,
                        proxy_ca=str(env.proxy_ca),
                        max_requests=args.requests,
                    )
                    cpu0 = target.cpu()
                    with RssSampler(target.pid) as sampler, OtherCpu(env.roots) as other:
                        res = run_load(spec)
                    cpu_ms = (target.cpu() - cpu0) * 1000 / max(1, res.total_requests)
                    peak = max(sampler.peak, target.hwm())
                except RuntimeError as e:
                    log(f"round {rnd + 1} {shape} {name}: FAILED {e}")
                    samples.append({"round": rnd, "shape": shape, "proxy": name, "error": str(e)})
                    continue
                finally:
                    target.stop()
                    target.remove_store()
                samples.append(
                    {
                        "round": rnd,
                        "shape": shape,
                        "proxy": name,
                        "rps": res.rps,
                        "p50_ms": res.p50,
                        "p99_ms": res.p99,
                        "cpu_ms": cpu_ms,
                        "rss_mb": peak,
                        "start_s": start_s,
                        "requests": res.requests,
                        "errors": res.errors,
                        "last_error": res.last_error,
                        "other_cores": other.cores,
                    }
                )
                log(
                    f"round {rnd + 1}/{args.rounds} {shape:13} {name:11} {res.rps:7.0f} req/s  p50 {res.p50:6.1f}  "
                    f"p99 {res.p99:6.1f} ms  cpu/req {cpu_ms:5.2f} ms  peak {peak:6.0f} MB  start {start_s:.2f} s  "
                    f"errors {res.errors}  other {other.cores:.2f} cores"
                )
    return samples


def summarize(samples: list[dict[str, Any]], baseline: str = "mitmdump") -> list[dict[str, Any]]:
    """Medians over rounds per (shape, proxy), with every figure as a ratio to the baseline's."""
    rows: list[dict[str, Any]] = []
    order = list(dict.fromkeys(s["proxy"] for s in samples))
    keys = sorted(
        {(s["shape"], s["proxy"]) for s in samples if "rps" in s},
        key=lambda k: (list(SHAPES).index(k[0]), order.index(k[1])),
    )
    for shape, proxy in keys:
        ss = [s for s in samples if s["shape"] == shape and s["proxy"] == proxy and "rps" in s]
        row: dict[str, Any] = {"shape": shape, "proxy": proxy, "rounds": len(ss)}
        for k in METRICS:
            row[k] = statistics.median(s[k] for s in ss)
        row["errors"] = sum(s["errors"] for s in ss)
        rows.append(row)
    for row in rows:
        base = next((r for r in rows if r["shape"] == row["shape"] and r["proxy"] == baseline), None)
        for k in METRICS:
            row[f"{k}_x"] = row[k] / base[k] if base and base[k] else None
    return rows


# --- memory ---------------------------------------------------------------------------------------


def memory(args: argparse.Namespace, env: Env, org: Origin, proxies: list[str]) -> list[dict[str, Any]]:
    """RSS while N flows with 64 KB responses go through each proxy (8 clients x 8 hosts)."""
    out = []
    for name in proxies:
        target = Target(name, env, store=env.workdir / f"memory-{name}.db")
        target.remove_store()
        target.start()
        n = args.flows
        spec = LoadSpec(
            target.port,
            org.port,
            org.tls_port,
            SHAPES["http-ka-64k"],
            duration=max(60.0, n / 10),
            warmup=0,
            procs=args.procs,
            conns=args.conns,
            hosts=HOSTS,
            sources=SOURCES,
            max_requests=n,
            rotate_every=50,
            proxy_ca=str(env.proxy_ca),
        )
        points = [{"flows": 0, "rss_mb": target.rss(), "t_s": 0.0}]
        t0 = time.monotonic()
        try:
            with RssSampler(target.pid, 0.5) as sampler:
                gen = LoadGen(spec).start()
                for frac in CHECKPOINTS:
                    goal = int(n * frac)
                    while gen.progress < goal and gen.running():
                        time.sleep(0.05)
                    points.append({"flows": gen.progress, "rss_mb": target.rss(), "t_s": time.monotonic() - t0})
                    log(f"memory {name}: {gen.progress:,} flows, RSS {points[-1]['rss_mb']:.0f} MB")
                res = gen.wait()
                time.sleep(2)  # let a store writer drain what is queued
                settled = target.rss()
            peak = max(sampler.peak, target.hwm())
        finally:
            t_stop = time.monotonic()
            target.stop(timeout=300)  # a store writer with a backlog flushes it before exiting
            stop_s = time.monotonic() - t_stop
        row = {
            "proxy": name,
            "flows": res.requests,
            "errors": res.errors,
            "rps": res.rps,
            "points": points,
            "settled_rss_mb": settled,
            "peak_rss_mb": peak,
            "stop_s": stop_s,
            "store": str(target.store) if name in ("record", "tui") else None,
        }
        if row["store"]:
            from proxycap.storage.store import Store

            st = Store(target.store, readonly=True)
            try:
                row["stored_flows"] = st.count()
            finally:
                st.close()
            row["store_mb"] = sum(p.stat().st_size for p in target.store.parent.glob(target.store.name + "*")) / 2**20
        out.append(row)
        log(f"memory {name}: {res.requests:,} flows at {res.rps:.0f}/s, peak {peak:.0f} MB, errors {res.errors}")
    return out


# --- main -----------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    import mitmproxy.version
    import textual

    import proxycap

    info: dict[str, Any] = {
        "python": platform.python_version(),
        "mitmproxy": mitmproxy.version.VERSION,
        "textual": getattr(textual, "__version__", "?"),
        "proxycap": proxycap.__version__,
        "platform": platform.platform(),
        "cpus": len(__import__("os").sched_getaffinity(0)),
    }
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=5).stdout
        info["cpu"] = next(
            (ln.split(":", 1)[1].strip() for ln in lscpu.splitlines() if ln.startswith("Model name")), "?"
        )
    with contextlib.suppress(OSError, ValueError):
        meminfo = Path("/proc/meminfo").read_text().splitlines()
        kb = int(next(ln for ln in meminfo if ln.startswith("MemTotal")).split()[1])
        info["memory_gb"] = round(kb / 2**20, 1)
    return info


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="tiny load, 1 round: checks the harness works")
    p.add_argument("--scenarios", default="throughput,memory,ui", help="comma-separated (default: all)")
    p.add_argument("--proxies", default=",".join(ALL_PROXIES), help="comma-separated; missing tools are skipped")
    p.add_argument("--shapes", default=",".join(SHAPES), help=f"load shapes (default: {','.join(SHAPES)})")
    p.add_argument("--rounds", type=int, default=3, help="rounds of alternating proxies (default 3)")
    p.add_argument("--duration", type=float, default=8.0, help="measured seconds per sample (default 8)")
    p.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before each sample")
    p.add_argument("--requests", type=int, default=None, help="stop each sample after this many requests")
    p.add_argument("--procs", type=int, default=2, help="load generator processes (default 2)")
    p.add_argument("--conns", type=int, default=2, help="connections (threads) per process (default 2)")
    p.add_argument("--flows", type=int, default=100_000, help="flows for the memory and UI scenarios")
    p.add_argument("--memory-proxies", default="record,mitmweb", help="proxies for the memory scenario")
    p.add_argument(
        "--ui-store", type=Path, help="run the ui and attach scenarios on this store (default: the memory run's)"
    )
    p.add_argument("--ui-keys", type=int, default=15, help="keypresses timed per UI action")
    p.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="also run proxycap from DIR (first on PYTHONPATH) as record@NAME / tui@NAME",
    )
    p.add_argument("--json", type=Path, help="write every sample and the tables as JSON")
    p.add_argument("--png", type=Path, help="write a chart (needs matplotlib; skipped without it)")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "out", help="work folder (stores, logs)")
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.duration, args.warmup = 1, min(args.duration, 1.5), 0.3
        args.flows = min(args.flows, 600)
        args.ui_keys = min(args.ui_keys, 3)
        if args.requests is None:
            args.requests = 300
    args.scenarios = [s for s in args.scenarios.split(",") if s]
    args.shapes = [s for s in args.shapes.split(",") if s]
    for s in args.shapes:
        if s not in SHAPES:
            p.error(f"unknown shape {s!r}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = args.out.resolve() / time.strftime("run-%Y%m%d-%H%M%S")  # proxies start in it: paths must not be relative
    workdir.mkdir(parents=True, exist_ok=True)
    tmux = None
    try:
        tmux = Tmux(workdir)
    except (RuntimeError, OSError) as e:
        log(f"no terminal UIs: {e}")
    env = Env(workdir, workdir / "confdir", Path(), tmux=tmux)
    for v in args.variant:
        name, _, path = v.partition("=")
        env.variants[name] = Path(path).resolve()
    ensure_ca(env.confdir)
    result: dict[str, Any] = {
        "machine": machine(),
        "command": " ".join(["python -m bench", *(argv or sys.argv[1:])]),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
    }
    proxies = []
    for name in [p for p in args.proxies.split(",") if p]:
        ok, why = env.available(name)
        if ok:
            proxies.append(name)
        else:
            log(f"skipping {name}: {why}")
            result.setdefault("skipped", {})[name] = why
    try:
        with start_origin(workdir) as org:
            env.origin_ca = org.ca
            if "throughput" in args.scenarios:
                samples = throughput(args, env, org, proxies)
                result["throughput"] = {"samples": samples, "table": summarize(samples)}
            if "memory" in args.scenarios:
                mp = [p for p in args.memory_proxies.split(",") if env.available(p)[0]]
                result["memory"] = memory(args, env, org, mp)
            store = args.ui_store or next((Path(m["store"]) for m in result.get("memory", []) if m.get("store")), None)
            if "ui" in args.scenarios or "filters" in args.scenarios:
                result["ui"] = ui.scenario(args, env, org, store, log, keys="ui" in args.scenarios)
                store = Path(result["ui"]["store"]) if result["ui"].get("store") else store  # recorded there if None
            if "attach" in args.scenarios:
                result["attach"] = attach.scenario(args, env, org, store, log)
    finally:
        if tmux is not None:
            tmux.close()
    text = report.render(result)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, default=str))
    if args.png:
        report.chart(result, args.png, log)
    return 0

"""Tables (Markdown, so they paste into RESULTS.md) and an optional PNG chart of a benchmark result."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Targets from the issue (ratios are to mitmdump on the same machine, in the same run).
RPS_MIN_X = 0.9
P99_MAX_X = 1.2
RSS_MAX_MB = 200
KEY_MAX_MS = 100
FILTER_MAX_MS = 200
START_MAX_S = 1.5
CHECKED = ("record", "tui", "web", "watched")  # proxycap, in any variant (NAME@VARIANT~OPTION)
NEW_FLOW_MAX_MS = 500  # an attached window shows a new flow within this of its response


def checked(proxy: str) -> bool:
    return proxy.split("~")[0].split("@")[0] in CHECKED


def _f(v: Any, digits: int = 0) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:,.{digits}f}"


def _x(v: Any) -> str:
    return "-" if v is None else f"{v:.2f}x"


def _ok(flag: bool) -> str:
    return "ok" if flag else "MISS"


def throughput_table(rows: list[dict[str, Any]]) -> str:
    out = [
        "| shape | proxy | req/s | x | p50 ms | x | p99 ms | x | CPU ms/req | x | peak RSS MB | x | start s "
        "| errors | target |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|",
    ]
    for r in rows:
        verdict = ""
        if checked(r["proxy"]) and r["rps_x"] is not None:
            verdict = _ok(r["rps_x"] >= RPS_MIN_X and r["p99_ms_x"] <= P99_MAX_X)
        out.append(
            f"| {r['shape']} | {r['proxy']} | {_f(r['rps'])} | {_x(r['rps_x'])} | {_f(r['p50_ms'], 1)} | "
            f"{_x(r['p50_ms_x'])} | {_f(r['p99_ms'], 1)} | {_x(r['p99_ms_x'])} | {_f(r.get('cpu_ms'), 2)} | "
            f"{_x(r.get('cpu_ms_x'))} | {_f(r['rss_mb'])} | "
            f"{_x(r['rss_mb_x'])} | {_f(r['start_s'], 2)} | {r['errors']} | {verdict} |"
        )
    return "\n".join(out)


def memory_table(rows: list[dict[str, Any]]) -> str:
    out = [
        "| proxy | flows | req/s | RSS start | 25% | 50% | 100% | settled | peak | stored flows | store MB | stop s |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in rows:
        pts = [_f(p["rss_mb"]) for p in r["points"]] + ["-"] * (4 - len(r["points"]))
        out.append(
            f"| {r['proxy']} | {r['flows']:,} | {_f(r['rps'])} | {' | '.join(pts[:4])} | {_f(r['settled_rss_mb'])} | "
            f"{_f(r['peak_rss_mb'])} | {_f(r.get('stored_flows'))} | {_f(r.get('store_mb'))} | "
            f"{_f(r.get('stop_s'), 1)} |"
        )
    return "\n".join(out)


def keys_table(k: dict[str, Any], where: str) -> str:
    """Keypress-to-frame rows of ``ui.key_timings``; ``where`` names the window and the load (an open parenthesis)."""
    parts = [
        f"\nKeypress to updated frame in {where}; tmux poll overhead {_f(k.get('poll_ms'), 1)} ms):\n",
        "| action | n | timeouts (10 s) | median ms | p90 ms | max ms | target |\n|---|--:|--:|--:|--:|--:|---|",
    ]
    for r in k["rows"]:
        parts.append(
            f"| {r['action']} | {r['n']} | {r.get('timeouts', 0)} | {_f(r['median_ms'], 1)} | "
            f"{_f(r['p90_ms'], 1)} | {_f(r['max_ms'], 1)} | "
            f"{_ok(r['median_ms'] <= KEY_MAX_MS and not r.get('timeouts')) if r['n'] else 'MISS'} |"
        )
    return "\n".join(parts)


def attach_tables(a: dict[str, Any]) -> str:
    if a.get("pending"):
        return f"pending: {a['pending']}"
    parts = [
        f"A new flow on screen, ms after its response was read (load running: {_f(a.get('load_rps'))} req/s):\n",
        "| window | n | timeouts (10 s) | median ms | mean ms | p90 ms | max ms | target |\n"
        "|---|--:|--:|--:|--:|--:|--:|---|",
    ]
    for name, r in a["new_flow"].items():
        verdict = _ok(r["p90_ms"] is not None and r["p90_ms"] <= NEW_FLOW_MAX_MS and not r["timeouts"])
        parts.append(
            f"| {name} | {r['n']} | {r['timeouts']} | {_f(r['median_ms'])} | {_f(r['mean_ms'])} | {_f(r['p90_ms'])} "
            f"| {_f(r['max_ms'])} | {verdict if name == 'attached' else ''} |"
        )
    for name, k in a["keys"].items():
        parts.append(keys_table(k, f"the {name} window ({a['flows']:,} flows in the list, the same load"))
    return "\n".join(parts)


def ui_tables(ui: dict[str, Any]) -> str:
    parts = []
    if ui.get("filters"):
        f = ui["filters"]
        parts.append(f"Filtering {f['flows']:,} stored flows (median of {f['repeats']} runs, ms):\n")
        parts.append("| filter | path | matches | median ms | max ms | target |\n|---|---|--:|--:|--:|---|")
        for r in f["rows"]:
            verdict = _ok(r["median_ms"] <= FILTER_MAX_MS) if r.get("checked") else ""
            parts.append(
                f"| {r['name']} | {r['path']} | {_f(r['matches'])} | {_f(r['median_ms'], 1)} | "
                f"{_f(r['max_ms'], 1)} | {verdict} |"
            )
    if ui.get("keys"):
        k = ui["keys"]
        where = f"`proxycap tui` ({k['flows']:,} flows in the list, load running: {_f(k.get('load_rps'))} req/s"
        parts.append(keys_table(k, where))
    if ui.get("pending"):
        parts.append(f"\nUI keypress timing pending: {ui['pending']}")
    return "\n".join(parts)


def render(result: dict[str, Any]) -> str:
    m = result.get("machine", {})
    parts = [
        f"proxycap bench — {m.get('cpu', '?')}, {m.get('cpus', '?')} CPUs, {m.get('memory_gb', '?')} GB; "
        f"Python {m.get('python')}, mitmproxy {m.get('mitmproxy')}, textual {m.get('textual')}",
        f"command: {result.get('command')}",
    ]
    if result.get("skipped"):
        parts.append("skipped: " + ", ".join(f"{k} ({v})" for k, v in result["skipped"].items()))
    if "throughput" in result:
        parts += [
            "",
            "## Throughput and latency (medians over rounds; x = ratio to mitmdump)",
            "",
            throughput_table(result["throughput"]["table"]),
        ]
        starts = [r for r in result["throughput"]["table"] if checked(r["proxy"])]
        if starts:
            worst = max(r["start_s"] for r in starts)
            parts.append(
                f"\nstart to listening (proxycap, worst median): {worst:.2f} s — "
                f"{_ok(worst <= START_MAX_S)} (target {START_MAX_S} s)"
            )
    if "memory" in result:
        parts += ["", "## Memory: flows with 64 KB responses (RSS in MB)", "", memory_table(result["memory"])]
    if "ui" in result:
        parts += ["", "## UI", "", ui_tables(result["ui"])]
    if "attach" in result:
        parts += ["", "## Attached windows", "", attach_tables(result["attach"])]
    return "\n".join(parts)


def chart(result: dict[str, Any], path: Path, log: Callable[[str], None]) -> None:
    """Throughput ratios per shape and RSS over flows; skipped (with a note) without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("no matplotlib: chart skipped")
        return
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
    rows = result.get("throughput", {}).get("table", [])
    shapes = list(dict.fromkeys(r["shape"] for r in rows))
    proxies = list(dict.fromkeys(r["proxy"] for r in rows))
    width = 0.8 / max(1, len(proxies))
    for i, proxy in enumerate(proxies):
        vals = [next((r["rps_x"] or 0 for r in rows if r["shape"] == s and r["proxy"] == proxy), 0) for s in shapes]
        axes[0].bar([j + i * width for j in range(len(shapes))], vals, width, label=proxy)
    axes[0].axhline(RPS_MIN_X, color="red", linestyle="--", linewidth=1)
    axes[0].set_xticks([j + 0.4 - width / 2 for j in range(len(shapes))], shapes, rotation=20)
    axes[0].set_ylabel("req/s relative to mitmdump")
    axes[0].legend(fontsize=8)
    for m in result.get("memory", []):
        axes[1].plot(
            [p["flows"] for p in m["points"]], [p["rss_mb"] for p in m["points"]], marker="o", label=m["proxy"]
        )
    axes[1].axhline(RSS_MAX_MB, color="red", linestyle="--", linewidth=1)
    axes[1].set_xlabel("flows (64 KB responses)")
    axes[1].set_ylabel("RSS MB")
    axes[1].set_yscale("log")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    log(f"chart written to {path}")

"""Smoke run of the benchmark harness (bench/): a tiny load through mitmdump and proxycap record, and the filter
timings on a tiny recorded store. Timing targets live in the benchmark, not here: this only checks it works."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(
    shutil.which("mitmdump", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    is None,
    reason="mitmdump is not installed",
)


def test_bench_quick_run(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    cmd = [
        sys.executable,
        "-m",
        "bench",
        "--quick",
        "--scenarios",
        "throughput,filters",
        "--proxies",
        "mitmdump,record",
        "--shapes",
        "http-ka-1k,https-ka-1k",
        "--requests",
        "150",
        "--flows",
        "150",
        "--procs",
        "1",
        "--out",
        str(tmp_path),
        "--json",
        str(out),
    ]
    run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=100)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "| http-ka-1k | record |" in run.stdout
    result = json.loads(out.read_text())

    rows = result["throughput"]["table"]
    assert {(r["shape"], r["proxy"]) for r in rows} == {
        (s, p) for s in ("http-ka-1k", "https-ka-1k") for p in ("mitmdump", "record")
    }
    for r in rows:
        assert r["rps"] > 0 and r["rps_x"] > 0 and r["p99_ms_x"] > 0, r
        assert r["errors"] == 0, r
        assert 0 < r["start_s"] < 30 and r["rss_mb"] > 10 and r["cpu_ms"] > 0, r
    assert all(r["rps_x"] == 1 for r in rows if r["proxy"] == "mitmdump")

    filters = result["ui"]["filters"]
    assert filters["flows"] >= 140  # recorded through proxycap record
    by_path = {r["path"]: r for r in filters["rows"]}
    client_sql = next(r for p, r in by_path.items() if p.startswith("Store.seqs(Query(client_ip))"))
    assert 0 < client_sql["matches"] < filters["flows"]  # 8 client addresses: one of them is a fraction
    assert all(r["median_ms"] >= 0 for r in filters["rows"])


@pytest.mark.skipif(shutil.which("tmux") is None, reason="no tmux: the attached windows run in it")
def test_options_and_attached_windows_run(tmp_path: Path) -> None:
    """``record~rules`` (proxycap with the bench's rules file) and ``watched`` (proxycap web, two attached windows
    and a browser tab where Chromium is installed: the run fails if a window never shows the capture)."""
    out = tmp_path / "result.json"
    cmd = [sys.executable, "-m", "bench", "--quick", "--scenarios", "throughput", "--proxies",
           "record~rules,watched", "--shapes", "http-ka-1k", "--requests", "100", "--procs", "1",
           "--out", str(tmp_path), "--json", str(out)]  # fmt: skip
    run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    rows = json.loads(out.read_text())["throughput"]["table"]
    assert sorted(r["proxy"] for r in rows) == ["record~rules", "watched"]
    assert all(r["rps"] > 0 and r["errors"] == 0 for r in rows), rows


def test_a_variant_runs_its_own_proxycap_even_from_the_checkout(tmp_path: Path) -> None:
    """``record@NAME``: an older commit's ``proxycap/`` in DIR is what runs, although the bench runs from the checkout
    (whose own ``proxycap/`` would come first on ``sys.path`` for a proxy started in it)."""
    variant = tmp_path / "variant"
    shutil.copytree(ROOT / "proxycap", variant / "proxycap", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "addons", variant / "proxycap" / "addons", ignore=shutil.ignore_patterns("__pycache__"))
    with (variant / "proxycap" / "__init__.py").open("a") as f:
        f.write("\nimport pathlib\npathlib.Path(__file__).with_name('imported').touch()\n")
    cmd = [
        sys.executable,
        "-m",
        "bench",
        "--quick",
        "--scenarios",
        "throughput",
        "--proxies",
        "record@v",
        "--variant",
        f"v={variant}",
        "--shapes",
        "http-ka-1k",
        "--requests",
        "50",
        "--procs",
        "1",
        "--out",
        str(tmp_path / "out"),
    ]
    run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=100)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "| http-ka-1k | record@v |" in run.stdout
    assert (variant / "proxycap" / "imported").exists()


def test_probe_reports_the_proxy_process(tmp_path: Path) -> None:
    """``bench.probe``: its samples come from proxycap's own process (engine loop lag, GC, CPU per thread)."""
    cmd = [sys.executable, "-m", "bench.probe", "record", "--seconds", "2", "--gc", "700,10,10", "--out", str(tmp_path)]
    run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=100)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "engine loop lag ms: p50" in run.stdout
    assert "proxycap-engine" in run.stdout  # the engine thread's CPU share
    samples = json.loads((tmp_path / "record-http-ka-1k.json").read_text())
    assert samples["lag"] and samples["cpu"]


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_tmux_control_client_sends_keys_and_reads_the_screen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The keypress timings drive the TUI through one tmux control-mode client: keys in, screen out."""
    monkeypatch.syspath_prepend(str(ROOT))
    from bench.targets import Tmux

    tmux = Tmux(tmp_path)
    try:
        tmux.new("pane", ["cat"], {}, tmp_path)
        control = tmux.control("pane")
        try:
            for text in ("it's a 'quoted' key", "%end 1 2 3"):  # the second looks like the end of a reply
                control.command("send-keys", "-t", "pane", "-l", text)
                control.command("send-keys", "-t", "pane", "Enter")
            deadline = time.monotonic() + 10
            while control.command("capture-pane", "-p", "-t", "pane").count("%end 1 2 3") < 2:  # echoed, then cat's
                assert time.monotonic() < deadline, control.command("capture-pane", "-p", "-t", "pane")
            assert "it's a 'quoted' key" in control.command("capture-pane", "-p", "-t", "pane")
            with pytest.raises(RuntimeError, match="tmux"):
                control.command("no-such-command")
        finally:
            control.close()
    finally:
        tmux.close()

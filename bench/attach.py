"""Windows on a running capture: what they cost the proxy, and how soon and how fast they answer.

``watched`` (a proxy name for the throughput scenario) is ``proxycap web`` with two ``proxycap tui --attach``
windows in tmux and one browser tab (headless Chromium, when installed) following the load. The ``attach`` scenario
times, under load, how long after its response a new flow shows in the in-process TUI and in an attached window,
and the same keypresses as the ``ui`` scenario in both.
"""

from __future__ import annotations

import argparse
import http.client
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import ui
from bench.loadgen import SOURCES
from bench.origin import HOSTS, Origin
from bench.targets import Env, Target, descendants

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
URL = re.compile(r"the inspector: (\S+)")
MARKER = "bench-marker"


class Window:
    """``proxycap tui --attach PORT`` in a tmux session of its own."""

    def __init__(self, env: Env, port: int, tag: str) -> None:
        assert env.tmux is not None
        self.env, self.tag = env, tag
        argv = [sys.executable, "-m", "proxycap", "tui", "--attach", str(port)]
        env.tmux.new(tag, argv, {"PYTHONUNBUFFERED": "1", "TERM": "xterm-256color"}, env.workdir)

    def stop(self) -> None:
        assert self.env.tmux is not None
        self.env.tmux.kill(self.tag)


class Watched(Target):
    """``proxycap web``, two attached terminal windows and a browser tab on its page."""

    def __init__(self, env: Env, store: Path | None = None) -> None:
        super().__init__("web", env, store)
        self.windows: list[Window] = []
        self.browser: subprocess.Popen[bytes] | None = None

    def start(self) -> float:
        start_s = super().start()
        url = _wait(lambda: (m := URL.search(self.output())) and m.group(1), 10, "the page's URL")
        self.windows = [Window(self.env, self.port, f"{self.tag}-w{i}") for i in (1, 2)]
        if CHROMIUM is not None:
            profile = self.env.workdir / f"{self.tag}-chromium"
            args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                    f"--user-data-dir={profile}", "--window-size=1600,1000", url]  # fmt: skip
            self.browser = subprocess.Popen(
                args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
            )
            # The tab is up when the page's TUI runs: textual-serve starts it below the proxy's process.
            _wait(lambda: len(descendants(self.pid)) > 2, 30, "the browser tab's TUI")
        assert self.env.tmux is not None
        tmux = self.env.tmux
        for w in self.windows:
            _wait(lambda w=w: "flows" in tmux.capture(w.tag), 30, f"window {w.tag}")
        return start_s

    def stop(self, timeout: float = 15.0) -> None:
        for w in self.windows:
            w.stop()
        self.windows = []
        if self.browser is not None:
            self.browser.kill()
            self.browser.wait(5)
            self.browser = None
        super().stop(timeout)


def _wait(cond: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := cond():
            return value
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


# --- the attach scenario ------------------------------------------------------------------------------


def show_markers(s: ui.Screen) -> None:
    """Filter the window's list to the marker requests (none yet): "N shown" then counts them."""
    s.key("/")
    time.sleep(0.3)
    s.key(MARKER, "Enter")
    if s.wait(lambda: (s.shown() or (-1, 0))[0] == 0, timeout=10) is None:
        raise RuntimeError(f"the marker filter did not apply in {s.name}: {s.text()[-300:]}")


def new_flow_latency(screens: dict[str, ui.Screen], proxy_port: int, org: Origin, n: int) -> dict[str, Any]:
    """ms from a marker request's response (read whole by the client) until each window counts it."""
    for s in screens.values():
        show_markers(s)
    times: dict[str, list[float]] = {name: [] for name in screens}
    misses = dict.fromkeys(screens, 0)
    for i in range(n):
        conn = http.client.HTTPConnection("127.0.0.1", proxy_port, timeout=10)
        conn.request("GET", f"http://127.0.0.1:{org.port}/size/100?{MARKER}={i}")
        conn.getresponse().read()
        conn.close()
        t0 = time.perf_counter()
        waiting = dict(screens)
        while waiting and time.perf_counter() - t0 < 10:
            for name, s in list(waiting.items()):
                if (s.shown() or (0, 0))[0] > i:
                    times[name].append(ui.ms_since(t0))
                    del waiting[name]
        for name in waiting:
            misses[name] += 1
        time.sleep(0.37)  # not in step with the windows' ticks
    return {
        name: {**ui.summary(ts), "timeouts": misses[name], "mean_ms": statistics.fmean(ts) if ts else None}
        for name, ts in times.items()
    }


def scenario(
    args: argparse.Namespace, env: Env, org: Origin, store: Path | None, log: Callable[[str], None]
) -> dict[str, Any]:
    """The in-process TUI and a window attached to it, on ``store`` (recorded here if None), under load."""
    if env.tmux is None:
        return {"pending": "tmux is not installed"}
    if store is None or not store.exists():
        store = ui.populate(args, env, org, args.flows, HOSTS, SOURCES, log)
    target = Target("tui", env, store=store)
    target.start()
    window = None
    screens: dict[str, ui.Screen] = {}
    gen = None
    try:
        window = Window(env, target.port, f"{target.tag}-attached")
        screens = {"in-process": ui.Screen(env, target.tag), "attached": ui.Screen(env, window.tag)}
        flows = stored_flows(store)
        for name, s in screens.items():
            if s.wait(lambda s=s: (s.shown() or (0, 0))[0] >= flows, timeout=60) is None:
                return {"pending": f"the {name} window did not show {flows} flows: {s.text()[-400:]}"}
        gen = ui.background_load(args, env, org, target.port)
        out: dict[str, Any] = {"flows": flows, "keys": {}}
        for name, s in screens.items():
            log(f"attach: keys in the {name} window")
            out["keys"][name] = ui.key_timings(s, HOSTS, args.ui_keys, log)
        out["new_flow"] = new_flow_latency(screens, target.port, org, args.ui_keys * 2)
        for name, r in out["new_flow"].items():
            log(f"attach: a new flow in the {name} window after {r['median_ms']} ms (median; max {r['max_ms']})")
        res = gen.stop()
        gen = None
        out.update(load_rps=res.rps, load_errors=res.errors)
        return out
    finally:
        for s in screens.values():
            s.close()
        if gen is not None:
            gen.stop()
        if window is not None:
            window.stop()
        target.stop()


def stored_flows(path: Path) -> int:
    from proxycap.storage.store import Store

    store = Store(path, readonly=True)
    try:
        return store.count()
    finally:
        store.close()

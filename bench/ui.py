"""UI scenario: filter timings over a big store, and keypress-to-frame latency of ``proxycap tui`` under load.

The keypress timing drives the real TUI in tmux: a key is sent, then the pane is captured in a tight loop until
the screen shows the expected result (cursor on the next flow, only matching rows, the inspector's body...).
The time includes one tmux round trip (reported as ``poll_ms``), so the figures are upper bounds. Keys and
captures go through one tmux control-mode client, not a tmux process each.
"""

from __future__ import annotations

import argparse
import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.loadgen import SHAPES, SOURCES, LoadGen, LoadSpec
from bench.origin import HOSTS, Origin
from bench.targets import Env, Target

ROW = re.compile(r"^[ ●]\s*(\d+) \d\d:\d\d:\d\d")  # a flow row: mark gutter, "#", time
SHOWN = re.compile(r"([\d,]+) shown / ([\d,]+) flows")
SGR = re.compile(r"\x1b\[([0-9;]*)m")
SEPARATOR = "▕"  # between the clients panel and the flow list
EXPR_CAP_S = 30.0  # a full-flow expression scan is stopped after this long (and reported as at least that)


def ms_since(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000


def summary(xs: list[float]) -> dict[str, Any]:
    if not xs:
        return {"n": 0, "median_ms": None, "p90_ms": None, "max_ms": None}
    xs = sorted(xs)
    return {
        "n": len(xs),
        "median_ms": statistics.median(xs),
        "p90_ms": xs[min(len(xs) - 1, int(len(xs) * 0.9))],
        "max_ms": xs[-1],
    }


# --- filtering the store ---------------------------------------------------------------------------


def filter_timings(store_path: Path, repeats: int = 5) -> dict[str, Any]:
    """How long each way of filtering the stored flows by client IP and by host takes (in this process)."""
    from proxycap.query.views import ViewSpec, load_sql, scan_expr
    from proxycap.storage.store import Query, Store

    store = Store(store_path, readonly=True)
    try:
        total = store.count()
        clients = store.clients()
        client = max(clients, key=lambda c: c.flows).ip if clients else "127.0.0.1"
        hosts = store.distinct("host", Query())
        host = max(hosts, key=lambda h: store.count(Query(host=h))) if hosts else "127.0.0.1"

        def expr(text: str) -> Callable[[], int]:
            def run() -> int:
                found: list[int] = []
                deadline = time.monotonic() + EXPR_CAP_S
                scan_expr(
                    store,
                    ViewSpec(expr=text),
                    0,
                    [],
                    lambda b: found.extend(b.seqs),
                    cancelled=lambda: time.monotonic() > deadline,
                    reset=True,
                )
                return len(found)

            return run

        cases: list[tuple[str, str, Callable[[], int], int, bool]] = [
            (
                f"client {client}",
                "Store.seqs(Query(client_ip)) [SQL, index]",
                lambda: len(store.seqs(Query(client_ip=client))),
                repeats,
                True,
            ),
            (
                f"host {host}",
                "Store.seqs(Query(host)) [SQL, index]",
                lambda: len(store.seqs(Query(host=host))),
                repeats,
                True,
            ),
            (
                f"client {client}",
                "TUI clients panel: load_sql(ViewSpec(client_ip))",
                lambda: len(load_sql(store, ViewSpec(client_ip=client)).seqs),
                repeats,
                True,
            ),
            (
                f"host {host}",
                "TUI filter text (URL substring, SQL scan)",
                lambda: len(load_sql(store, ViewSpec().with_filter(host)).seqs),
                repeats,
                True,
            ),
            (
                f"~src {client}",
                "TUI filter expression (SQL on summaries)",
                expr(f"~src {re.escape(client)}"),
                repeats,
                True,
            ),
            (f"~d {host}", "TUI filter expression (SQL on summaries)", expr(f"~d {re.escape(host)}"), repeats, True),
            (
                f"~d {host} & ~c 200",
                "TUI filter expression (SQL on summaries)",
                expr(f"~d {re.escape(host)} & ~c 200"),
                repeats,
                True,
            ),
            (
                f"~d {host} & ~bs x",
                "TUI filter expression (needs bodies: full-flow scan)",
                expr(f"~d {re.escape(host)} & ~bs x"),
                1,
                False,
            ),
        ]
        rows = []
        for name, path, fn, n, checked in cases:
            times, matches = [], 0
            for _ in range(n):
                t0 = time.perf_counter()
                matches = fn()
                times.append(ms_since(t0))
            capped = times[-1] >= EXPR_CAP_S * 1000
            rows.append(
                {
                    "name": name,
                    "path": path + (" — stopped at the cap" if capped else ""),
                    "matches": matches,
                    "median_ms": statistics.median(times),
                    "max_ms": max(times),
                    "checked": checked,
                }
            )
        return {"flows": total, "repeats": repeats, "rows": rows, "client": client, "host": host}
    finally:
        store.close()


# --- keypress to frame ---------------------------------------------------------------------------------


class Screen:
    """Reads a TUI's pane (the tmux session ``session``) through tmux."""

    def __init__(self, env: Env, session: str) -> None:
        assert env.tmux is not None
        self.name = session
        self.tmux = env.tmux.control(session)

    def close(self) -> None:
        self.tmux.close()

    def text(self) -> str:
        return self.tmux.command("capture-pane", "-p", "-t", self.name)

    def styled(self) -> str:
        return self.tmux.command("capture-pane", "-p", "-e", "-t", self.name)

    def rows(self, screen: str | None = None) -> list[str]:
        """The flow rows on screen (the flow list's part of each line)."""
        lines = (screen if screen is not None else self.text()).splitlines()
        return [part for ln in lines if ROW.match(part := ln.split(SEPARATOR, 1)[-1])]

    def row_backgrounds(self) -> list[tuple[int, str]]:
        """(#, background SGR) of each flow row: the cursor's row is drawn with its own background."""
        out = []
        for ln in self.styled().splitlines():
            bg = ""
            tokens = SGR.split(ln)  # text, code, text, code, ...
            seen_separator = SEPARATOR not in ln
            for i, tok in enumerate(tokens):
                if i % 2:
                    if "48;" in tok:
                        bg = tok[tok.index("48;") :]
                    elif tok in ("", "0"):
                        bg = ""
                    continue
                if not seen_separator:
                    if SEPARATOR not in tok:
                        continue
                    seen_separator, tok = True, tok.split(SEPARATOR, 1)[1]
                if tok.strip():
                    break
            m = ROW.match(SGR.sub("", ln).split(SEPARATOR, 1)[-1])
            if m:
                out.append((int(m.group(1)), bg))
        return out

    def cursor_seq(self) -> int | None:
        """The "#" of the one row whose background differs from the others'."""
        rows = self.row_backgrounds()
        counts: dict[str, int] = {}
        for _, bg in rows:
            counts[bg] = counts.get(bg, 0) + 1
        odd = [seq for seq, bg in rows if counts[bg] == 1]
        return odd[0] if len(rows) > 2 and len(odd) == 1 else None

    def shown(self, screen: str | None = None) -> tuple[int, int] | None:
        m = SHOWN.search(screen if screen is not None else self.text())
        return (int(m.group(1).replace(",", "")), int(m.group(2).replace(",", ""))) if m else None

    def key(self, *keys: str, literal: bool = False) -> None:
        self.tmux.command("send-keys", "-t", self.name, *(["-l"] if literal else []), *keys)

    def wait(self, cond: Callable[[], bool], timeout: float = 10.0) -> float | None:
        """Poll until ``cond()``; returns ms since the call, or None on timeout."""
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < timeout:
            if cond():
                return ms_since(t0)
        return None

    def timed(self, send: Callable[[], None], cond: Callable[[], bool], timeout: float = 10.0) -> float | None:
        """ms from just before ``send()`` until the screen satisfies ``cond``."""
        t0 = time.perf_counter()
        send()
        while time.perf_counter() - t0 < timeout:
            if cond():
                return ms_since(t0)
        return None


def key_timings(s: Screen, hosts: tuple[str, ...], n: int, log: Callable[[str], None]) -> dict[str, Any]:
    results: dict[str, list[float]] = {}
    misses: dict[str, int] = {}

    def record(action: str, ms: float | None) -> None:
        if ms is None:
            misses[action] = misses.get(action, 0) + 1
        else:
            results.setdefault(action, []).append(ms)

    # Poll overhead: one capture round trip.
    poll = []
    for _ in range(10):
        t0 = time.perf_counter()
        s.text()
        poll.append(ms_since(t0))
    # Move selection: go to the top (appends at the bottom do not move it), then step down.
    s.key("g")
    s.wait(lambda: s.cursor_seq() is not None)
    for _ in range(n):
        before = s.cursor_seq()
        record(
            "move selection (down)", s.timed(lambda: s.key("Down"), lambda b=before: s.cursor_seq() not in (None, b))
        )
    # Apply a filter: "/" (wait until the input has the focus), then type a host and press enter in one go;
    # done when every row on screen is that host's.
    for i in range(n):
        host = hosts[i % len(hosts)]

        def only(h: str = host) -> bool:
            rows = s.rows()
            return bool(rows) and all(f" {h} " in r or f" {h}:" in r for r in rows)

        bar = s.styled().split("\n", 1)[0]
        s.key("/")
        if s.wait(lambda b=bar: s.styled().split("\n", 1)[0] != b, timeout=5) is None:
            record("apply filter (host text)", None)
            s.key("Escape")
            continue
        record("apply filter (host text)", s.timed(lambda h=host: s.key(h, "Enter", literal=False), only))
        # Clear it: enter gave the keyboard back to the list (its keys show in the key bar), where escape clears
        # the filter; done when other hosts show.
        s.wait(lambda: "Inspect" in s.text().rstrip().rsplit("\n", 1)[-1], timeout=5)
        record("clear filter", s.timed(lambda: s.key("Escape"), lambda h=host: not only(h)))
    # Open the inspector on the selected flow: done when its body is on screen; escape closes it. From the top,
    # where the flows have the store's 64 KB JSON bodies (the load's own flows at the end have 1 KB ones).
    s.key("g")
    s.wait(lambda: s.cursor_seq() == 1)
    for _ in range(n):
        record("open inspector", s.timed(lambda: s.key("Enter"), lambda: '"user"' in s.text()))
        record("close inspector", s.timed(lambda: s.key("Escape"), lambda: '"user"' not in s.text()))
        s.key("Down")
    rows = [
        {"action": a, **summary(results.get(a, [])), "timeouts": misses.get(a, 0)}
        for a in (
            "move selection (down)",
            "apply filter (host text)",
            "clear filter",
            "open inspector",
            "close inspector",
        )
    ]
    for r in rows:
        log(f"ui: {r['action']}: median {r['median_ms']} ms over {r['n']} (timeouts {r['timeouts']})")
    return {"rows": rows, "poll_ms": statistics.median(poll)}


def populate(
    args: argparse.Namespace,
    env: Env,
    org: Origin,
    n: int,
    hosts: tuple[str, ...],
    sources: tuple[str, ...],
    log: Callable[[str], None],
) -> Path:
    """A store with ``n`` flows recorded through ``proxycap record`` (1 KB responses, 8 clients x 8 hosts)."""
    target = Target("record", env, store=env.workdir / "ui.db")
    target.remove_store()
    target.start()
    try:
        spec = LoadSpec(
            target.port,
            org.port,
            org.tls_port,
            SHAPES["http-ka-1k"],
            duration=max(60.0, n / 20),
            warmup=0,
            procs=args.procs,
            conns=args.conns,
            hosts=hosts,
            sources=sources,
            max_requests=n,
            rotate_every=50,
            proxy_ca=str(env.proxy_ca),
        )
        res = LoadGen(spec).start().wait()
        log(f"ui: populated {res.requests:,} flows at {res.rps:.0f}/s")
    finally:
        target.stop()
    return target.store


def background_load(args: argparse.Namespace, env: Env, org: Origin, port: int) -> LoadGen:
    """Keep-alive load from the 8 clients to the 8 hosts through the proxy on ``port``, running (until stopped)."""
    spec = LoadSpec(
        port,
        org.port,
        org.tls_port,
        SHAPES["http-ka-1k"],
        duration=600,
        warmup=0.5,
        procs=args.procs,
        conns=args.conns,
        hosts=HOSTS,
        sources=SOURCES,
        rotate_every=50,
        proxy_ca=str(env.proxy_ca),
    )
    gen = LoadGen(spec).start()
    time.sleep(2.0)
    return gen


def scenario(
    args: argparse.Namespace, env: Env, org: Origin, store: Path | None, log: Callable[[str], None], keys: bool = True
) -> dict[str, Any]:
    """Filter timings on ``store`` (recorded here through ``proxycap record`` if None); then, with ``keys``,
    keypress-to-frame timings in ``proxycap tui`` on that store with load running."""
    out: dict[str, Any] = {}
    try:
        import proxycap.tui.app  # noqa: F401
    except ImportError as e:
        return {"pending": f"proxycap.tui is not importable ({e})"}
    if store is None or not store.exists():
        store = populate(args, env, org, args.flows, HOSTS, SOURCES, log)
    out["store"] = str(store)
    out["filters"] = filter_timings(store, repeats=3 if args.quick else 7)
    for r in out["filters"]["rows"]:
        log(f"ui: filter {r['name']} via {r['path']}: {r['median_ms']:.1f} ms ({r['matches']:,} matches)")
    if not keys:
        return out
    if env.tmux is None:
        out["pending"] = "tmux is not installed: keypress timing skipped"
        return out
    target = Target("tui", env, store=store)
    target.start()
    gen = None
    s = None
    try:
        s = Screen(env, target.tag)
        flows = out["filters"]["flows"]
        if s.wait(lambda: (s.shown() or (0, 0))[0] >= flows, timeout=60) is None:
            out["pending"] = f"the TUI did not show {flows} flows: {s.text()[-400:]}"
            return out
        gen = background_load(args, env, org, target.port)
        keys = key_timings(s, HOSTS, args.ui_keys, log)
        res = gen.stop()
        gen = None
        keys.update(flows=flows, load_rps=res.rps, load_errors=res.errors)
        out["keys"] = keys
    finally:
        if s is not None:
            s.close()
        if gen is not None:
            gen.stop()
        target.stop()
    return out

"""Profile one proxy under one load shape with py-spy (if installed): ``python -m bench.profile record``.

Writes py-spy's collapsed stacks and prints the hottest functions (self and inclusive time, per thread), so a
missed target can be traced to code. Not needed by the benchmark itself.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from bench.loadgen import SHAPES, LoadGen, LoadSpec
from bench.origin import start_origin
from bench.targets import ALL_PROXIES, ROOT, Env, Target, Tmux, ensure_ca


def top(collapsed: Path, n: int = 25) -> str:
    """Self and inclusive sample counts per function from py-spy's ``raw`` (collapsed) output."""
    self_c: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    threads: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        c = int(count)
        total += c
        frames = stack.split(";")
        threads[frames[0]] += c
        self_c[frames[-1]] += c
        for f in set(frames[1:]):
            incl[f] += c
    out = [f"{total} samples", "threads:"]
    out += [f"  {100 * c / total:5.1f}%  {t}" for t, c in threads.most_common(8)]
    out.append("self:")
    out += [f"  {100 * c / total:5.1f}%  {f}" for f, c in self_c.most_common(n)]
    out.append("inclusive:")
    out += [f"  {100 * c / total:5.1f}%  {f}" for f, c in incl.most_common(n)]
    return "\n".join(out)


@contextlib.contextmanager
def under_load(
    proxy: str,
    shape: str,
    seconds: float,
    out: Path,
    variants: dict[str, Path] | None = None,
    extra_env: dict[str, str] | None = None,
) -> Iterator[tuple[Target, LoadGen]]:
    """An origin and ``proxy`` started, ``shape`` load running through it for ``seconds`` after 1.5 s of warmup
    and start-up; inside the block, measure, then ``wait()`` for the load's result."""
    out = out.resolve()  # proxies start in it
    out.mkdir(parents=True, exist_ok=True)
    tmux = Tmux(out) if proxy.partition("@")[0] in ("tui", "mitmconsole") else None
    env = Env(out, out / "confdir", Path(), tmux=tmux, variants=variants or {}, extra_env=extra_env or {})
    ensure_ca(env.confdir)
    try:
        with start_origin(out) as org:
            env.origin_ca = org.ca
            target = Target(proxy, env)
            target.start()
            try:
                spec = LoadSpec(
                    target.port,
                    org.port,
                    org.tls_port,
                    SHAPES[shape],
                    duration=seconds + 2,
                    warmup=1.0,
                    proxy_ca=str(env.proxy_ca),
                )
                gen = LoadGen(spec).start()
                time.sleep(1.5)
                yield target, gen
            finally:
                target.stop()
                target.remove_store()
    finally:
        if tmux is not None:
            tmux.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    p.add_argument("proxy", choices=ALL_PROXIES)
    p.add_argument("--shape", default="http-ka-1k", choices=list(SHAPES))
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "profile")
    args = p.parse_args(argv)
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(pyspy).exists():
        print("py-spy is not installed (pip install py-spy)", file=sys.stderr)
        return 2
    raw = args.out / f"{args.proxy}-{args.shape}.txt"
    with under_load(args.proxy, args.shape, args.seconds, args.out) as (target, gen):
        subprocess.run(
            [
                pyspy,
                "record",
                "-p",
                str(target.pid),
                "-d",
                str(int(args.seconds)),
                "-r",
                str(args.rate),
                "--threads",
                "-f",
                "raw",
                "-o",
                str(raw),
                "--nonblocking",
            ],
            check=True,
            capture_output=True,
        )
        res = gen.wait()
    print(f"{args.proxy} {args.shape}: {res.rps:.0f} req/s while profiled; stacks in {raw}")
    print(top(raw))
    return 0


if __name__ == "__main__":
    sys.exit(main())

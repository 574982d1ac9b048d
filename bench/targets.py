"""The proxies under test: how each is started, when it listens, how much memory it holds, how it is stopped.

``mitmdump``, ``record``, ``web`` and ``mitmweb`` run as plain child processes; ``tui`` (proxycap's Textual UI)
and ``mitmconsole`` need a terminal and run in a detached tmux session on a private tmux socket, rendering into
tmux's virtual screen like they would for a user. All listen on 127.0.0.1 and trust the bench origin's CA.

A proxycap name may carry a variant (``record@NAME``: proxycap from another folder) and options (``record~noproc``:
the arguments ``OPTIONS["noproc"]`` appended), so that a change or a setting is measured in the same alternating run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the checkout
ALL_PROXIES = ("mitmdump", "record", "tui", "mitmweb", "mitmconsole")
PROXYCAP = ("record", "tui", "web")  # what variants and options apply to; "web" is not in the default run
WATCHED = "watched"  # proxycap web with attached windows and a browser tab (bench/attach.py)
# ``NAME~OPTION``: these arguments appended to proxycap's.
OPTIONS = {
    "noproc": ("--set", "proxycap_processes=false"),  # no lookup of the program behind each local connection
    "rules": ("--rules", str(ROOT / "bench" / "data" / "rules.toml")),  # an everyday rule set, one rule matching
}
TERMINAL = (200, 50)  # columns, rows of the terminal the console UIs render into
START_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port: int, timeout: float, alive: callable = lambda: True) -> float:  # type: ignore[valid-type]
    """Seconds until a TCP connect to 127.0.0.1:port succeeds; raises TimeoutError."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return time.monotonic() - t0
        if not alive():
            raise RuntimeError("the process exited before it listened")
        time.sleep(0.01)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s")


# --- memory ---------------------------------------------------------------------------------------


def _status_kb(pid: int, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except OSError:
            continue
    return out


_TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """CPU time (user + system) used so far by a process tree, in seconds."""
    total = 0
    for p in descendants(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, ValueError, IndexError):
            continue
    return total / _TICK


def rss_mb(pid: int) -> float:
    """Resident memory of a process tree (MB)."""
    return sum(_status_kb(p, "VmRSS") for p in descendants(pid)) / 1024


def hwm_mb(pid: int) -> float:
    """Peak resident memory (VmHWM) of a process tree, summed over its processes (MB)."""
    return sum(_status_kb(p, "VmHWM") for p in descendants(pid)) / 1024


def _ticks(pid: int) -> tuple[int, int]:
    """(CPU ticks of ``pid`` itself and the children it waited for, its scheduling policy); (0, -1) if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
        return sum(int(x) for x in fields[11:15]), int(fields[38])  # utime stime cutime cstime, policy
    except (OSError, ValueError, IndexError):
        return 0, -1


SCHED_IDLE = 5


class OtherCpu:
    """How busy the rest of the machine kept the cores meanwhile (``cores``): all busy time, less this benchmark's
    processes (the trees below ``roots()``, with the children they waited for) and idle-class processes (they run
    only on cores nothing else wants). A figure over ~0.1 says that a sample shared the machine."""

    def __init__(self, roots: Callable[[], list[int]]) -> None:
        self.roots = roots
        self.cores = float("nan")

    def _now(self) -> tuple[float, int, int]:
        with open("/proc/stat") as f:
            user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in f.readline().split()[1:9])
        ours = {p for root in self.roots() for p in descendants(root)}
        mine = idle = 0
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                ticks, policy = _ticks(int(entry))
                if int(entry) in ours:
                    mine += ticks
                elif policy == SCHED_IDLE:
                    idle += ticks
        return time.monotonic(), user + nice + system + irq + softirq + steal, mine + idle

    def __enter__(self) -> OtherCpu:
        self._start = self._now()
        return self

    def __exit__(self, *_: object) -> None:
        t1, busy1, known1 = self._now()
        t0, busy0, known0 = self._start
        self.cores = max(0.0, (busy1 - busy0) - (known1 - known0)) / _TICK / max(1e-3, t1 - t0)


class RssSampler:
    """Samples a process tree's RSS on a thread; ``peak`` is the largest sample."""

    def __init__(self, pid: int, interval: float = 0.25) -> None:
        self.pid, self.interval = pid, interval
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            self.peak = max(self.peak, rss_mb(self.pid))
            if self._stop.wait(self.interval):
                return


# --- tmux ---------------------------------------------------------------------------------------


class Tmux:
    """A private tmux server (its own socket, no user config) for the terminal UIs."""

    def __init__(self, workdir: Path) -> None:
        exe = shutil.which("tmux")
        if exe is None:
            raise RuntimeError("tmux is not installed")
        self.exe = exe
        self.socket = f"proxycap-bench-{os.getpid()}"
        conf = workdir / "tmux.conf"
        conf.write_text("set -g exit-empty off\nset -g status off\nset -g remain-on-exit on\nset -g history-limit 0\n")
        self.run("-f", str(conf), "start-server")

    def run(self, *args: str, check: bool = True) -> str:
        r = subprocess.run([self.exe, "-L", self.socket, *args], capture_output=True, text=True, timeout=10)
        if check and r.returncode != 0:
            raise RuntimeError(f"tmux {' '.join(args[:2])}: {r.stderr.strip()}")
        return r.stdout

    def new(self, name: str, argv: list[str], env: dict[str, str], cwd: Path) -> int:
        """Start ``argv`` directly (no shell) in a new session; returns the pane's PID."""
        envs = [a for k, v in env.items() for a in ("-e", f"{k}={v}")]
        w, h = TERMINAL
        self.run("new-session", "-d", "-s", name, "-x", str(w), "-y", str(h), "-c", str(cwd), *envs, "--", *argv)
        return int(self.run("list-panes", "-t", name, "-F", "#{pane_pid}").split()[0])

    def capture(self, name: str, escapes: bool = False) -> str:
        return self.run("capture-pane", "-p", *(["-e"] if escapes else []), "-t", name, check=False)

    def keys(self, name: str, *keys: str, literal: bool = False) -> None:
        self.run("send-keys", "-t", name, *(["-l"] if literal else []), *keys)

    def kill(self, name: str) -> None:
        self.run("kill-session", "-t", name, check=False)

    def control(self, name: str) -> TmuxControl:
        return TmuxControl(self, name)

    @property
    def pid(self) -> int:
        """The tmux server's PID (the terminal UIs run below it)."""
        return int(self.run("display-message", "-p", "#{pid}").strip() or 0)

    def close(self) -> None:
        self.run("kill-server", check=False)


class TmuxControl:
    """A control-mode client (``tmux -C``) on one session: each command is a line on a pipe, not a new tmux
    process. A capture then costs ~0.1 ms instead of a fork and exec (5-20 ms on a loaded 2-core machine), which
    the keypress timings would otherwise count as the UI's latency."""

    def __init__(self, tmux: Tmux, name: str) -> None:
        argv = [tmux.exe, "-L", tmux.socket, "-C", "attach-session", "-f", "no-output,ignore-size", "-t", name]
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, encoding="utf-8", errors="replace"
        )
        self._reply()  # to the attach itself

    def command(self, *args: str) -> str:
        assert self.proc.stdin is not None
        self.proc.stdin.write(" ".join(shlex.quote(a) for a in args) + "\n")
        self.proc.stdin.flush()
        return "\n".join(self._reply())

    def _reply(self) -> list[str]:
        assert self.proc.stdout is not None
        lines: list[str] = []
        block: list[str] | None = None  # "%begin TIME NUMBER FLAGS": the reply ends with the same three fields
        while line := self.proc.stdout.readline():
            words = line.split()
            if block is None:
                if words[:1] == ["%begin"]:
                    block, lines = words[1:], []
            elif words[:1] in (["%end"], ["%error"]) and words[1:] == block:
                if words[0] == "%error":
                    raise RuntimeError(f"tmux: {' '.join(lines)}")
                return lines
            else:
                lines.append(line.rstrip("\n"))
        raise RuntimeError("the tmux control client exited")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        if self.proc.returncode is None:
            self.proc.kill()


# --- proxies ------------------------------------------------------------------------------------


@dataclasses.dataclass
class Env:
    """What every proxy start shares: binaries, the CA folder, the origin's CA, a work folder, tmux."""

    workdir: Path
    confdir: Path
    origin_ca: Path
    bindir: Path = dataclasses.field(default_factory=lambda: Path(sys.executable).parent)
    tmux: Tmux | None = None
    counter: int = 0
    # "record@NAME" / "tui@NAME" run proxycap with variants[NAME] first on PYTHONPATH: A/B a proposed patch.
    variants: dict[str, Path] = dataclasses.field(default_factory=dict)
    extra_env: dict[str, str] = dataclasses.field(default_factory=dict)  # for every proxy started
    _tmux_pid: int | None = None

    @property
    def proxy_ca(self) -> Path:
        return self.confdir / "mitmproxy-ca-cert.pem"

    def roots(self) -> list[int]:
        """The processes whose trees are this benchmark's: itself, and the tmux server the terminal UIs run below."""
        if self._tmux_pid is None:
            self._tmux_pid = self.tmux.pid if self.tmux is not None else 0
        return [os.getpid(), *([self._tmux_pid] if self._tmux_pid else [])]

    def tool(self, name: str) -> str | None:
        local = self.bindir / name
        return str(local) if local.exists() else shutil.which(name)

    def available(self, name: str) -> tuple[bool, str]:
        proxy, variant, options = parse_name(name)
        if proxy == WATCHED:
            return (False, "tmux not installed") if self.tmux is None else (True, "")
        if proxy not in (*ALL_PROXIES, "web"):
            return False, "unknown proxy"
        if variant and (proxy not in PROXYCAP or variant not in self.variants):
            return False, f"no --variant {variant}=DIR (variants apply to {', '.join(PROXYCAP)})"
        if options and proxy not in PROXYCAP:
            return False, f"options apply to {', '.join(PROXYCAP)}"
        if unknown := [o for o in options if o not in OPTIONS]:
            return False, f"unknown option {unknown[0]!r} (choose from {', '.join(OPTIONS)})"
        needs_tty = proxy in ("tui", "mitmconsole")
        if needs_tty and self.tmux is None:
            return False, "tmux not installed"
        tool = {"mitmdump": "mitmdump", "mitmweb": "mitmweb", "mitmconsole": "mitmproxy"}.get(proxy)
        if tool and self.tool(tool) is None:
            return False, f"{tool} not found"
        if proxy == "mitmconsole":
            try:
                import urwid  # noqa: F401
            except ImportError:
                return False, "mitmproxy console needs urwid"
        return True, ""


def parse_name(name: str) -> tuple[str, str, list[str]]:
    """``record@v~noproc`` -> ("record", "v", ["noproc"])."""
    head, *options = name.split("~")
    proxy, _, variant = head.partition("@")
    return proxy, variant, options


def ensure_ca(confdir: Path) -> Path:
    """Create mitmproxy's CA once, so no proxy start pays for RSA key generation."""
    from mitmproxy.certs import CertStore

    confdir.mkdir(parents=True, exist_ok=True)
    CertStore.from_store(str(confdir), "mitmproxy", 2048)
    return confdir / "mitmproxy-ca-cert.pem"


class Target:
    """One start of one proxy."""

    def __init__(self, name: str, env: Env, store: Path | None = None) -> None:
        base, self.variant, self.options = parse_name(name)
        if base not in (*ALL_PROXIES, "web"):
            raise ValueError(f"unknown proxy {name!r} (choose from {', '.join(ALL_PROXIES)}, web)")
        self.name, self.env = base, env
        env.counter += 1
        self.tag = "-".join([base, *([self.variant] if self.variant else []), *self.options, str(env.counter)])
        self.port = free_port()
        self.store = (store or env.workdir / f"{self.tag}.db").resolve()
        self.proc: subprocess.Popen[bytes] | None = None
        self.pid = 0
        self.start_s = float("nan")
        self._log = None

    def argv(self) -> list[str]:
        e, port = self.env, str(self.port)
        mitm = [
            "--listen-host",
            "127.0.0.1",
            "-p",
            port,
            "--set",
            f"confdir={e.confdir}",
            "--set",
            f"ssl_verify_upstream_trusted_ca={e.origin_ca}",
        ]
        proxycap = [sys.executable, "-m", "proxycap"]
        pc = [
            "-p",
            port,
            "--store",
            str(self.store),
            "--confdir",
            str(e.confdir),
            "--set",
            f"ssl_verify_upstream_trusted_ca={e.origin_ca}",
            "--log-file",
            str(e.workdir / f"{self.tag}.log"),
            "--allow",  # the loads come from loopback aliases (127.0.2.x), each a device of its own
            "127.0.0.0/8",
            *(arg for o in self.options for arg in OPTIONS[o]),
        ]
        return {
            "mitmdump": lambda: [e.tool("mitmdump"), "-q", *mitm],
            "record": lambda: [*proxycap, "record", "-q", *pc],
            "tui": lambda: [*proxycap, "tui", *pc],
            "web": lambda: [*proxycap, "web", "--web-port", str(free_port()), *pc],
            "mitmweb": lambda: [
                e.tool("mitmweb"),
                "-q",
                "--set",
                "web_open_browser=false",
                "--web-host",
                "127.0.0.1",
                "--web-port",
                str(free_port()),
                *mitm,
            ],
            "mitmconsole": lambda: [e.tool("mitmproxy"), *mitm],
        }[self.name]()

    @property
    def in_tmux(self) -> bool:
        return self.name in ("tui", "mitmconsole")

    def alive(self) -> bool:
        if self.proc is not None:
            return self.proc.poll() is None
        try:
            os.kill(self.pid, 0)
        except OSError:
            return False
        return _status_kb(self.pid, "VmRSS") > 0  # a zombie has none

    def start(self) -> float:
        """Start and wait until it listens; returns (and keeps) the seconds from spawn to listening."""
        argv = self.argv()
        env = {"PYTHONUNBUFFERED": "1", **self.env.extra_env}
        if self.variant:
            # Started in the run's folder, not the checkout: ``-m`` puts the working directory ahead of PYTHONPATH,
            # and the checkout's proxycap/ would shadow the variant's.
            env["PYTHONPATH"] = os.pathsep.join(
                p for p in (str(self.env.variants[self.variant]), str(ROOT), os.environ.get("PYTHONPATH", "")) if p
            )
        t0 = time.monotonic()
        if self.in_tmux:
            assert self.env.tmux is not None
            self.pid = self.env.tmux.new(self.tag, argv, {**env, "TERM": "xterm-256color"}, self.env.workdir)
        else:
            self._log = open(self.env.workdir / f"{self.tag}.out", "wb")  # noqa: SIM115 - closed in stop()
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **env},
                cwd=self.env.workdir,
                start_new_session=True,
            )
            self.pid = self.proc.pid
        try:
            wait_listening(self.port, START_TIMEOUT, self.alive)
        except (TimeoutError, RuntimeError) as e:
            detail = self.output()[-800:]
            self.stop()
            raise RuntimeError(f"{self.name} did not start: {e}\n{detail}") from None
        self.start_s = time.monotonic() - t0
        return self.start_s

    def output(self) -> str:
        if self.in_tmux and self.env.tmux is not None:
            return self.env.tmux.capture(self.tag)
        with contextlib.suppress(OSError):
            return (self.env.workdir / f"{self.tag}.out").read_text(errors="replace")
        return ""

    def rss(self) -> float:
        return rss_mb(self.pid) if self.pid else 0.0

    def cpu(self) -> float:
        return cpu_s(self.pid) if self.pid else 0.0

    def hwm(self) -> float:
        return hwm_mb(self.pid) if self.pid else 0.0

    def stop(self, timeout: float = 15.0) -> None:
        """Ask politely (SIGTERM, or ctrl-c in its terminal), then insist."""
        if not self.pid:
            return
        if self.in_tmux and self.env.tmux is not None:
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self.env.tmux.keys(self.tag, "C-c")
                if self.name == "mitmconsole":
                    time.sleep(0.3)
                    self.env.tmux.keys(self.tag, "y")
        else:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
        for sig in (None, signal.SIGTERM, signal.SIGKILL):
            if sig is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, sig)
            deadline = time.monotonic() + (timeout if sig is None else 5)
            while self.alive() and time.monotonic() < deadline:
                if self.proc is not None:
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        self.proc.wait(0.05)
                else:
                    time.sleep(0.05)
            if not self.alive():
                break
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(5)
        if self.in_tmux and self.env.tmux is not None:
            self.env.tmux.kill(self.tag)
        if self._log is not None:
            self._log.close()
            self._log = None
        self.pid = 0

    def remove_store(self) -> None:
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(OSError):
                os.unlink(f"{self.store}{suffix}")

"""What the commands share: the user-error exception, the store and proxy options, and their checks."""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

from mitmproxy.utils import human

from proxycap.capture.engine import DEFAULT_CONFDIR, DEFAULT_MAX_BODY, EngineConfig
from proxycap.capture.summary import is_ip
from proxycap.paths import default_log_file, default_rules, default_store, settings_file
from proxycap.rules import profiles


class UserError(Exception):
    """Ends the command with its message on one line and exit status 2."""


def add_store(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", type=Path, default=None, help=f"the capture store (default: {default_store()})")


def add_proxy_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("proxy")
    g.add_argument("-p", "--listen-port", type=int, default=8080, help="port to listen on (default 8080, 0: any)")
    g.add_argument("--listen-host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    g.add_argument(
        "--mode",
        "-m",
        action="append",
        default=None,
        help="mitmproxy proxy mode: regular (default), upstream:URL, reverse:URL, socks5, transparent; repeatable",
    )
    g.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set any mitmproxy option (e.g. --set ssl_insecure=true); repeatable",
    )
    g.add_argument(
        "-s", "--scripts", action="append", default=[], metavar="SCRIPT", help="extra mitmproxy addon script"
    )
    g.add_argument(
        "--confdir",
        default=DEFAULT_CONFDIR,
        help=f"CA and mitmproxy config folder (default {DEFAULT_CONFDIR})",
    )
    g.add_argument(
        "--allow",
        action="append",
        default=[],
        metavar="NETWORK",
        help="also allow clients from this network/address besides loopback (e.g. 192.168.1.0/24, any)",
    )
    g.add_argument(
        "--proxyauth",
        metavar="USER:PASS",
        help="require these proxy credentials (407 without them); also 'any', or @FILE for an htpasswd file",
    )
    g.add_argument(
        "--max-body",
        default=DEFAULT_MAX_BODY,
        metavar="SIZE",
        help=f"stream (don't capture) bodies larger than this (default {DEFAULT_MAX_BODY})",
    )
    add_store(p)
    p.add_argument("--log-file", type=Path, default=None, help=f"log file (default: {default_log_file()})")


def add_traffic_options(p: argparse.ArgumentParser, breakpoints: bool = False) -> None:
    """Rules and throttling (``tui`` and ``record``), breakpoints (``tui``, where they can be resumed)."""
    g = p.add_argument_group("changing traffic")
    if breakpoints:
        g.add_argument(
            "--break",
            dest="breaks",
            action="append",
            default=[],
            metavar="EXPR",
            help="stop requests matching this filter expression before they go upstream; repeatable",
        )
        g.add_argument(
            "--break-response",
            dest="break_responses",
            action="append",
            default=[],
            metavar="EXPR",
            help="stop responses matching this filter expression before they reach the client; repeatable",
        )
    g.add_argument("--rules", type=Path, default=None, metavar="FILE", help=f"rules file (default {default_rules()})")
    g.add_argument(
        "--throttle",
        default="",
        metavar="KBPS",
        help='throttle all traffic: KB/s, DOWN/UP in KB/s, or a preset ("3G", "slow 3G", "offline")',
    )
    g.add_argument("--latency", type=int, default=0, metavar="MS", help="add this many ms to each request")


def client_ip(text: str | None) -> str | None:
    """``--client``, checked: a typo would otherwise show an empty list and no reason."""
    if text is not None and not is_ip(text):
        raise UserError(f"--client {text}: not an IP address (such as 192.168.1.20)")
    return text


def checked_size(option: str, text: str) -> str:
    """A size option, checked here: mitmproxy's error names its own option, not ours."""
    try:
        human.parse_size(text)
    except ValueError:
        raise UserError(f"{option} {text}: not a size (such as 4m, 512k or 1g)") from None
    return text


def checked_throttle(args: argparse.Namespace) -> tuple[str, int]:
    """``--throttle`` and ``--latency``, checked here so that a typo ends the command with the reason."""
    throttle, latency = getattr(args, "throttle", ""), getattr(args, "latency", 0)
    if throttle:
        try:
            profiles.parse(throttle)
        except ValueError as e:
            raise UserError(f"--throttle: {e}") from None
    if latency < 0:
        raise UserError(f"--latency {latency}: must not be negative")
    return throttle, latency


def engine_config(args: argparse.Namespace) -> EngineConfig:
    throttle, latency = checked_throttle(args)
    rules = getattr(args, "rules", None) or default_rules()
    return EngineConfig(
        listen_host=args.listen_host,
        listen_port=args.listen_port,
        modes=args.mode or ["regular"],
        confdir=args.confdir,
        sets=args.sets,
        scripts=args.scripts,
        allow=args.allow,
        max_body=checked_size("--max-body", args.max_body),
        breaks=getattr(args, "breaks", []),
        break_responses=getattr(args, "break_responses", []),
        rules=str(rules),
        throttle=throttle,
        latency=latency,
        proxyauth=args.proxyauth,
        settings=str(settings_file()),
    )


def on_signal() -> threading.Event:
    """An event set by Ctrl-C or SIGTERM from now on (rather than dying of it halfway through starting)."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def wait_for(stop: threading.Event) -> None:
    """Block the main thread until ``stop`` is set (waking now and then, so signal handlers run)."""
    while not stop.wait(0.2):
        pass

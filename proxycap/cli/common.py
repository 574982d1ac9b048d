"""What the commands share: the user-error exception, the store and proxy options, and their checks."""

from __future__ import annotations

import argparse
import ipaddress
import signal
import threading
from pathlib import Path

from mitmproxy.utils import human

from proxycap.capture.engine import DEFAULT_CONFDIR, DEFAULT_MAX_BODY, EngineConfig
from proxycap.paths import default_log_file, default_store, settings_file


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


def client_ip(text: str | None) -> str | None:
    """``--client``, checked: a typo would otherwise show an empty list and no reason."""
    if text is not None:
        try:
            ipaddress.ip_address(text)
        except ValueError:
            raise UserError(f"--client {text}: not an IP address (such as 192.168.1.20)") from None
    return text


def checked_size(option: str, text: str) -> str:
    """A size option, checked here: mitmproxy's error names its own option, not ours."""
    try:
        human.parse_size(text)
    except ValueError:
        raise UserError(f"{option} {text}: not a size (such as 4m, 512k or 1g)") from None
    return text


def engine_config(args: argparse.Namespace) -> EngineConfig:
    return EngineConfig(
        listen_host=args.listen_host,
        listen_port=args.listen_port,
        modes=args.mode or ["regular"],
        confdir=args.confdir,
        sets=args.sets,
        scripts=args.scripts,
        allow=args.allow,
        max_body=checked_size("--max-body", args.max_body),
        proxyauth=args.proxyauth,
        settings=str(settings_file()),
    )


def wait_for_signal() -> None:
    """Block the main thread until Ctrl-C or SIGTERM."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(0.2):
        pass

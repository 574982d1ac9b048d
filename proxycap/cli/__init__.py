"""The ``proxycap`` command line. Proxy options follow mitmproxy's spelling (-p, --listen-host, --mode, --set, -s)."""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from mitmproxy.utils import human

from proxycap import __version__
from proxycap.capture.ca import CAError, ensure_ca, export, trust_steps
from proxycap.capture.engine import DEFAULT_CONFDIR, DEFAULT_MAX_BODY, EngineConfig, EngineError
from proxycap.paths import default_log_file, default_store, filter_history
from proxycap.runtime import gcsettle
from proxycap.storage.store import Store, StoreError

# Textual's settings that `proxycap tui` changes, unless the environment says (read once, when Textual is imported):
TEXTUAL_ENV = {
    # How long a lone Esc waits for the rest of an escape sequence (ms; ncurses' name). Textual's 100 ms is caution
    # for slow serial lines; a terminal writes a whole sequence at once, even over SSH (vim's users and newsbeuter
    # settle on 25).
    "ESCDELAY": "25",
    # Frames a second at most. After a late frame Textual's frame timer waits for the slot after next, so a key whose
    # result takes two frames (clearing the filter: the field, then the list) waited 16-33 ms for the second at 60.
    # Frames are drawn only when something changed, and live updates are paced by the UI's CPU time.
    "TEXTUAL_FPS": "120",
}

EXAMPLES = """\
examples:
  proxycap tui                          inspect live traffic (proxy on 127.0.0.1:8080)
  proxycap record -p 9090               headless recording proxy on port 9090
  proxycap flows --client 127.0.0.2 --filter '~d example.com & ~c 500'
  proxycap ca                           where the CA is and how to trust it
"""


class UserError(Exception):
    """Ends the command with its message on one line and exit status 2."""


def _add_store(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", type=Path, default=None, help=f"the capture store (default: {default_store()})")


def _add_proxy_options(p: argparse.ArgumentParser) -> None:
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
        "--max-body",
        default=DEFAULT_MAX_BODY,
        metavar="SIZE",
        help=f"stream (don't capture) bodies larger than this (default {DEFAULT_MAX_BODY})",
    )
    _add_store(p)
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
    )


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="proxycap",
        description="A Fiddler-style HTTP(S) debugging proxy with a terminal UI.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    top.add_argument("--version", action="version", version=f"proxycap {__version__}")
    sub = top.add_subparsers(dest="command", metavar="COMMAND", required=True)

    tui = sub.add_parser("tui", help="run the proxy with the live traffic inspector")
    _add_proxy_options(tui)
    tui.add_argument("--client", metavar="IP", help="start focused on this client IP")
    tui.add_argument("--open", type=Path, metavar="STORE", help="browse an earlier capture read-only (no proxy)")
    tui.set_defaults(run=cmd_tui)

    rec = sub.add_parser("record", help="run a headless recording proxy")
    _add_proxy_options(rec)
    rec.add_argument("-q", "--quiet", action="store_true", help="don't print a line per flow")
    rec.set_defaults(run=cmd_record)

    flows = sub.add_parser(
        "flows", help="list stored flows", epilog="filter expressions: mitmproxy's syntax, see --help-filters"
    )
    _add_store(flows)
    flows.add_argument(
        "--filter", "-f", metavar="EXPR", help="mitmproxy filter expression, e.g. '~d example.com & ~c 500'"
    )
    flows.add_argument("--client", metavar="IP", help="only this client IP (exact match)")
    flows.add_argument("--json", action="store_true", help="one JSON object per line")
    flows.add_argument("--limit", type=int, default=None, metavar="N", help="at most N flows")
    flows.add_argument("--help-filters", action="store_true", help="list the filter expression operators")
    flows.set_defaults(run=cmd_flows)

    ca = sub.add_parser("ca", help="show the CA certificate and how to trust it")
    ca.add_argument("--confdir", default=DEFAULT_CONFDIR, help=f"CA folder (default {DEFAULT_CONFDIR})")
    ca_sub = ca.add_subparsers(dest="ca_command", metavar="ACTION")
    exp = ca_sub.add_parser("export", help="write the CA certificate (never the key) to a file")
    exp.add_argument("--format", choices=("pem", "der", "p12"), default="pem")
    exp.add_argument("-o", "--output", type=Path, required=True, metavar="FILE")
    exp.add_argument("--confdir", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    ca.set_defaults(run=cmd_ca)
    return top


# --- commands -------------------------------------------------------------------------------------


def _wait_for_signal() -> None:
    """Block the main thread until Ctrl-C or SIGTERM."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(0.2):
        pass


def cmd_record(args: argparse.Namespace) -> int:
    from proxycap.control.session import CaptureSession
    from proxycap.query.fmt import flow_line
    from proxycap.runtime import switching

    session = CaptureSession(engine_config(args), args.store or default_store(), args.log_file or default_log_file())
    printer = None if args.quiet else session.bus.subscribe("record-printer", limit=100_000)
    session.start()
    gcsettle.settle()
    switching.recording()
    addrs = ", ".join(f"{h}:{p}" for h, p in session.engine.listen_addrs)
    print(
        f"proxycap {__version__} listening on {addrs}, recording to {session.store_path}",
        file=sys.stderr,
        flush=True,
    )
    done = threading.Event()
    printing = None
    if printer is not None:
        printing = threading.Thread(target=_print_flows, args=(printer, flow_line, done), daemon=True)
        printing.start()
    try:
        _wait_for_signal()
    finally:
        written = session.stop()
        done.set()
        if printing is not None:
            printing.join()  # the flows stopped with are printed too
    print(f"stopped; {written} flows written to {session.store_path}", file=sys.stderr)
    return 0


def _print_flows(sub, line: Callable, done: threading.Event) -> None:
    from proxycap.capture.bus import FlowEvent

    while True:
        stopping = done.wait(0.1)
        for ev in sub.drain():
            if isinstance(ev, FlowEvent) and ev.kind in ("response", "error"):
                print(line(ev.summary), flush=False)
        sys.stdout.flush()
        if stopping:
            return


def cmd_flows(args: argparse.Namespace) -> int:
    from mitmproxy import flowfilter

    from proxycap.query.filters import FilterError, compile_filter, matching_rows
    from proxycap.query.fmt import flow_line
    from proxycap.storage.store import Query

    if args.help_filters:
        for op, text in flowfilter.help:
            print(f"  {op:<14} {text}")
        return 0
    try:
        flt = compile_filter(args.filter) if args.filter else None
    except FilterError as e:
        raise UserError(f"{e} (operators: proxycap flows --help-filters)") from None
    store = Store(args.store or default_store(), readonly=True)
    try:
        for row in matching_rows(store, Query(client_ip=client_ip(args.client)), flt, args.limit):
            print(json.dumps(row) if args.json else flow_line(row))
    finally:
        store.close()
    return 0


def cmd_ca(args: argparse.Namespace) -> int:
    info = ensure_ca(args.confdir)
    if args.ca_command == "export":
        args.output.write_bytes(export(info, args.format))
        print(f"wrote the CA certificate ({args.format}) to {args.output}")
        return 0
    v = info.cert
    print(f"CA certificate: {info.cert_path}")
    print(f"Subject:        {info.subject}")
    print(f"SHA-256:        {info.fingerprint}")
    print(f"Valid:          {v.not_valid_before_utc:%Y-%m-%d} to {v.not_valid_after_utc:%Y-%m-%d}")
    print("\nTo trust it:\n" + trust_steps(info))
    return 0


def cmd_tui(args: argparse.Namespace) -> int:
    """Start the proxy before importing Textual: it listens sooner, and its errors print before the UI starts."""
    for name, value in TEXTUAL_ENV.items():
        os.environ.setdefault(name, value)
    client = client_ip(args.client)
    if args.open is not None:
        from proxycap.tui.app import ProxycapApp

        ProxycapApp(args.open, client=client, history_file=filter_history(), settle=gcsettle.settle).run()
        return 0
    from proxycap.control.session import CaptureSession

    session = CaptureSession(engine_config(args), args.store or default_store(), args.log_file or default_log_file())
    session.start()
    try:
        from proxycap.tui.app import ProxycapApp

        # With the UI drawn, the bulk of what lives until exit exists; its frames take the full collections.
        app = ProxycapApp(
            session.store_path,
            session,
            client=client,
            history_file=filter_history(),
            settle=lambda: gcsettle.settle(defer_full=True),
        )
        app.run()
    finally:
        session.stop()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except BrokenPipeError:  # `proxycap flows | head` is fine
        sys.stderr.close()  # (and so is the flush at exit that fails the same way)
        return 0
    except (UserError, StoreError, EngineError, CAError, ValueError, OSError) as e:
        print(f"proxycap: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130

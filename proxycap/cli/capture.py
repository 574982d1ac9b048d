"""``proxycap tui`` and ``proxycap record``: run the proxy with the inspector, or headless."""

from __future__ import annotations

import argparse
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from proxycap import __version__
from proxycap.capture.bus import ClientRefusedEvent, FlowEvent, StoreStatus, Subscription
from proxycap.cli.common import add_proxy_options, add_traffic_options, client_ip, engine_config, on_signal, wait_for
from proxycap.paths import default_log_file, default_store, filter_history
from proxycap.runtime import gcsettle

if TYPE_CHECKING:
    from proxycap.control.server import ControlServer

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


def add_parsers(sub: argparse._SubParsersAction) -> None:
    tui = sub.add_parser("tui", help="run the proxy with the live traffic inspector")
    add_proxy_options(tui)
    add_traffic_options(tui, breakpoints=True)
    tui.add_argument("--client", metavar="IP", help="start focused on this client IP")
    tui.add_argument(
        "--open",
        type=Path,
        metavar="FILE",
        help="browse an earlier capture read-only (no proxy): a store, or a .har, .saz or mitmproxy flow file",
    )
    tui.add_argument(
        "--attach",
        nargs="?",
        const="",
        metavar="ADDR",
        help="open a window on a running proxycap record or tui instead of starting a proxy; ADDR: its port or "
        "control socket (default: the one running), or HOST:PORT of its --control-port with PROXYCAP_TOKEN set",
    )
    add_control_option(tui)
    tui.set_defaults(run=cmd_tui)

    rec = sub.add_parser("record", help="run a headless recording proxy")
    add_proxy_options(rec)
    add_traffic_options(rec)
    rec.add_argument("-q", "--quiet", action="store_true", help="don't print a line per flow")
    add_control_option(rec)
    rec.set_defaults(run=cmd_record)


def add_control_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--control-port",
        type=int,
        metavar="PORT",
        help="also offer the control API (for tui --attach) on 127.0.0.1:PORT, with a token it prints (0: any port); "
        "it is always offered on a Unix socket only you can use",
    )


def cmd_record(args: argparse.Namespace) -> int:
    """Exit status 0, or 1 when captured flows could not be stored (the terminal said which, as it happened)."""
    from proxycap.control.session import CaptureSession
    from proxycap.devices.lan import listening_note
    from proxycap.query.fmt import flow_line
    from proxycap.runtime import switching

    stopping = on_signal()
    session = CaptureSession(
        engine_config(args), args.store or default_store(), args.log_file or default_log_file(), args.control_port
    )
    # The store's state and refused clients always reach the terminal; each flow unless -q (then the proxy makes no
    # summaries).
    kinds = (StoreStatus, ClientRefusedEvent) if args.quiet else (StoreStatus, ClientRefusedEvent, FlowEvent)
    terminal = session.bus.subscribe("record-terminal", limit=100_000, kinds=kinds)
    session.start()
    gcsettle.settle()
    switching.recording()
    addrs = ", ".join(f"{h}:{p}" for h, p in session.engine.listen_addrs)
    say(f"proxycap {__version__} listening on {addrs}, recording to {session.store_path}")
    for warning in session.warnings:
        say(f"warning: {warning}")
    if session.server is not None and session.server.token is not None:  # the Unix socket is found on its own
        say(control_line(session.server))
    if note := listening_note(session.engine.listen_addrs, session.access.describe()):
        say(note)
    done = threading.Event()
    printing = threading.Thread(target=_print_events, args=(terminal, flow_line, done), daemon=True)
    printing.start()
    try:
        wait_for(stopping)
    finally:
        report = session.stop()
        done.set()
        printing.join(timeout=5)  # the flows stopped with are printed too (unless stdout is stuck)
    line = f"stopped; {report.written:,} flows written to {session.store_path}"
    if report.stripped:
        line += f"; {report.stripped:,} of them without their bodies (the store failed meanwhile)"
    if report.lost:
        line += f"; {report.lost:,} flows could not be written (see the log: {session.log_file})"
    say(line)
    return 1 if report.lost else 0


def control_line(server: ControlServer) -> str:
    """Where windows attach (``proxycap tui --attach``)."""
    line = f"windows attach with: proxycap tui --attach {server.path}"
    if server.token is not None:
        line += f" (or PROXYCAP_TOKEN={server.token} proxycap tui --attach 127.0.0.1:{server.tcp_port})"
    return line


def say(line: str) -> None:
    """A line for the person at the terminal (stderr: stdout is the flows, for pipes)."""
    print(line, file=sys.stderr, flush=True)


def _print_events(sub: Subscription, line: Callable, done: threading.Event) -> None:
    while True:
        stopping = done.wait(0.1)
        for ev in sub.drain():
            if isinstance(ev, FlowEvent) and ev.kind in ("response", "error"):
                print(line(ev.summary), flush=False)
            elif isinstance(ev, StoreStatus):
                sys.stdout.flush()
                say(f"proxycap: store: {ev.message}")
            elif isinstance(ev, ClientRefusedEvent):
                say(
                    f"refused client {ev.client_ip} ({ev.request}): not allowed; to let it in, start proxycap with "
                    f"--allow {ev.client_ip}"
                )
        sys.stdout.flush()
        if stopping:
            return


def cmd_tui(args: argparse.Namespace) -> int:
    """Start the proxy before importing Textual: it listens sooner, and its errors print before the UI starts."""
    for name, value in TEXTUAL_ENV.items():
        os.environ.setdefault(name, value)
    client = client_ip(args.client)
    if args.attach is not None:
        from proxycap.control.remote import RemoteControl, find
        from proxycap.tui.app import ProxycapApp

        control = RemoteControl(find(args.attach))
        try:
            store = Path(control.store_path())
            ProxycapApp(store, control, client=client, history_file=filter_history(), settle=gcsettle.settle).run()
        finally:
            control.close()
        return 0
    if args.open is not None:
        from proxycap.exchange.importer import opened_capture
        from proxycap.tui.app import ProxycapApp

        with opened_capture(args.open) as store_path:  # a HAR, SAZ or flow file: in a temporary store
            ProxycapApp(store_path, client=client, history_file=filter_history(), settle=gcsettle.settle).run()
        return 0
    from proxycap.control.session import CaptureSession

    session = CaptureSession(
        engine_config(args), args.store or default_store(), args.log_file or default_log_file(), args.control_port
    )
    session.start()
    try:
        from proxycap.tui.app import ProxycapApp

        # With the UI drawn, the bulk of what lives until exit exists; its frames take the full collections.
        app = ProxycapApp(
            session.store_path,
            session.control,
            client=client,
            history_file=filter_history(),
            settle=lambda: gcsettle.settle(defer_full=True),
        )
        app.run()
    finally:
        session.stop()
    return 0

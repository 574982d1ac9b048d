"""``proxycap web``: the proxy, with its inspector served to a browser (each tab a TUI attached to the capture)."""

from __future__ import annotations

import argparse
import ipaddress
import secrets
import shlex
import socket
import sys
import webbrowser

from proxycap.cli.capture import add_control_option, say
from proxycap.cli.common import UserError, add_proxy_options, add_traffic_options, engine_config
from proxycap.paths import default_log_file, default_store
from proxycap.runtime import gcsettle, switching


def add_parsers(sub: argparse._SubParsersAction) -> None:
    web = sub.add_parser(
        "web",
        help="run the proxy and serve the inspector to a browser",
        description="Run the proxy and serve the inspector to a browser: each tab runs the TUI, attached to this "
        "capture. The URL holds a random token; requests without it get 403.",
    )
    add_proxy_options(web)
    add_traffic_options(web)
    add_control_option(web)
    web.add_argument("--web-host", default="127.0.0.1", help="address to serve the browser view on (default 127.0.0.1)")
    web.add_argument("--web-port", type=int, default=0, help="port to serve the browser view on (default: any free)")
    web.add_argument("--open-browser", action="store_true", help="open the URL in this machine's browser")
    web.set_defaults(run=cmd_web)


def _free_port(host: str, port: int) -> int:
    """``port``, checked free (a one-line error if not), or any free port for 0."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        try:
            s.bind((host, port))
        except OSError as e:
            raise UserError(f"cannot serve the browser view on {host}:{port}: {e.strerror}") from None
        return s.getsockname()[1]


def cmd_web(args: argparse.Namespace) -> int:
    from proxycap.control.session import CaptureSession
    from proxycap.internals.textual_serve import TokenServer

    port = _free_port(args.web_host, args.web_port)
    session = CaptureSession(
        engine_config(args), args.store or default_store(), args.log_file or default_log_file(), args.control_port
    )
    session.start()
    try:
        assert session.server is not None
        gcsettle.settle()
        switching.recording()
        token = secrets.token_urlsafe(18)
        command = shlex.join([sys.executable, "-m", "proxycap", "tui", "--attach", str(session.server.path)])
        server = TokenServer(command, args.web_host, port, token, title="proxycap")
        host = f"[{args.web_host}]" if ":" in args.web_host else args.web_host
        url = f"http://{host}:{port}/{token}/"
        addrs = ", ".join(f"{h}:{p}" for h, p in session.engine.listen_addrs)
        say(f"proxycap web: proxy on {addrs}, recording to {session.store_path}")
        say(f"the inspector: {url}")
        if not ipaddress.ip_address(args.web_host).is_loopback:
            say(
                f"warning: the inspector is served on {args.web_host}, beyond this machine: whoever has the URL can "
                "watch and change your traffic"
            )
        if args.open_browser:
            webbrowser.open(url)
        server.serve()  # until Ctrl-C or SIGTERM
    finally:
        report = session.stop()
    say(f"stopped; {report.written:,} flows written to {session.store_path}")
    return 1 if report.lost else 0

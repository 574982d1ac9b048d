"""The ``proxycap`` command line: one module per group of commands, each adding its parsers. Proxy options follow
mitmproxy's spelling (-p, --listen-host, --mode, --set, -s)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from proxycap import __version__
from proxycap.capture.ca import CAError
from proxycap.capture.engine import EngineError
from proxycap.cli import ca, capture, devices, exchange, flows, web
from proxycap.cli.common import UserError
from proxycap.control.server import ControlError
from proxycap.storage.store import StoreError

COMMANDS = (capture, web, devices, flows, exchange, ca)  # each adds its subcommands, in the order --help lists them

EXAMPLES = """\
examples:
  proxycap tui                          inspect live traffic (proxy on 127.0.0.1:8080)
  proxycap record -p 9090               headless recording proxy on port 9090
  proxycap flows --client 127.0.0.2 --filter '~d example.com & ~c 500'
  proxycap export -o capture.har        every stored flow as HAR (or .saz, .mitm, .sh, .jsonl)
  proxycap import capture.har           a HAR, SAZ or mitmproxy flow file into the store
  proxycap ca                           where the CA is and how to trust it
  proxycap setup                        a phone onto the proxy: its address, a QR code, steps per platform
  proxycap run -- curl https://example.com/   one command through the proxy, trusting its CA
"""


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="proxycap",
        description="A Fiddler-style HTTP(S) debugging proxy with a terminal UI.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    top.add_argument("--version", action="version", version=f"proxycap {__version__}")
    sub = top.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.add_parsers(sub)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except BrokenPipeError:  # `proxycap flows | head` is fine
        sys.stderr.close()  # (and so is the flush at exit that fails the same way)
        return 0
    except (UserError, StoreError, EngineError, CAError, ControlError, ValueError, OSError) as e:
        print(f"proxycap: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130

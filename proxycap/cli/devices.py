"""``proxycap setup``, ``run``, ``env`` and ``browser``: getting devices and programs onto a running proxycap."""

from __future__ import annotations

import argparse
import os
import sys

from proxycap.cli.common import UserError
from proxycap.devices import local
from proxycap.devices.browser import EXECUTABLES, BrowserError, find_browser, run_browser
from proxycap.devices.lan import hostport
from proxycap.devices.setup import CA_CRT, CA_PEM, PAC, qr_lines, setup_for

# Shown light on dark whatever the terminal's colours, as segno's half blocks need (a block is a light module).
QR_STYLE, RESET = "\033[97;40m", "\033[0m"


def _proxy_options(p: argparse.ArgumentParser, credentials: bool = True) -> None:
    g = p.add_argument_group("the running proxy")
    g.add_argument("-p", "--port", type=int, default=8080, help="its port (default 8080)")
    g.add_argument("--host", default="127.0.0.1", help="its address on this machine (default 127.0.0.1)")
    if credentials:
        g.add_argument("--proxyauth", metavar="USER:PASS", help="its credentials, if it was started with --proxyauth")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    setup = sub.add_parser("setup", help="set up a phone or another device: addresses, QR code, steps per platform")
    _proxy_options(setup, credentials=False)
    setup.set_defaults(run=cmd_setup)

    run = sub.add_parser(
        "run",
        help="run a command through the proxy, trusting its CA",
        usage="proxycap run [-p PORT] [--host HOST] [--proxyauth USER:PASS] [--] CMD [ARGS ...]",
    )
    _proxy_options(run)
    run.add_argument("command", nargs=argparse.REMAINDER, metavar="CMD ARGS", help="the command and its arguments")
    run.set_defaults(run=cmd_run)

    env = sub.add_parser(
        "env", help='print the shell commands that send this shell through the proxy: eval "$(proxycap env)"'
    )
    _proxy_options(env)
    env.add_argument("--shell", choices=("bash", "zsh", "fish", "sh"), help="default: from $SHELL")
    env.add_argument("--unset", action="store_true", help="print the commands that undo it")
    env.set_defaults(run=cmd_env)

    browser = sub.add_parser(
        "browser",
        help="start a browser in a throwaway profile, proxied and trusting the CA",
        usage="proxycap browser [-p PORT] [--host HOST] [chromium|chrome|firefox] [URL] [-- BROWSER ARGS ...]",
    )
    _proxy_options(browser, credentials=False)
    browser.add_argument("args", nargs=argparse.REMAINDER, metavar="[BROWSER] [URL]", help=argparse.SUPPRESS)
    browser.set_defaults(run=cmd_browser)


def _find(args: argparse.Namespace) -> local.RunningProxy:
    try:
        return local.find_proxy(args.host, args.port)
    except local.NoProxy as e:
        raise UserError(str(e)) from None


def cmd_setup(args: argparse.Namespace) -> int:
    proxy = _find(args)
    listen = [(str(h), int(p)) for h, p in proxy.info.get("listen", [])] or [(args.host, args.port)]
    info = setup_for(listen)
    out = sys.stdout
    if not info.reachable:
        print(
            f"proxycap listens on {', '.join(hostport(h, p) for h, p in listen)} only: devices cannot reach it. "
            f"Restart it with --listen-host 0.0.0.0 --allow NETWORK (your LAN, such as 192.168.1.0/24).\n",
            file=out,
        )
    print(f"Proxy for devices: {info.host}, port {info.port}", file=out)
    if others := [hostport(a, info.port) for a in info.addresses[1:]]:
        print(f"  (also reachable at {', '.join(others)})", file=out)
    print(f"Allowed: {proxy.info.get('allowed') or 'localhost'} (others get a 403 page until allowed)", file=out)
    print(f"\nScan with the device's camera: it opens {info.setup_url} (the CA and these steps)\n", file=out)
    tty = out.isatty()
    for line in qr_lines(info.qr_text):
        print(f"{QR_STYLE}{line}{RESET}" if tty else line, file=out)
    print(
        f"\nCA certificate: {info.url(CA_CRT)} (DER, for phones and Windows) or {info.url(CA_PEM)} (PEM)\n"
        f"Automatic proxy configuration (PAC): {info.url(PAC)}",
        file=out,
    )
    for platform, steps in info.steps():
        print(f"\n{platform}", file=out)
        for i, step in enumerate(steps, 1):
            print(f"  {i}. {step}", file=out)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise UserError("run: name a command to run, such as: proxycap run -- curl https://example.com/")
    proxy = _find(args)
    env = local.child_env(local.proxy_env(proxy, os.environ, args.proxyauth), os.environ)
    sys.stdout.flush()
    try:
        os.execvpe(command[0], command, env)  # the command itself connects: it is named as itself in the flows
    except FileNotFoundError:
        print(f"proxycap: error: {command[0]}: command not found", file=sys.stderr)
        return 127
    except PermissionError:
        print(f"proxycap: error: {command[0]}: permission denied", file=sys.stderr)
        return 126


def cmd_env(args: argparse.Namespace) -> int:
    shell = args.shell or local.default_shell(os.environ)
    if args.unset:
        changes = local.undo_changes(os.environ)
    else:
        proxy = _find(args)
        changes = local.shell_changes(local.proxy_env(proxy, os.environ, args.proxyauth), os.environ)
    sys.stdout.write(local.shell_script(changes, shell))
    return 0


def cmd_browser(args: argparse.Namespace) -> int:
    rest = list(args.args)
    extra: list[str] = []
    if "--" in rest:
        rest, extra = rest[: rest.index("--")], rest[rest.index("--") + 1 :]
    name = rest.pop(0) if rest and rest[0] in EXECUTABLES else None
    if len(rest) > 1:
        raise UserError(f"browser: one URL at most (got {' '.join(rest)}); browser arguments go after --")
    url = rest[0] if rest else None
    proxy = _find(args)
    try:
        kind, executable = find_browser(name)
        ca_file, _ = local.ca_files(proxy, os.environ)
        return run_browser(kind, executable, proxy, ca_file, url, extra)
    except BrowserError as e:
        raise UserError(str(e)) from None

"""``proxycap ca``: where the CA is, how to trust it, and its certificate exported."""

from __future__ import annotations

import argparse
from pathlib import Path

from proxycap.capture.ca import ensure_ca, export, trust_steps
from proxycap.capture.engine import DEFAULT_CONFDIR


def add_parsers(sub: argparse._SubParsersAction) -> None:
    ca = sub.add_parser("ca", help="show the CA certificate and how to trust it")
    ca.add_argument("--confdir", default=DEFAULT_CONFDIR, help=f"CA folder (default {DEFAULT_CONFDIR})")
    ca_sub = ca.add_subparsers(dest="ca_command", metavar="ACTION")
    exp = ca_sub.add_parser("export", help="write the CA certificate (never the key) to a file")
    exp.add_argument("--format", choices=("pem", "der", "p12"), default="pem")
    exp.add_argument("-o", "--output", type=Path, required=True, metavar="FILE")
    exp.add_argument("--confdir", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    ca.set_defaults(run=cmd_ca)


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

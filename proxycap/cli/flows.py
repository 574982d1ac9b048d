"""``proxycap flows``: list stored flows, filtered with mitmproxy's expressions."""

from __future__ import annotations

import argparse
import json

from proxycap.cli.common import UserError, add_store, client_ip
from proxycap.paths import default_store
from proxycap.storage.store import Store


def add_parsers(sub: argparse._SubParsersAction) -> None:
    flows = sub.add_parser(
        "flows", help="list stored flows", epilog="filter expressions: mitmproxy's syntax, see --help-filters"
    )
    add_store(flows)
    flows.add_argument(
        "--filter", "-f", metavar="EXPR", help="mitmproxy filter expression, e.g. '~d example.com & ~c 500'"
    )
    flows.add_argument("--client", metavar="IP", help="only this client IP (exact match)")
    flows.add_argument("--json", action="store_true", help="one JSON object per line")
    flows.add_argument("--limit", type=int, default=None, metavar="N", help="at most N flows")
    flows.add_argument("--help-filters", action="store_true", help="list the filter expression operators")
    flows.set_defaults(run=cmd_flows)


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

"""mitmproxy filter expressions answered from the store's summary columns, in SQL.

Evaluating ``~d example.com`` the mitmproxy way loads and decodes every stored flow, far too slow for a big
store (bench/RESULTS.md, "SQL filters"). Most expressions people type only ask about what the summary columns
hold (host, URL, method, status, client, error), so those are translated to an SQL condition instead. A regex is
matched in Python against the distinct values the rows in question hold (few hosts, methods and clients), and
becomes ``column IN (those values)``: no Python callback per row, which under load would wait for the GIL
once per row (bench/RESULTS.md, "SQL filters"). Anything else (bodies, headers, content types) returns None and is
evaluated on full flows.

Differences from mitmproxy, all on purpose: ``~d`` matches the host the list shows (the Host header's,
mitmproxy also tries the connection's); ``~src`` sees IPv4-mapped addresses as plain IPv4; ``~marked`` means
proxycap's own marks.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from typing import Any

from mitmproxy import flowfilter

Clause = tuple[str, list[Any]]

# Pattern filters → the column (SQL expression) their regex searches.
_PATTERN_COLUMNS: dict[type, str] = {
    flowfilter.FDomain: "host",
    flowfilter.FUrl: "url",
    flowfilter.FMethod: "method",
    flowfilter.FSrc: "client_ip || ':' || coalesce(client_port, '')",
}
# Filters without arguments → a condition that is never NULL (so ``!`` negates it correctly).
_FIXED: dict[type, str] = {
    flowfilter.FAll: "1",
    flowfilter.FHTTP: "1",
    flowfilter.FTCP: "0",
    flowfilter.FUDP: "0",
    flowfilter.FDNS: "0",
    flowfilter.FErr: "error IS NOT NULL",
    flowfilter.FResp: "status IS NOT NULL",
    flowfilter.FReq: "status IS NULL",
    flowfilter.FMarked: "marked != 0",
    flowfilter.FWebSocket: "coalesce(websocket, 0) != 0",
}


Values = Callable[[str], Iterable[str | None]]  # an SQL column expression → its distinct values in the rows


def to_sql(flt: flowfilter.TFilter, values: Values) -> Clause | None:
    """An SQL condition over the ``flows`` table equivalent to ``flt`` for rows whose values ``values`` lists,
    or None if summaries cannot answer it."""
    kind = type(flt)
    if kind in _FIXED:
        return _FIXED[kind], []
    if kind in _PATTERN_COLUMNS:
        column = _PATTERN_COLUMNS[kind]
        rx: re.Pattern[Any] = flt.re  # type: ignore[attr-defined]
        # The same pattern and case rule (mitmproxy 12 ignores case everywhere unless told not to, 11 per filter).
        source = rx.pattern.decode() if isinstance(rx.pattern, bytes) else rx.pattern
        search = re.compile(source, rx.flags & re.IGNORECASE).search
        found = [v for v in values(column) if v is not None and search(v)]
        return f"{column} IN (SELECT value FROM json_each(?))", [json.dumps(found)]
    if kind is flowfilter.FCode:
        return "coalesce(status, 0) = ?", [flt.num]  # type: ignore[attr-defined]
    if kind is flowfilter.FNot:
        inner = to_sql(flt.itm, values)  # type: ignore[attr-defined]
        return None if inner is None else (f"NOT ({inner[0]})", inner[1])
    if kind in (flowfilter.FAnd, flowfilter.FOr):
        parts = [to_sql(x, values) for x in flt.lst]  # type: ignore[attr-defined]
        if any(p is None for p in parts):
            return None
        joiner = " AND " if kind is flowfilter.FAnd else " OR "
        return joiner.join(f"({sql})" for sql, _ in parts), [a for _, args in parts for a in args]  # type: ignore[misc]
    return None


def answerable(flt: flowfilter.TFilter) -> bool:
    """Whether summaries answer ``flt`` (``to_sql`` without looking at any rows)."""
    return to_sql(flt, lambda column: ()) is not None

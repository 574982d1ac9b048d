"""mitmproxy filter expressions answered from the store's summary columns, in SQL.

Evaluating ``~d example.com`` the mitmproxy way loads and decodes every stored flow (about 0.75 ms each,
over a minute for 100k flows). Most expressions people type only ask about what the summary columns hold
(host, URL, method, status, client, error), so those are translated to an SQL condition instead: 100k flows
in well under 200 ms (bench/RESULTS.md). Anything else (bodies, headers, content types) returns None and is
evaluated on full flows.

Differences from mitmproxy, all on purpose: ``~d`` matches the host the list shows (the Host header's,
mitmproxy also tries the connection's); ``~src`` sees IPv4-mapped addresses as plain IPv4; ``~marked`` means
proxycap's own marks.
"""

from __future__ import annotations

import functools
import re
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


def to_sql(flt: flowfilter.TFilter) -> Clause | None:
    """An SQL condition over the ``flows`` table equivalent to ``flt``, or None if summaries cannot answer it."""
    kind = type(flt)
    if kind in _FIXED:
        return _FIXED[kind], []
    if kind in _PATTERN_COLUMNS:
        rx: re.Pattern[Any] = flt.re  # type: ignore[attr-defined]
        source = rx.pattern.decode() if isinstance(rx.pattern, bytes) else rx.pattern
        # Same pattern, same case rule: mitmproxy 12 ignores case everywhere (unless told not to), 11 per filter.
        return f"regexp(?, ?, {_PATTERN_COLUMNS[kind]})", [source, int(rx.flags & re.IGNORECASE)]
    if kind is flowfilter.FCode:
        return "coalesce(status, 0) = ?", [flt.num]  # type: ignore[attr-defined]
    if kind is flowfilter.FNot:
        inner = to_sql(flt.itm)  # type: ignore[attr-defined]
        return None if inner is None else (f"NOT ({inner[0]})", inner[1])
    if kind in (flowfilter.FAnd, flowfilter.FOr):
        parts = [to_sql(x) for x in flt.lst]  # type: ignore[attr-defined]
        if any(p is None for p in parts):
            return None
        joiner = " AND " if kind is flowfilter.FAnd else " OR "
        return joiner.join(f"({sql})" for sql, _ in parts), [a for _, args in parts for a in args]  # type: ignore[misc]
    return None


@functools.lru_cache(maxsize=256)
def _compile(pattern: str, flags: int) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern, flags)
    except re.error:
        return None


def regexp(pattern: str, flags: int, value: str | None) -> bool:
    """SQLite's ``regexp(pattern, flags, value)``: Python's ``re.search``, as mitmproxy's filters use."""
    rx = _compile(pattern, flags)
    return value is not None and rx is not None and rx.search(value) is not None

"""mitmproxy filter expressions over stored flows: in SQL where the summaries answer them, else on full flows."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterator
from typing import Any

from mitmproxy import flowfilter

from proxycap.query.sql import answerable, to_sql
from proxycap.storage.store import Query, Store

DANGLING = ("&", "|", "!")


class FilterError(ValueError):
    """A bad filter expression; the message is one line meant for the user."""


@functools.lru_cache(maxsize=32)
def compile_filter(expr: str) -> flowfilter.TFilter:
    """Parse a mitmproxy filter expression (``~d example.com & ~c 500``); bare words match the URL.

    Cached: a live view re-evaluates its expression several times a second, and pyparsing is slow. An operator
    at the end is refused: mitmproxy would read it as a word to find in the URL (``~c 401 |`` is "~c 401 and the URL
    has a |"), an empty list to someone still typing.
    """
    if expr.rstrip().endswith(DANGLING):
        raise FilterError(f"incomplete filter expression {expr!r}: it ends with {expr.rstrip()[-1]!r}")
    try:
        return flowfilter.parse(expr)
    except ValueError as e:
        col = getattr(e.__cause__, "col", None)
        where = f" at column {col}, near {expr[col - 1 : col + 11]!r}" if col else ""
        raise FilterError(f"invalid filter expression {expr!r}{where}") from None


def with_expression(store: Store, query: Query, flt: flowfilter.TFilter, negate: bool = False) -> Query | None:
    """``query`` narrowed (in SQL) to the rows ``flt`` matches, or not, if summaries answer it; else None."""
    if not answerable(flt):  # before reading any distinct values
        return None
    clause = to_sql(flt, lambda column: store.distinct(column, query))
    if clause is None:
        return None
    sql, args = clause
    return dataclasses.replace(query, sql=(f"NOT ({sql})" if negate else sql, args))


def matching_rows(
    store: Store,
    query: Query,
    flt: flowfilter.TFilter | None,
    limit: int | None = None,
    cancelled: Callable[[], bool] = lambda: False,
    unstored: Callable[[dict[str, Any]], None] = lambda row: None,
) -> Iterator[dict[str, Any]]:
    """Rows the SQL query selects that ``flt`` matches: in SQL if the summaries answer it, else on each full flow
    (loaded from the store one at a time).

    Rows whose full flow is not stored (in flight, or summary only) do not match; ``unstored`` hears of them.
    """
    if flt is not None and (narrowed := with_expression(store, query, flt)) is not None:
        query, flt = narrowed, None
    found = 0
    for row in store.iter_rows(query):
        if cancelled() or (limit is not None and found >= limit):
            return
        if flt is not None:
            f = store.load_flow(row["seq"])
            if f is None:
                unstored(row)
                continue
            if not flt(f):
                continue
        found += 1
        yield row

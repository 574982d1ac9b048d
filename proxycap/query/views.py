"""Views of stored flows: which flows a filter and an order select, loaded whole, found around a row, discovered as
they arrive, or scanned with a mitmproxy expression. Used by the TUI's flow list and by the benchmark; no UI here.

A view's rows are an array of row ids (``seq``) in ascending sort order; anything else is the caller's.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable
from typing import Any

from mitmproxy import flowfilter, http

from proxycap.query.filters import compile_filter, matching_rows, with_expression
from proxycap.query.sql import answerable
from proxycap.storage.store import Query, Store

# A filter without these characters is plain text, answered by SQL; anything else is a mitmproxy expression.
EXPRESSION_CHARS = frozenset("~!&|(")
PREVIEW_WINDOW = 5000  # flows either side of the selected one where a text filter's first screenful is looked for

Row = dict[str, Any]


@dataclasses.dataclass(frozen=True, slots=True)
class ViewSpec:
    """What the list shows: filters, order, and the "clear" floor (rows up to it are hidden)."""

    client_ip: str | None = None
    text: str | None = None  # URL substring (SQL)
    expr: str | None = None  # mitmproxy filter expression (in SQL if summaries answer it, else on full flows)
    order: str = "seq"
    descending: bool = False
    floor: int = 0

    @property
    def shows_all(self) -> bool:
        """No filter and nothing cleared away: the view holds every flow."""
        return self.client_ip is None and self.text is None and self.expr is None and not self.floor

    def query(self, after_seq: int = 0) -> Query:
        return Query(client_ip=self.client_ip, text=self.text, after_seq=max(self.floor, after_seq))

    def with_filter(self, text: str) -> ViewSpec:
        """The spec for a filter as typed; raises FilterError for a bad expression."""
        text = text.strip()
        if not text:
            return dataclasses.replace(self, text=None, expr=None)
        if EXPRESSION_CHARS.isdisjoint(text):
            return dataclasses.replace(self, text=text, expr=None)
        compile_filter(text)
        return dataclasses.replace(self, text=None, expr=text)


@dataclasses.dataclass(slots=True)
class Found:
    """Rows found by a load or scan. ``reset`` replaces the view; otherwise ``seqs`` are new, ascending."""

    seqs: list[int] | range  # a range: every row id of a store without gaps (no list of 100k ints to build)
    last_seq: int
    reset: bool = False
    undecided: set[str] = dataclasses.field(default_factory=set)
    scanned: int = 0
    total: int = 0
    done: bool = True


def is_live(flow: http.HTTPFlow) -> bool:
    """A flow whose final state is not known yet (a filter may match it later)."""
    if flow.error:
        return False
    if flow.response is None or flow.response.timestamp_end is None:
        return True
    return flow.websocket is not None and flow.websocket.timestamp_end is None


def load_sql(store: Store, spec: ViewSpec) -> Found:
    """A whole view that SQL can answer, sorted by SQL."""
    hi = store.max_seq()
    seqs = store.seqs(spec.query(), spec.order)
    return Found(seqs, max(hi, max(seqs, default=0)), reset=True)


def load_quick(store: Store, spec: ViewSpec, rows: int, anchor: int | None) -> Found | None:
    """What the UI thread can show at once (a few milliseconds), before or instead of ``load_sql`` in a worker:
    every flow, when no row id is missing (a range), or ``rows`` matches of a URL text filter either side of
    row ``anchor`` (the selected flow), found among the ``PREVIEW_WINDOW`` flows around it.

    The text filter scans every row, which a big store and load make slow (bench/RESULTS.md, "One-step reads").
    None when there is nothing quick (another order, another filter) or too few matches near the anchor to fill
    the screen.
    """
    if spec.order != "seq":
        return None
    if not spec.text:
        span = store.span(spec.query())  # None unless the view is every flow
        return None if span is None else Found(span, span[-1] if span else 0, reset=True)
    if anchor is None:
        return None
    hi = store.max_seq()
    lo, up = max(spec.floor, anchor - PREVIEW_WINDOW), min(hi, anchor + PREVIEW_WINDOW)
    if lo <= spec.floor and up >= hi:
        return None  # the window holds the whole view: no quicker than loading it
    query = spec.query()
    before = store.seqs(dataclasses.replace(query, after_seq=lo, upto_seq=anchor), descending=True, limit=rows)
    after = store.seqs(dataclasses.replace(query, after_seq=anchor, upto_seq=up), limit=rows)
    if (len(before) < rows and lo > spec.floor) or (len(after) < rows and up < hi):
        return None  # sparse matches: the screen would show a gap that the whole view then fills
    return Found(before[::-1] + after, hi, reset=True, done=False)


def discover_sql(store: Store, spec: ViewSpec, last_seq: int) -> Found | None:
    """New rows of an SQL view since ``last_seq``: an indexed range query, cheap enough for every tick."""
    hi = store.max_seq()
    if hi <= last_seq:
        return None
    seqs = store.seqs(spec.query(last_seq))
    return Found(seqs, max([hi, *seqs[-1:]]))


def scan_expr(
    store: Store,
    spec: ViewSpec,
    after_seq: int,
    recheck: Iterable[str],
    report: Callable[[Found], None],
    cancelled: Callable[[], bool],
    reset: bool,
    interval: float = 0.25,
) -> None:
    """Evaluate the view's expression over stored flows after ``after_seq`` (and re-check ``recheck`` ids).

    Calls ``report`` every ``interval`` seconds and at the end, so the list fills in while a long scan runs.
    Live flows that do not match yet are reported as ``undecided``: they are checked again once they finish.
    """
    assert spec.expr is not None
    flt = compile_filter(spec.expr)
    query = spec.query(after_seq)
    recheck = list(recheck)
    if answerable(flt):
        report(_select_sql(store, spec, query, flt, recheck, reset))
        return
    hi = store.max_seq()
    batch = Found([], max(hi, after_seq), reset=reset, total=store.count(query) + len(recheck), done=False)
    deadline = time.monotonic() + interval
    matched: list[int] = []

    def flush(done: bool = False) -> None:
        nonlocal batch, deadline
        batch.done = done
        report(batch)
        batch = Found([], batch.last_seq, scanned=batch.scanned, total=batch.total, done=False)
        deadline = time.monotonic() + interval

    def evaluate(flow: http.HTTPFlow) -> bool:
        batch.scanned += 1
        if flt(flow):
            return True
        if is_live(flow):
            batch.undecided.add(flow.id)
        if time.monotonic() > deadline:
            flush()
        return False

    for flow_id in recheck:
        seq = store.seq_of(flow_id)
        if seq is None or seq <= spec.floor:
            continue
        flow = store.load_flow(seq)
        if flow is None:  # finished with its summary only (a failing store kept no body): it cannot match
            continue
        if evaluate(flow):
            batch.seqs.append(seq)
            matched.append(seq)
    batch.seqs.sort()

    def unstored(row: Row) -> None:  # in flight: only its summary is stored so far
        if row["state"] == "live":
            batch.undecided.add(row["id"])

    for row in matching_rows(store, query, evaluate, cancelled=cancelled, unstored=unstored):
        batch.seqs.append(row["seq"])
        matched.append(row["seq"])
        batch.last_seq = max(batch.last_seq, row["seq"])
        if time.monotonic() > deadline:
            flush()
    if cancelled():
        return
    if reset and spec.order != "seq":
        members = set(matched)
        batch.seqs, batch.reset = [s for s in store.seqs(query, spec.order) if s in members], True
    flush(done=True)


def _select_sql(
    store: Store, spec: ViewSpec, query: Query, flt: flowfilter.TFilter, recheck: list[str], reset: bool
) -> Found:
    """``scan_expr`` for an expression the summary columns answer: a few queries instead of decoding every flow."""
    hi = store.max_seq()
    query = dataclasses.replace(query, upto_seq=hi)  # the writer may commit meanwhile: every read sees rows <= hi
    matching = with_expression(store, query, flt)
    assert matching is not None
    seqs = store.seqs(matching, spec.order if reset else "seq")
    recheck_query = dataclasses.replace(spec.query(), ids=tuple(recheck), upto_seq=hi)
    if recheck and (again := with_expression(store, recheck_query, flt)):
        seqs = sorted({*seqs, *store.seqs(again)})
    # Live flows that do not match yet (no status for ``~c 200``): checked again once they finish.
    not_yet = with_expression(store, dataclasses.replace(query, state="live"), flt, negate=True)
    waiting = store.ids(not_yet) if not_yet else []
    n = len(seqs) + len(waiting)
    return Found(seqs, max(hi, query.after_seq), reset, set(waiting), n, n, done=True)


def resort(store: Store, spec: ViewSpec, members: Iterable[int]) -> list[int]:
    """``members`` in the view's order (SQL sorts; the membership test keeps expression results)."""
    keep = set(members)
    return [s for s in store.seqs(spec.query(), spec.order) if s in keep]

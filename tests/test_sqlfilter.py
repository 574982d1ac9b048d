"""Filter expressions answered in SQL must select exactly what mitmproxy selects on the full flows."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from tui_data import build_store

from proxycap.query.filters import compile_filter, with_expression
from proxycap.query.sql import answerable
from proxycap.query.views import ViewSpec, scan_expr
from proxycap.storage.store import Query, Store


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    s = Store(build_store(tmp_path_factory.mktemp("sqlfilter") / "capture.db"))
    yield s
    s.close()


EXPRESSIONS = [
    r"~d example\.(org|net)",
    r"~d ^api\.",
    "~d EXAMPLE.ORG",
    "~u /v1/",
    r"~u search\?q=",
    "example.org",  # bare words are ~u
    "~m post",
    '~m "^(get|delete)$"',
    "~c 200",
    "~c 503",
    "!~c 200",
    "~src 127.0.0.2",
    '~u "(?s)example.org/."',  # inline flags stay at the start of the pattern
    "~src :5000[0-4]$",
    "~e",
    "!~e",
    "~s",
    "~q",
    "~websocket",
    "~d api & ~c 200",
    "~d api | ~m post",
    "!(~d example.org | ~c 304)",
    "~d example & !~m get",
    "(~c 200 | ~c 401) & ~src 127.0.0.2",
]


@pytest.mark.parametrize("expr", EXPRESSIONS)
def test_sql_agrees_with_mitmproxy(store: Store, expr: str) -> None:
    flt = compile_filter(expr)
    narrowed = with_expression(store, Query(), flt)
    assert narrowed is not None
    # mitmproxy's own evaluation, on every full flow
    by_mitmproxy = [r["seq"] for r in store.iter_rows() if (f := store.load_flow(r["seq"])) is not None and flt(f)]
    assert store.seqs(narrowed) == by_mitmproxy
    assert 0 < len(by_mitmproxy) < store.count()  # each expression tells flows apart


@pytest.mark.parametrize("expr", ["~all", "~http"])
def test_sql_constant_filters(store: Store, expr: str) -> None:
    everything, nothing = (with_expression(store, Query(), compile_filter(e)) for e in (expr, f"!{expr}"))
    assert everything and len(store.seqs(everything)) == store.count()
    assert nothing and store.seqs(nothing) == []


@pytest.mark.parametrize("expr", ["~bs credentials", "~t json", "~h user-agent", "~d api & ~hq x", "~dst 10.0.0.1"])
def test_what_summaries_cannot_answer_is_left_to_full_flows(store: Store, expr: str) -> None:
    assert not answerable(compile_filter(expr))


def test_a_body_expression_still_scans_full_flows(store: Store) -> None:
    found: list[int] = []
    scan_expr(store, ViewSpec(expr="~bs credentials"), 0, [], lambda b: found.extend(b.seqs), lambda: False, True)
    assert [store.rows([s])[s]["path"] for s in found] == ["/v1/login"]


def test_live_flows_are_indexed_in_older_stores_too(tmp_path: Path) -> None:
    path = build_store(tmp_path / "older.db")
    with sqlite3.connect(path) as db:  # as a store made before the index existed
        db.execute("DROP INDEX flows_live")
    Store(path, readonly=True).close()  # reading does not need it
    store = Store(path)
    try:
        where, args = Query(state="live").where()
        plan = store._read(f"EXPLAIN QUERY PLAN SELECT id FROM flows WHERE {where}", args)
        assert "flows_live" in str(plan)
        assert len(store.ids(Query(state="live"))) == 1  # the one flow in flight in the test data
    finally:
        store.close()

"""The TUI's pure logic against a real store: the view model, body rendering, client names, wrapping."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mitmproxy.test import tflow
from origins import PNG_BYTES
from rich.control import strip_control_codes
from rich.text import Text
from tui_data import CURL, FIREFOX, _flow, build_store, flows

from proxycap.capture.bus import Committed
from proxycap.capture.summary import META_PROCESS, summarize
from proxycap.query import views as views_module
from proxycap.query.filters import FilterError
from proxycap.query.views import Found as Batch
from proxycap.query.views import ViewSpec, discover_sql, load_quick, load_sql, resort, scan_expr
from proxycap.storage.store import Query, Store
from proxycap.tui.chrome.clients import ClientNames, client_rows
from proxycap.tui.flows.flow_list import COLUMNS, fit, layout
from proxycap.tui.flows.model import FlowView
from proxycap.tui.inspector.bodyview import _THEME, _lexer, highlight, render_body, render_raw
from proxycap.tui.textlines import wrap_offsets


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(build_store(tmp_path / "capture.db"))
    yield s
    s.close()


def loaded(store: Store, spec: ViewSpec) -> FlowView:
    view = FlowView(store)
    view.begin(spec)
    view.apply(load_sql(store, spec))
    return view


def scanned(store: Store, spec: ViewSpec, after: int = 0, recheck: tuple[str, ...] = ()) -> list[Batch]:
    batches: list[Batch] = []
    scan_expr(store, spec, after, recheck, batches.append, lambda: False, reset=after == 0)
    return batches


def paths(view: FlowView) -> list[str]:
    return [view.row(i)["path"] for i in range(len(view))]


def test_filter_text_is_sql_and_expressions_are_checked() -> None:
    assert ViewSpec().with_filter(" example ").text == "example"
    assert ViewSpec().with_filter("~c 404 | ~d api").expr == "~c 404 | ~d api"
    assert ViewSpec(text="x").with_filter("") == ViewSpec()
    with pytest.raises(FilterError):
        ViewSpec().with_filter("~c 404 & (")
    for dangling in ("~c 401 |", "~c 401 & ", "~d example.com & !"):
        with pytest.raises(FilterError, match="incomplete filter expression"):
            ViewSpec().with_filter(dangling)


def test_sql_view_order_direction_and_client(store: Store) -> None:
    view = loaded(store, ViewSpec(client_ip="127.0.0.2"))
    assert paths(view) == ["/v1/users/42", "/v1/login", "/v1/users/7", "/v1/report", "/v1/stream"]
    assert not view.begin(ViewSpec(client_ip="127.0.0.2", descending=True))  # a flip needs no reload
    assert paths(view)[0] == "/v1/stream"
    spec = ViewSpec(order="status", descending=True)
    view = loaded(store, spec)
    assert [view.row(i)["status"] for i in range(3)] == [503, 401, 304]
    assert view.index_of(view.seq_at(2)) == 2


def test_url_text_is_literal_and_ignores_case(store: Store) -> None:
    urls = ["https://api.example.com/a_b", "https://api.example.com/aXb", "https://api.example.com/100%25"]
    store.write(
        [
            (summarize(_flow(60 + i, "127.0.0.2", CURL, "GET", u, 200, "text/plain", b"", b"")), None)
            for i, u in enumerate(urls)
        ]
    )

    def found(text: str) -> list[str]:
        return [r["path"] for r in store.rows(store.seqs(Query(text=text))).values()]

    assert found("a_b") == ["/a_b"]  # "_" is not a wildcard
    assert found("0%2") == ["/100%25"] and found("%") == ["/100%25"]
    assert found("Q=PROXY") == ["/search?q=proxy+debugging&page=2"]


def test_all_rows_with_and_without_gaps(store: Store) -> None:
    every = sorted(int(s) for s in store._read("SELECT group_concat(seq) FROM flows")[0][0].split(","))
    assert store.seqs() == every and store.seqs(descending=True) == every[::-1]
    assert store.seqs(Query(after_seq=every[2], upto_seq=every[5])) == every[3:6]
    store.delete([every[4]])  # a gap: the ids can no longer be counted, they are read
    assert store.seqs() == every[:4] + every[5:]
    assert store.seqs(Query(after_seq=every[2], upto_seq=every[5])) == [every[3], every[5]]


def test_a_text_filter_previews_a_screenful_around_the_selected_flow(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(views_module, "PREVIEW_WINDOW", 8)
    items = [
        _flow(60 + i, "127.0.0.2", CURL, "GET", f"https://api.example.com/items/{i}", 200, "text/plain", b"", b"")
        for i in range(12)
    ]
    store.write([(summarize(f), None) for f in items])
    spec = ViewSpec(text="/items/")
    full = load_sql(store, spec)
    assert len(full.seqs) == 12 and full.done
    newest = full.seqs[-1]
    preview = load_quick(store, spec, 3, newest)
    assert preview is not None and preview.seqs == full.seqs[-3:] and preview.reset and not preview.done
    middle = load_quick(store, spec, 2, full.seqs[5])
    assert middle is not None and middle.seqs == full.seqs[4:8]
    assert load_quick(store, spec, 9, newest) is None  # 8 flows cannot fill 9 rows: wait for the whole view
    assert load_quick(store, ViewSpec(text="/items/", order="status"), 3, newest) is None
    every = load_quick(store, ViewSpec(), 3, newest)  # no filter: the whole view at once, when it is a range
    assert every is not None and every.done and list(every.seqs) == load_sql(store, ViewSpec()).seqs
    assert load_quick(store, ViewSpec(client_ip="127.0.0.2"), 3, newest) is None
    view = loaded(store, spec)
    assert view.nearest(full.seqs[0] - 1) == 0 and view.nearest(newest + 5) == 11 and view.nearest(full.seqs[3]) == 3


def test_every_flow_is_a_range_of_row_ids_while_the_next_ones_follow_on(store: Store) -> None:
    """Clearing a filter over 100k flows must not build a list of 100k ids (nor keep one in memory)."""
    view = FlowView(store)
    view.begin(ViewSpec())
    whole = load_quick(store, ViewSpec(), 3, None)
    assert whole is not None
    view.apply(whole)
    every = load_sql(store, ViewSpec()).seqs
    assert isinstance(view._seqs, range) and view.snapshot() == every
    assert view.index_of(every[3]) == 3 and view.nearest(every[-1] + 9) == len(every) - 1
    items = [
        _flow(70 + i, "127.0.0.2", CURL, "GET", f"https://api.example.com/next/{i}", 200, "text/plain", b"", b"")
        for i in range(3)
    ]
    store.write([(summarize(f), None) for f in items])
    change = view.apply(discover_sql(store, view.spec, view.last_seq))
    assert change.added == 3 and change.appended and isinstance(view._seqs, range)
    assert view.snapshot() == [*every, every[-1] + 1, every[-1] + 2, every[-1] + 3] == store.seqs()
    after_a_gap = every[-1] + 9
    change = view.apply(Batch([after_a_gap], after_a_gap))
    assert change.added == 1 and change.appended and view.snapshot() == [*store.seqs(), after_a_gap]
    assert view.seq_at(len(view) - 1) == after_a_gap and view.index_of(every[-1] + 3) == len(view) - 2
    flipped = FlowView(store)
    flipped.begin(ViewSpec(descending=True))
    flipped.apply(load_quick(store, ViewSpec(descending=True), 3, None))
    assert flipped.seq_at(0) == every[-1] + 3 and flipped.index_of(every[0]) == len(flipped) - 1


def test_new_rows_are_discovered_past_last_seq(store: Store) -> None:
    view = loaded(store, ViewSpec(text="/v1/"))
    before = len(view)
    f = _flow(50, "127.0.0.2", CURL, "GET", "https://api.example.com/v1/new", 200, "text/plain", b"x", b"")
    other = _flow(51, "127.0.0.2", CURL, "GET", "https://api.example.com/other", 200, "text/plain", b"x", b"")
    store.write([(summarize(f), None), (summarize(other), None)])
    change = view.apply(discover_sql(store, view.spec, view.last_seq))
    assert change.added == 1 and change.appended and len(view) == before + 1
    assert discover_sql(store, view.spec, view.last_seq) is None  # nothing new: no query beyond max(seq)


def test_a_committed_row_is_fetched_again_and_a_paused_view_holds_still(store: Store) -> None:
    """The store says which rows it committed once it has them: a cached row among them is fetched again, once."""
    view = loaded(store, ViewSpec())
    first, seq = view.row(0), view.seq_at(0)
    store.write([({**first, "status": 418}, None)])
    assert view.row(0)["status"] == first["status"]  # cached: unchanged until the store says so
    assert view.committed(Committed([(first["id"], seq, "done")])) == {seq}
    assert view.cached(seq) is None and view.row(0)["status"] == 418
    assert view.committed(Committed([("not-cached", 10_000, "done")])) == set()
    assert view.committed(Committed(edited=[seq])) == {seq}  # a user's change (a mark) too

    view.row(0)
    view.frozen = True  # paused: the screen holds still
    assert view.committed(Committed([(first["id"], seq, "done")])) == set() and view.cached(seq) is not None
    view.thaw()
    assert view.cached(seq) is None


def test_deleted_rows_leave_the_view(store: Store) -> None:
    view = loaded(store, ViewSpec())
    gone = view.seq_at(1)
    assert view.remove([gone]) and view.index_of(gone) is None
    assert not view.remove([gone])  # already gone: nothing to redraw


def test_expression_scan_and_live_flows_rechecked(store: Store) -> None:
    spec = ViewSpec(expr="~c 200 & ~d api")
    batches = scanned(store, spec)
    assert batches[-1].done and batches[0].reset
    assert [store.rows([s])[s]["path"] for s in batches[-1].seqs] == ["/v1/users/42", "/v1/report"]
    live_id = next(f.id for f in flows() if f.request.path == "/v1/stream")
    assert live_id in batches[-1].undecided  # it may still match once its response arrives

    done = _flow(11, "127.0.0.2", CURL, "GET", "https://api.example.com/v1/stream", 200, "text/plain", b"", b"")
    done.id = live_id
    store.write([(summarize(done), done.get_state())])
    view = FlowView(store)
    view.begin(spec)
    for b in batches:
        view.apply(b)
    seq = store.seq_of(live_id)
    view.committed(Committed([(live_id, seq, "live")]))
    assert view.recheck == set()  # still live
    view.committed(Committed([(live_id, seq, "done")]))
    assert view.recheck == {live_id}
    view.recheck.clear()  # a scan that read the flow before the store had its finish: the store says it finished
    view.apply(Batch([], view.last_seq, undecided={live_id}))
    assert live_id in view.undecided
    view.finished(store.finished(view.undecided))
    assert view.recheck == {live_id} and live_id not in view.undecided
    for b in scanned(store, spec, view.last_seq, tuple(view.recheck)):
        view.apply(b)
    assert paths(view) == ["/v1/users/42", "/v1/report", "/v1/stream"]


def test_resort_keeps_expression_members(store: Store) -> None:
    spec = ViewSpec(expr="~d example.org", order="path")
    [*_, batch] = scanned(store, spec)
    assert batch.reset  # a non-# order is sorted in SQL at the end of the load
    members = batch.seqs
    assert [store.rows([s])[s]["path"] for s in resort(store, spec, members)] == [
        "/",
        "/logo.png",
        "/search?q=proxy+debugging&page=2",
    ]


def test_layout_drops_columns_to_fit() -> None:
    wide = [c.title for c, _ in layout(COLUMNS, 200, 3)]
    narrow = layout(COLUMNS, 78, 3)
    assert "Type" in wide and "Client" in wide
    assert [c.title for c, _ in narrow] == ["#", "Method", "Host", "Path", "Status", "Size", "Dur"]
    assert sum(w for _, w in narrow) + len(narrow) == 78


@pytest.mark.parametrize(
    ("text", "width", "right", "cell"),
    [
        ("/search?q=proxy", 8, False, "/search…"),
        ("/a", 4, False, "/a  "),
        ("200", 6, True, "   200"),
        ("/abc", 1, False, "/"),
        ("/日本語", 5, False, "/日 …"),  # wide characters count two cells
        ("日本", 4, True, "日本"),
    ],
)
def test_a_cell_is_cut_or_padded_to_its_width(text: str, width: int, right: bool, cell: str) -> None:
    assert fit(text, width, right) == cell


def test_clients_are_named_by_label_then_program_then_user_agent(store: Store) -> None:
    """A client's label first; for a client on this machine, the programs that connected from it (newest first);
    else its User-Agent, by ua-parser ("curl 8.5")."""
    names = ClientNames()
    try:
        assert {r.ip: r.name for r in client_rows(store, names)} == {
            "127.0.0.2": "curl 8.5",
            "127.0.0.3": "Firefox 128 on Linux",
            "10.0.0.7": "Ada's phone",
        }

        def by_program(seq: int, ip: str, process: str) -> tuple[dict, dict]:
            f = _flow(seq, ip, FIREFOX, "GET", f"https://www.example.org/{seq}", 200, "text/plain", b"", b"")
            f.metadata[META_PROCESS] = process
            return summarize(f), f.get_state()

        store.write([by_program(90, "127.0.0.3", "firefox (4242)"), by_program(91, "10.0.0.7", "curl (1)")], [], [])
        named = {r.ip: r.name for r in client_rows(store, names)}
        assert named["127.0.0.3"] == "firefox (4242)" and named["10.0.0.7"] == "Ada's phone"
        store.write([by_program(92, "127.0.0.3", "curl (77)"), by_program(93, "127.0.0.3", "curl (78)")], [], [])
        assert {r.ip: r.name for r in client_rows(store, names)}["127.0.0.3"] == "curl, firefox"  # newer first
    finally:
        names.close()


def test_bodies() -> None:
    f = tflow.tflow(resp=True)
    f.response.headers["content-type"] = "application/json"
    f.response.content = json.dumps({"a": [1, 2]}).encode()
    f.response.encode("gzip")
    body = render_body(f.response, f)
    assert [t.plain for t in body.lines] == ["{", '  "a": [', "    1,", "    2", "  ]", "}"]
    assert body.description.startswith("JSON, 13B, decoded gzip")
    raw = [t.plain for t in render_raw(f.response).lines]
    assert raw[raw.index("") + 1].startswith("0000000000 1f 8b")  # raw: the gzip bytes
    cut = render_body(f.response, f, limit=11)
    assert cut.truncated and [t.plain for t in cut.lines[:2]] == ["{", '  "a": [']
    assert cut.lines[-1].plain == "showing the first 11 characters; press + for more"  # JSON encoded only so far

    f.response.headers["content-encoding"] = "identity"
    f.response.headers["content-type"] = "image/png"
    f.response.content = PNG_BYTES
    assert "3 x 2 px" in " ".join(t.plain for t in render_body(f.response, f).lines)
    f.response.content = bytes(range(20))
    f.response.headers["content-type"] = "application/octet-stream"
    assert render_body(f.response, f).lines[0].plain.startswith("0000000000 00 01 02")

    f.response.raw_content = None
    summary = {"streamed": "response", "response_size": 1234}
    assert render_body(f.response, f, summary=summary).lines[0].plain == (
        "response body not captured (streamed, 1234 bytes)"
    )


@pytest.mark.parametrize(
    ("content_type", "body", "text"),
    [
        ("text/html", '<meta charset="windows-1251"><p>Привет'.encode("cp1251"), "Привет"),  # the page says
        ("text/css", '@charset "koi8-r"; /* Привет */'.encode("koi8-r"), "Привет"),
        ("text/plain", "naïve ✓".encode(), "naïve ✓"),  # named nowhere: UTF-8 first
        ("text/plain", "naïve".encode("latin-1"), "naïve"),  # not UTF-8: latin-1
        ("text/plain; charset=x-unknown", "naïve ✓".encode(), "naïve ✓"),
    ],
)
def test_text_in_the_charset_the_message_names(content_type: str, body: bytes, text: str) -> None:
    f = tflow.tflow(resp=True)
    f.response.headers["content-type"] = content_type
    f.response.content = body
    assert text in " ".join(t.plain for t in render_body(f.response, f, mode="text").lines)


def test_highlighting_matches_rich_and_survives_control_characters() -> None:
    """Spans built by hand land on the same characters as Text.append would put them, control codes or not."""
    source = '{\n  "key\r": "v\x07al",\n  "n": [1, true, null]\n}'
    lines = highlight(source, "json")
    expected = Text()
    for token, value in _lexer("json").get_tokens(strip_control_codes(source)):
        expected.append(value, _THEME.get_style_for_token(token))
    assert [line.plain for line in lines] == [line.plain for line in expected.split("\n")]
    assert [line.markup for line in lines] == [line.markup for line in expected.split("\n")]
    assert any(line.spans for line in lines)


def test_wrapping_prefers_spaces() -> None:
    assert wrap_offsets("aaaa bbbb cccc", 10) == [0, 10]
    assert wrap_offsets("x" * 25, 10) == [0, 10, 20]
    assert wrap_offsets("", 10) == [0]
    assert wrap_offsets("日本語のテキスト", 6) == [0, 3, 6]


def test_in_flight_flows_without_stored_state_are_rechecked_by_full_scans(store: Store) -> None:
    f = _flow(60, "127.0.0.2", CURL, "GET", "https://api.example.com/v1/slow", None, "", b"", b"")
    store.write([(summarize(f), None)])  # as the recorder's request event leaves it: summary only, in flight
    [*_, batch] = scanned(store, ViewSpec(expr="~bs anything"))
    assert f.id in batch.undecided

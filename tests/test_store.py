"""The store's schema across versions: an older store is upgraded when opened for writing and read as it is when not."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from mitmproxy.test import tflow

from proxycap.capture.summary import summarize
from proxycap.storage.schema import ADDED_COLUMNS, SCHEMA_VERSION
from proxycap.storage.store import Store


def _version_1_store(path: Path) -> str:
    """A store as version 1 wrote it: one flow, without the columns version 2 added."""
    store = Store(path)
    f = tflow.tflow(resp=True)
    store.write([(summarize(f), f.get_state())])
    store.close()
    with sqlite3.connect(path) as db:
        for column in ADDED_COLUMNS[2]:
            db.execute(f"ALTER TABLE flows DROP COLUMN {column}")
        db.execute("PRAGMA user_version = 1")
    return f.id


def test_an_older_store_read_only_shows_its_flows_with_the_new_columns_empty(tmp_path: Path) -> None:
    flow_id = _version_1_store(tmp_path / "v1.db")
    store = Store(tmp_path / "v1.db", readonly=True)
    try:
        (row,) = store.iter_rows()
        assert row["id"] == flow_id and row["process"] is None and row["intercepted"] is None
        assert store.load_flow(row["seq"]) is not None
    finally:
        store.close()
    with sqlite3.connect(tmp_path / "v1.db") as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 1  # read-only: left as it was


def test_an_older_store_opened_for_writing_is_upgraded_and_keeps_its_flows(tmp_path: Path) -> None:
    flow_id = _version_1_store(tmp_path / "v1.db")
    store = Store(tmp_path / "v1.db")
    try:
        f = tflow.tflow(resp=True)
        summary = {**summarize(f), "process": "curl (42)"}
        store.write([(summary, f.get_state())])
        rows = list(store.iter_rows())
        assert [r["id"] for r in rows] == [flow_id, f.id]
        assert rows[1]["process"] == "curl (42)"
    finally:
        store.close()
    with sqlite3.connect(tmp_path / "v1.db") as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION

"""The flow store: SQLite (WAL) with indexed summary columns and the full flow, compressed, beside them.

Summaries live in ``flows`` (dense rows, fast to scan and filter); each flow's full mitmproxy state lives in
``flow_data`` (zstd-compressed tnetstring, mitmproxy's own serialisation), read only when a body, replay,
export or a full filter expression needs it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import sqlite3
import threading
import time
from collections.abc import Collection, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import zstandard
from mitmproxy import http
from mitmproxy.io import compat, tnetstring

from proxycap.capture import flowstate
from proxycap.paths import private_file
from proxycap.storage.schema import (
    ADDED_COLUMNS,
    COLUMN_TYPES,
    COLUMNS,
    INSERT,
    LIVE_INDEX,
    REAL_COLUMNS,
    ROW_COLUMNS,
    SCHEMA,
    SCHEMA_VERSION,
    STATES,
    TABLES,
    UPDATE,
    UPDATE_COLUMNS,
)

CONNECTIONS_REMEMBERED = 10_000  # connection versions the writer remembers having written


class StoreError(Exception):
    """A store that cannot be used; the message is one line meant for the user."""


def check_store(path: Path) -> None:
    """Check that captures can be stored at ``path``, creating nothing: an existing store opens, takes a write and
    passes SQLite's quick check; for a new one, the nearest existing folder can be written. StoreError if not."""
    path = path.expanduser()
    if path.exists():
        store = Store(path)
        try:
            store.check_writable()
        finally:
            store.close()
        return
    folder = next(p for p in path.parents if p.exists())
    what = f"store {path}" if folder == path.parent and folder.is_dir() else f"the folder for store {path}"
    if not folder.is_dir():
        raise StoreError(f"cannot create {what}: {folder} is not a folder; choose another --store")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise StoreError(f"cannot create {what}: {folder} is not writable; choose another --store")


@dataclasses.dataclass(slots=True)
class ClientStats:
    ip: str
    label: str | None
    user_agent: str | None
    flows: int
    bytes: int
    errors: int
    first_seen: float | None
    last_seen: float | None
    connections: int


@dataclasses.dataclass(slots=True)
class Query:
    """Filters that SQL can answer from the indexed summary columns."""

    client_ip: str | None = None
    host: str | None = None
    status: int | None = None
    text: str | None = None  # substring of the URL
    marked: bool | None = None
    after_seq: int = 0
    upto_seq: int | None = None  # rows written later are not considered (one consistent cut across queries)
    sql: tuple[str, Sequence[Any]] | None = None  # a translated filter expression (``sqlfilter.to_sql``)
    state: str | None = None  # "live", "done" or "error"
    ids: tuple[str, ...] | None = None  # only these flows

    def where(self) -> tuple[str, list[Any]]:
        clauses, args = ["seq > ?"], [self.after_seq]
        if self.upto_seq is not None:
            clauses.append("seq <= ?")
            args.append(self.upto_seq)
        if self.client_ip:
            clauses.append("client_ip = ?")
            args.append(self.client_ip)
        if self.host:
            clauses.append("host = ?")
            args.append(self.host)
        if self.status is not None:
            clauses.append("status = ?")
            args.append(self.status)
        if self.text:  # LIKE folds ASCII case as lower() would, at half the cost per row
            clauses.append("url LIKE ? ESCAPE '\\'")
            args.append("%" + re.sub(r"([\\%_])", r"\\\1", self.text.lower()) + "%")
        if self.marked is not None:
            clauses.append("marked = ?")
            args.append(int(self.marked))
        if self.sql is not None:
            clauses.append(f"({self.sql[0]})")
            args.extend(self.sql[1])
        if self.state is not None:
            if self.state not in STATES:
                raise ValueError(f"no flow state {self.state!r}")
            clauses.append(f"state = '{self.state}'")  # a literal, so the partial index on live flows applies
        if self.ids is not None:  # one JSON parameter: no limit on how many
            clauses.append("id IN (SELECT value FROM json_each(?))")
            args.append(json.dumps(self.ids))
        return " AND ".join(clauses), args


def encode_state(state: dict[str, Any], compressor: zstandard.ZstdCompressor) -> bytes:
    return compressor.compress(tnetstring.dumps(state))


def decode_state(blob: bytes) -> dict[str, Any]:
    return tnetstring.loads(zstandard.ZstdDecompressor().decompress(blob))


class Store:
    """One connection to a store file. Safe to share between threads (calls are serialised)."""

    def __init__(self, path: str | os.PathLike[str], readonly: bool = False) -> None:
        self.path = Path(path).expanduser()
        self.readonly = readonly
        self._lock = threading.RLock()
        self._compressor = zstandard.ZstdCompressor(level=3)
        self._conn_written: dict[str, dict[str, Any]] = {}  # connection id → the state last written
        self._missing: frozenset[str] = frozenset()  # columns a read-only store of an older schema lacks
        self._db = self._connect()

    # --- opening --------------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        where = f"store {self.path}"
        if self.readonly and not self.path.exists():
            raise StoreError(f"{where} does not exist")
        if not self.readonly and not self.path.exists():
            try:  # before SQLite does: its -wal and -shm files take the store's mode
                private_file(self.path)
            except OSError as e:
                raise StoreError(f"cannot create {where}: {e.strerror}") from None
        uri = f"{self.path.resolve().as_uri()}?mode={'ro' if self.readonly else 'rwc'}"
        try:
            db = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None, timeout=10)
            version = db.execute("PRAGMA user_version").fetchone()[0]
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if not self.readonly:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.DatabaseError as e:
            raise StoreError(self._explain(e)) from None
        if version == 0 and not tables:
            if self.readonly:
                raise StoreError(f"{where} is empty")
            try:
                db.executescript(SCHEMA)
            except sqlite3.DatabaseError as e:
                raise StoreError(self._explain(e)) from None
        elif 0 < version < SCHEMA_VERSION and tables >= TABLES:
            self._upgrade(db, version)
        elif version != SCHEMA_VERSION or not tables >= TABLES:
            db.close()
            if version == 0:
                raise StoreError(f"{where} is an SQLite file but not a proxycap store; choose another --store")
            if version == SCHEMA_VERSION:
                missing = ", ".join(sorted(TABLES - tables))
                raise StoreError(f"{where} is damaged (no {missing} table); move it aside or use another --store")
            raise StoreError(
                f"{where} has schema version {version}, this proxycap reads version {SCHEMA_VERSION}; "
                "open it with a matching proxycap or record into a new --store"
            )
        if not self.readonly:
            try:  # added after version 1 shipped; an index, so older stores simply get it here
                db.execute(LIVE_INDEX)
            except sqlite3.DatabaseError as e:
                raise StoreError(self._explain(e)) from None
        return db

    def _upgrade(self, db: sqlite3.Connection, version: int) -> None:
        """Bring an older store's schema up to date (adding columns only), or read it as it is if read-only."""
        added = [c for v in range(version + 1, SCHEMA_VERSION + 1) for c in ADDED_COLUMNS.get(v, ())]
        if self.readonly:
            self._missing = frozenset(added)
            return
        try:
            db.execute("BEGIN IMMEDIATE")
            for column in added:
                db.execute(f"ALTER TABLE flows ADD COLUMN {column} {COLUMN_TYPES.get(column, 'TEXT')}")
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            db.execute("COMMIT")
        except sqlite3.DatabaseError as e:
            if db.in_transaction:
                db.execute("ROLLBACK")
            db.close()
            raise StoreError(self._explain(e)) from None

    def _explain(self, e: sqlite3.DatabaseError) -> str:
        msg = str(e)
        if "not a database" in msg or "malformed" in msg:
            return (
                f"store {self.path} is corrupt or not a proxycap store ({msg}); move it aside or choose another --store"
            )
        if "readonly" in msg or "unable to open" in msg or "permission" in msg.lower():
            return f"store {self.path} cannot be written ({msg}); check its permissions or choose another --store"
        return f"store {self.path}: {msg}"

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def check_writable(self) -> None:
        """SQLite's quick check of every page, then a write that reaches the file: a store that opens may still be
        damaged, or read-only (a file or mount). StoreError with a one-line reason if not; a damaged store is not
        written to."""
        result = self._read("PRAGMA quick_check(1)")[0][0]
        if result != "ok":
            detail = " ".join(result.replace("*** in database main ***", "").split())
            raise StoreError(f"store {self.path} is damaged ({detail}); move it aside or choose another --store")
        with self._tx() as db:
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                    self._db.execute("COMMIT")
                except BaseException:
                    self._conn_written.clear()  # connections it wrote are gone with it: write them again
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                    raise
            except sqlite3.DatabaseError as e:
                raise StoreError(self._explain(e)) from None

    def _read(self, sql: str, args: Sequence[Any] = ()) -> list[tuple]:
        with self._lock:
            try:
                return self._db.execute(sql, args).fetchall()
            except sqlite3.DatabaseError as e:
                raise StoreError(self._explain(e)) from None

    def _read_many(self, columns: Sequence[str], tail: str, args: Sequence[Any] = ()) -> list[list[Any]]:
        """``SELECT columns tail``, fetched as one JSON document: a single sqlite3 step for the whole result.

        The sqlite3 module releases the GIL around every step, and while the proxy thread is busy each
        re-acquisition waits out its switch interval (5 ms): row by row, a long read slows many times over under
        load (bench/RESULTS.md, "One-step reads").
        """
        # SQLite's JSON prints REALs with 15 digits, cutting an epoch timestamp to 10 µs: send them as text.
        cells = ", ".join(f"iif({c} IS NULL, NULL, printf('%!.17g', {c}))" if c in REAL_COLUMNS else c for c in columns)
        selected = ", ".join(f"NULL AS {c}" if c in self._missing else c for c in columns)
        sql = f"SELECT json_group_array(json_array({cells})) FROM (SELECT {selected} {tail})"
        rows = json.loads(self._read(sql, args)[0][0])
        real = [i for i, c in enumerate(columns) if c in REAL_COLUMNS]
        for row in rows:
            for i in real:
                if row[i] is not None:
                    row[i] = float(row[i])
        return rows

    # --- writing (the store writer's thread) --------------------------------------------------

    def write(
        self,
        flows: Iterable[tuple[dict[str, Any], dict[str, Any] | None]],
        logs: Iterable[tuple[float, str, str, str | None, str | None]] = (),
        clients: Iterable[tuple[str, float, str | None, int]] = (),
    ) -> list[tuple[str, int, str, bool]]:
        """Write one batch in one transaction: flow summaries (+ full state), log lines, client activity.

        ``clients`` rows are (ip, last_seen, user_agent, new_connections). Returns the flows written, as (flow id,
        row id, state, whether the row is new), once they are committed.
        """
        written: list[tuple[str, int, str, bool]] = []
        with self._tx() as db:
            for summary, state in flows:
                row = db.execute(UPDATE, [*(summary.get(c) for c in UPDATE_COLUMNS), summary["id"]]).fetchone()
                new = row is None
                if new:
                    row = db.execute(INSERT, [summary.get(c) for c in COLUMNS]).fetchone()
                written.append((summary["id"], row[0], summary["state"], new))
                if state is not None:
                    rest, client, server = flowstate.split(flowstate.without_credentials(state))
                    self._write_connection(db, client)
                    self._write_connection(db, server)
                    db.execute(
                        "INSERT OR REPLACE INTO flow_data (seq, flow, client_conn, server_conn) VALUES (?, ?, ?, ?)",
                        (row[0], encode_state(rest, self._compressor), client["id"], server["id"]),
                    )
            db.executemany("INSERT INTO events (ts, level, message, client_ip, flow_id) VALUES (?, ?, ?, ?, ?)", logs)
            db.executemany(
                "INSERT INTO clients (ip, first_seen, last_seen, user_agent, connections) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT(ip) DO UPDATE SET last_seen = max(last_seen, excluded.last_seen), "
                "user_agent = coalesce(excluded.user_agent, user_agent), "
                "connections = connections + excluded.connections",
                ((ip, ts, ts, ua, n) for ip, ts, ua, n in clients),
            )
        return written

    def _write_connection(self, db: sqlite3.Connection, state: dict[str, Any]) -> None:
        """Store a connection's state once per version (a keep-alive connection carries many flows)."""
        if self._conn_written.get(state["id"]) == state:
            return
        db.execute(
            "INSERT OR REPLACE INTO connections (id, state) VALUES (?, ?)",
            (state["id"], encode_state(state, self._compressor)),
        )
        self._conn_written[state["id"]] = state
        if len(self._conn_written) > CONNECTIONS_REMEMBERED:
            del self._conn_written[next(iter(self._conn_written))]

    def set_label(self, ip: str, label: str | None) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO clients (ip, label, first_seen, last_seen) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(ip) DO UPDATE SET label = excluded.label",
                (ip, label or None, time.time(), time.time()),
            )

    def set_marked(self, seqs: Iterable[int], marked: bool) -> None:
        with self._tx() as db:
            db.executemany("UPDATE flows SET marked = ? WHERE seq = ?", ((int(marked), s) for s in seqs))

    def delete(self, seqs: Iterable[int]) -> None:
        with self._tx() as db:
            seqs = list(seqs)
            db.executemany("DELETE FROM flows WHERE seq = ?", ((s,) for s in seqs))
            db.executemany("DELETE FROM flow_data WHERE seq = ?", ((s,) for s in seqs))

    # --- reading --------------------------------------------------------------------------------

    def count(self, query: Query | None = None) -> int:
        where, args = (query or Query()).where()
        return self._read(f"SELECT count(*) FROM flows WHERE {where}", args)[0][0]

    def seqs(
        self, query: Query | None = None, order: str = "seq", descending: bool = False, limit: int | None = None
    ) -> list[int]:
        """The ordered row ids of a view (the first ``limit`` of them): what the UI's virtual list indexes."""
        if order not in ROW_COLUMNS:
            raise ValueError(f"cannot sort by {order!r}")
        query = query or Query()
        if order == "seq" and limit is None and (span := self.span(query)) is not None:
            return list(reversed(span) if descending else span)
        where, args = query.where()
        direction = "DESC" if descending else "ASC"
        ordered = f"SELECT seq FROM flows WHERE {where} ORDER BY {order} {direction}, seq {direction}"
        if limit is not None:
            ordered += f" LIMIT {int(limit)}"
        sql = f"SELECT group_concat(seq) FROM ({ordered})"
        joined = self._read(sql, args)[0][0]  # one step, not one per row (see _read_many)
        return list(map(int, joined.split(","))) if joined else []

    def span(self, query: Query) -> range | None:
        """Every row id, without reading the rows, if none was ever deleted (row ids are handed out in order):
        scanning for the unfiltered list of a big store is slow (bench/RESULTS.md, "Key frames"). Only for the
        whole table: a tail (the UI's tick asks for rows after the last it saw) is a cheap range read, cheaper
        than counting the table."""
        if dataclasses.replace(query, after_seq=0, upto_seq=None) != Query():
            return None
        # Subqueries: each is then one of SQLite's shortcuts (a b-tree edge, a page count), not a scan.
        lo, hi = self._read("SELECT (SELECT min(seq) FROM flows), (SELECT max(seq) FROM flows)")[0]
        if lo is None:
            return range(0)
        if query.after_seq >= lo or (query.upto_seq is not None and query.upto_seq < hi):
            return None
        n = self._read("SELECT count(*) FROM flows")[0][0]
        return range(lo, hi + 1) if n == hi - lo + 1 else None

    def rows(self, seqs: Sequence[int]) -> dict[int, dict[str, Any]]:
        """Summaries for the given row ids (the visible slice of a view)."""
        out: dict[int, dict[str, Any]] = {}
        for start in range(0, len(seqs), 500):
            chunk = seqs[start : start + 500]
            for row in self._read_many(ROW_COLUMNS, f"FROM flows WHERE seq IN ({', '.join('?' * len(chunk))})", chunk):
                out[row[0]] = dict(zip(ROW_COLUMNS, row, strict=True))
        return out

    def iter_rows(self, query: Query | None = None, limit: int | None = None) -> Iterator[dict[str, Any]]:
        """Summaries in capture order, fetched in pages so a huge store never sits in memory at once."""
        query = query or Query()
        seen = 0
        while limit is None or seen < limit:
            where, args = query.where()
            page = min(1000, limit - seen) if limit is not None else 1000
            rows = self._read_many(ROW_COLUMNS, f"FROM flows WHERE {where} ORDER BY seq LIMIT ?", [*args, page])
            if not rows:
                return
            for row in rows:
                yield dict(zip(ROW_COLUMNS, row, strict=True))
            seen += len(rows)
            query = dataclasses.replace(query, after_seq=rows[-1][0])

    def load_flow(self, seq: int) -> http.HTTPFlow | None:
        """The full flow as mitmproxy knows it (bodies included), or None if only its summary was kept."""
        rows = self._read(
            "SELECT d.flow, c.state, s.state FROM flow_data AS d "
            "LEFT JOIN connections AS c ON c.id = d.client_conn LEFT JOIN connections AS s ON s.id = d.server_conn "
            "WHERE d.seq = ?",
            (seq,),
        )
        if not rows or rows[0][1] is None or rows[0][2] is None:
            return None
        state = flowstate.join(*(decode_state(blob) for blob in rows[0]))
        return http.HTTPFlow.from_state(compat.migrate_flow(state))

    def distinct(self, column: str, query: Query) -> list[Any]:
        """The distinct values of a column (or SQL expression over the columns) in a query's rows, in one step."""
        where, args = query.where()
        # SELECT DISTINCT may walk the column's index: faster over a whole store, but for the few live flows far
        # slower than flows_live (bench/RESULTS.md, "SQL filters").
        if query.state is None:
            sql = f"SELECT json_group_array(v) FROM (SELECT DISTINCT {column} AS v FROM flows WHERE {where})"
        else:
            sql = f"SELECT json_group_array(DISTINCT v) FROM (SELECT {column} AS v FROM flows WHERE {where})"
        return json.loads(self._read(sql, args)[0][0])

    def ids(self, query: Query) -> list[str]:
        """The flow ids a query selects (for the few rows a live view keeps watching)."""
        where, args = query.where()
        return [r[0] for r in self._read_many(["id"], f"FROM flows WHERE {where}", args)]

    def finished(self, flow_ids: Collection[str]) -> list[str]:
        """Those of ``flow_ids`` whose stored state is no longer live (a view re-checks them against its filter)."""
        if not flow_ids:
            return []
        sql = "FROM flows WHERE id IN (SELECT value FROM json_each(?)) AND state != 'live'"
        return [r[0] for r in self._read_many(["id"], sql, [json.dumps(list(flow_ids))])]

    def seq_of(self, flow_id: str) -> int | None:
        rows = self._read("SELECT seq FROM flows WHERE id = ?", (flow_id,))
        return rows[0][0] if rows else None

    def https_answered(self) -> bool:
        """Whether some HTTPS flow got a response: then a device trusts proxycap's CA (the UI's hint goes away)."""
        sql = "SELECT 1 FROM flows WHERE scheme = 'https' AND status IS NOT NULL AND error IS NULL LIMIT 1"
        return bool(self._read(sql))

    def clients(self) -> list[ClientStats]:
        rows = self._read(
            "SELECT f.client_ip, c.label, c.user_agent, f.n, f.bytes, f.errors, "
            "coalesce(c.first_seen, f.first), coalesce(c.last_seen, f.last), coalesce(c.connections, 0) "
            "FROM (SELECT client_ip, count(*) AS n, "
            "      sum(coalesce(request_size, 0) + coalesce(response_size, 0)) AS bytes, "
            "      sum(error IS NOT NULL OR status >= 500) AS errors, min(ts) AS first, max(ts) AS last "
            "      FROM flows GROUP BY client_ip) AS f "
            "LEFT JOIN clients AS c ON c.ip = f.client_ip ORDER BY f.client_ip"
        )
        return [ClientStats(*r) for r in rows]

    def labels(self) -> dict[str, str]:
        return {ip: label for ip, label in self._read("SELECT ip, label FROM clients WHERE label IS NOT NULL")}

    def events(self, limit: int = 1000) -> list[tuple[float, str, str, str | None, str | None]]:
        rows = self._read_many(
            ["ts", "level", "message", "client_ip", "flow_id"], "FROM events ORDER BY id DESC LIMIT ?", (limit,)
        )
        return [tuple(r) for r in reversed(rows)]

    def max_seq(self) -> int:
        """The newest row id (0 when empty): lets a live view ask only for rows it has not seen yet."""
        return self._read("SELECT coalesce(max(seq), 0) FROM flows")[0][0]

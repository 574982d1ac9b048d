"""The store's schema: its tables, the summary columns of ``flows`` and their types, and the statements that write
them; what each schema version added, for upgrading older stores."""

from __future__ import annotations

from proxycap.capture.summary import FIELDS

SCHEMA_VERSION = 2
# Columns each schema version added to ``flows``: an older store gets them when opened for writing, and a read-only
# one reads them as NULL.
ADDED_COLUMNS = {2: ("process", "source", "modified", "intercepted")}
TABLES = frozenset({"flows", "flow_data", "connections", "clients", "events"})  # what a store must have

# Summary columns stored as-is; `seq` (the row's order, shown as "#") and `marked` are the store's own.
COLUMN_TYPES = {
    "ts": "REAL",
    "client_port": "INTEGER",
    "port": "INTEGER",
    "status": "INTEGER",
    "request_size": "INTEGER",
    "response_size": "INTEGER",
    "duration_ms": "REAL",
    "connect_ms": "REAL",
    "tls_ms": "REAL",
    "ttfb_ms": "REAL",
    "websocket": "INTEGER",
    "ws_messages": "INTEGER",
    "intercepted": "INTEGER",
}
COLUMNS: tuple[str, ...] = FIELDS
REAL_COLUMNS = frozenset(c for c, t in COLUMN_TYPES.items() if t == "REAL")
ROW_COLUMNS: tuple[str, ...] = ("seq", *COLUMNS, "marked")

SCHEMA = f"""
CREATE TABLE flows (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    {", ".join(f"{c} {COLUMN_TYPES.get(c, 'TEXT')}" + (" UNIQUE NOT NULL" if c == "id" else "") for c in COLUMNS)},
    marked INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX flows_client ON flows (client_ip, seq);
CREATE INDEX flows_host ON flows (host, seq);
CREATE INDEX flows_status ON flows (status, seq);
CREATE TABLE flow_data (seq INTEGER PRIMARY KEY, flow BLOB NOT NULL, client_conn TEXT, server_conn TEXT);
CREATE TABLE connections (id TEXT PRIMARY KEY, state BLOB NOT NULL);
CREATE TABLE clients (
    ip TEXT PRIMARY KEY,
    label TEXT,
    user_agent TEXT,
    first_seen REAL,
    last_seen REAL,
    connections INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    level TEXT NOT NULL,
    message TEXT NOT NULL,
    client_ip TEXT,
    flow_id TEXT
);
PRAGMA user_version = {SCHEMA_VERSION};
"""

# The few flows still in flight, which expression filters look at again once they finish. A partial index only
# serves queries that name its condition literally: see Query.where.
LIVE_INDEX = "CREATE INDEX IF NOT EXISTS flows_live ON flows (seq) WHERE state = 'live'"
STATES = ("live", "done", "error")

INSERT = f"INSERT INTO flows ({', '.join(COLUMNS)}) VALUES ({', '.join('?' for _ in COLUMNS)}) RETURNING seq"
# Update before insert: an upsert would burn an AUTOINCREMENT number on every update, leaving gaps in "#".
UPDATE = (
    f"UPDATE flows SET {', '.join(f'{c} = ?' for c in COLUMNS if c not in ('id', 'ts'))} WHERE id = ? RETURNING seq"
)
UPDATE_COLUMNS = tuple(c for c in COLUMNS if c not in ("id", "ts"))

"""The recorder's cheap snapshot must be exactly mitmproxy's own ``get_state``."""

from __future__ import annotations

from mitmproxy.test import tflow

from proxycap.capture.flowstate import ConnectionStates, join, split
from proxycap.internals.mitmproxy import snapshot


def test_snapshot_equals_get_state_and_follows_changes() -> None:
    conns = ConnectionStates()
    f = tflow.tflow(resp=True)
    assert snapshot(f, conns) == f.get_state()
    f.server_conn.timestamp_end = f.server_conn.timestamp_start + 5  # the connection closed meanwhile
    f.client_conn.sni = "changed.example"
    assert snapshot(f, conns) == f.get_state()
    assert snapshot(f, conns)["client_conn"]["sni"] == "changed.example"


def test_split_and_join_round_trip() -> None:
    state = tflow.tflow(resp=True, err=True).get_state()
    rest, client, server = split(state)
    assert "client_conn" not in rest and client["id"] and server["id"]
    assert join(rest, client, server) == state

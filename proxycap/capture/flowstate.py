"""Cheap snapshots of a flow's state for the store, on the proxy's hot path.

``flow.get_state()`` spends most of its time re-serialising the client and server connections (generic,
introspective dataclass code), although a keep-alive connection carries many flows and rarely changes.
The recorder keeps each live connection's state and recomputes it only when the connection changed
(``internals.mitmproxy.snapshot`` takes a flow's state with them); the store keeps connections in a table of their
own, once per version, instead of inside every flow.
"""

from __future__ import annotations

from typing import Any

from mitmproxy import connection

State = dict[str, Any]


def _version(conn: connection.Connection) -> tuple:
    """What changes over a connection's life (setup, TLS, errors, close); equal tuples mean equal states."""
    return (
        conn.state,
        conn.error,
        conn.sni,
        conn.tls_version,
        conn.alpn,
        len(conn.certificate_list),
        conn.timestamp_start,
        conn.timestamp_tls_setup,
        conn.timestamp_end,
        conn.peername,
        (conn.address, conn.timestamp_tcp_setup) if isinstance(conn, connection.Server) else None,
    )


class ConnectionStates:
    """Per live connection: its last state and the version it was taken at."""

    def __init__(self) -> None:
        self._states: dict[str, tuple[tuple, State]] = {}

    def get(self, conn: connection.Connection) -> State:
        version = _version(conn)
        cached = self._states.get(conn.id)
        if cached is None or cached[0] != version:
            cached = self._states[conn.id] = (version, conn.get_state())
        return cached[1]

    def forget(self, conn: connection.Connection) -> None:
        self._states.pop(conn.id, None)


def split(state: State) -> tuple[State, State, State]:
    """A flow's state → (the flow without its connections, client connection, server connection)."""
    rest = dict(state)
    return rest, rest.pop("client_conn"), rest.pop("server_conn")


def join(rest: State, client: State, server: State) -> State:
    return {**rest, "client_conn": client, "server_conn": server}


PROXY_CREDENTIALS = b"proxy-authorization"


def without_credentials(state: State) -> State:
    """A flow's state without proxy credentials, which are never stored: the client's ``Proxy-Authorization`` header,
    right or wrong (mitmproxy's proxyauth removes only a right one), one added for an upstream proxy, and the user and
    password proxyauth keeps in the metadata. ``state`` itself is left as it is."""
    request = state.get("request")
    headers = request.get("headers", ()) if request else ()
    if any(name.lower() == PROXY_CREDENTIALS for name, _ in headers):
        kept = tuple((name, value) for name, value in headers if name.lower() != PROXY_CREDENTIALS)
        state = {**state, "request": {**request, "headers": kept}}
    metadata = state.get("metadata")
    if metadata and "proxyauth" in metadata:
        state = {**state, "metadata": {k: v for k, v in metadata.items() if k != "proxyauth"}}
    return state

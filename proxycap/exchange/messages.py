"""What the formats share about messages: bodies as sent, flows built from what a file says, and the times it gives.
(Bodies as text or bytes: ``query.bodies``.)"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Any

from mitmproxy import connection, http
from mitmproxy.net import encoding

from proxycap.capture.summary import META_STREAMED

_FRACTION = re.compile(r"(\.\d{6})\d+")


def parse_time(text: str, naive_utc: bool) -> float:
    """An ISO 8601 time as the formats' writers spell it: ``Z`` or an offset (with or without a colon), up to 7
    decimals (.NET's). Without an offset, UTC if ``naive_utc``, else this machine's local time. ValueError if it is
    none."""
    clean = _FRACTION.sub(r"\1", text.strip()).replace("Z", "+00:00")
    when = datetime.fromisoformat(re.sub(r"([+-]\d\d)(\d\d)$", r"\1:\2", clean))
    if when.tzinfo:
        return when.timestamp()
    return (when.replace(tzinfo=UTC) if naive_utc else when.astimezone()).timestamp()


def encode_as_sent(headers: http.Headers, content: bytes) -> bytes:
    """A decoded body encoded again as its Content-Encoding says (as it was transferred), or as it is if that
    encoding is unknown."""
    ce = headers.get("content-encoding", "").strip()
    if not ce or ce == "identity":
        return content
    try:
        return encoding.encode(content, ce)
    except ValueError:
        return content


def client_connection(address: tuple[str, int] | None, start: float) -> connection.Client:
    """A client connection that was not captured here: mitmproxy requires an address; unknown, it is empty."""
    return connection.Client(peername=address or ("", 0), sockname=("", 0), timestamp_start=start)


def server_connection(address: tuple[str, int] | None) -> connection.Server:
    return connection.Server(address=address, peername=address)


def new_flow(
    request: http.Request,
    client: connection.Client | None = None,
    server: connection.Server | None = None,
) -> http.HTTPFlow:
    """A flow around a request that was not captured here (read from a file, or written in the composer), on the
    given connections, or on new ones that say nothing."""
    flow = http.HTTPFlow(
        client or client_connection(None, request.timestamp_start or time.time()), server or server_connection(None)
    )
    flow.request = request
    return flow


def not_captured(flow: http.HTTPFlow, which: str, size: int | None) -> None:
    """Mark a body the file does not hold, as a capture marks a streamed one (the UI then says so)."""
    streamed: dict[str, Any] = flow.metadata.setdefault(META_STREAMED, {})
    streamed[which] = size


def is_chunked(headers: http.Headers) -> bool:
    return "chunked" in headers.get("transfer-encoding", "").lower()

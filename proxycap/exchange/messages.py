"""What the formats share about messages: bodies as text or bytes, and flows built from what a file says."""

from __future__ import annotations

import codecs
import re
import time
from typing import Any

from mitmproxy import connection, http
from mitmproxy.net import encoding
from mitmproxy.net.http.headers import parse_content_type

from proxycap.capture.summary import META_STREAMED

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")  # what text does not hold (tabs and line ends it does)
_CONTROL_BYTES = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def charset(content_type: str) -> str:
    """The declared charset if Python knows it, else UTF-8 (what JSON and most text on the web is)."""
    parsed = parse_content_type(content_type) if content_type else None
    name = parsed[2].get("charset", "") if parsed else ""
    try:
        return codecs.lookup(name).name if name else "utf-8"
    except LookupError:
        return "utf-8"


def body_text(data: bytes, content_type: str) -> str | None:
    """``data`` as text in its charset, if it is text and encodes back to exactly the same bytes; else None
    (it then travels as base64, or as a file beside a command)."""
    if _CONTROL_BYTES.search(data, 0, 4096):
        return None
    cs = charset(content_type)
    try:
        text = data.decode(cs)
    except UnicodeDecodeError:
        return None
    if _CONTROL.search(text) or text.encode(cs) != data:
        return None
    return text


def text_bytes(text: str, content_type: str) -> bytes:
    """``body_text`` undone: text in its declared charset (UTF-8 where a character does not fit)."""
    try:
        return text.encode(charset(content_type))
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape")


def decoded(message: http.Message) -> tuple[bytes | None, bool]:
    """The body with its Content-Encoding undone, and whether it was (False: the raw bytes, which could not be
    decoded). None if the body was not captured."""
    if message.raw_content is None:
        return None, False
    try:
        return message.get_content(strict=True), True
    except ValueError:
        return message.raw_content, False


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

"""Message bodies as text or bytes: decoded as sent, and text only where it round-trips to the same bytes."""

from __future__ import annotations

import codecs
import re

from mitmproxy import http
from mitmproxy.net.http.headers import parse_content_type

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

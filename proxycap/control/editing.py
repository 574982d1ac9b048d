"""Messages as editable text and back (Fiddler's composer on a captured session, mitmproxy's edit-then-replay, a
flow stopped at a breakpoint).

A request is edited as text: ``METHOD URL HTTP/VERSION``, one ``Name: value`` line per header, a blank line, the
body; a response the same way from its status line, ``HTTP/VERSION STATUS REASON``. Only a text body can be edited;
a binary one is replayed as captured (``R``) or sent on unchanged.
"""

from __future__ import annotations

import re

from mitmproxy import http
from mitmproxy.net.http import url as urls

_METHOD = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP token (RFC 9110)
_VERSION = re.compile(r"HTTP/\d(\.\d)?")
_STATUS = re.compile(r"[1-5]\d\d")


class EditError(ValueError):
    """Why the edited text is not a request (or response), in one line."""


def _text(message: http.Message, first_line: str, binary: str) -> str:
    try:
        body = message.get_text() if message.raw_content else ""
    except ValueError:  # compressed in a way mitmproxy cannot decode
        body = None
    # mitmproxy falls back to Latin-1, which decodes any bytes: control characters tell binary from text.
    if body is None or any(c < " " and c not in "\t\n\r" for c in body):
        raise EditError(f"its body is not text: {binary}")
    head = [first_line, *(f"{name}: {value}" for name, value in message.headers.items(multi=True))]
    return "\n".join(head) + "\n\n" + body


def _parse(text: str) -> tuple[str, list[tuple[str, str]], str]:
    """Text → (first line, headers, body); EditError if a header line is not one."""
    head, _, body = text.replace("\r\n", "\n").partition("\n\n")
    first, *lines = head.split("\n")
    headers = []
    for line in filter(None, lines):
        name, colon, value = line.partition(":")
        if not colon or not name.strip():
            raise EditError(f"a header line must be Name: value, not {line!r}")
        headers.append((name.strip(), value.strip()))
    return first, headers, body


def _fill(message: http.Message, headers: list[tuple[str, str]]) -> None:
    message.headers.clear()
    for name, value in headers:
        message.headers.add(name, value)


def request_text(request: http.Request) -> str:
    """The request as editable text; EditError if its body is not text."""
    return _text(request, f"{request.method} {request.url} {request.http_version}", "replay it as captured with R")


def edited(request: http.Request | None, text: str) -> http.Request:
    """A copy of ``request`` with the edited method, URL, version, headers and body; EditError if unreadable.
    Without a request (the composer), a new one made from the text alone."""
    first, headers, body = _parse(text)
    parts = first.split()
    if len(parts) != 3 or not _METHOD.fullmatch(parts[0]) or not _VERSION.fullmatch(parts[2]):
        raise EditError(f"the first line must be METHOD URL HTTP/VERSION, not {first!r}")
    new = request.copy() if request is not None else http.Request.make(parts[0], "http://localhost/")
    new.method, new.http_version = parts[0], parts[2]
    try:
        new.url = parts[1]
    except ValueError as e:
        raise EditError(f"bad URL {parts[1]!r}: {e}") from None
    _fill(new, headers)
    if "host" not in new.headers:  # dropped in the editor: the origin needs one, as a browser would send it
        new.headers.insert(0, "Host", urls.hostport(new.scheme, new.host, new.port))
    new.text = body  # encoded as the headers say (charset, Content-Encoding); Content-Length follows
    return new


def response_text(response: http.Response) -> str:
    """The response as editable text; EditError if its body is not text."""
    first = f"{response.http_version} {response.status_code} {response.reason}".rstrip()
    return _text(response, first, "send it on unchanged")


def edited_response(response: http.Response, text: str) -> http.Response:
    """A copy of ``response`` with the edited version, status, reason, headers and body; EditError if unreadable."""
    first, headers, body = _parse(text)
    parts = first.split(None, 2)
    if len(parts) < 2 or not _VERSION.fullmatch(parts[0]) or not _STATUS.fullmatch(parts[1]):
        raise EditError(f"the first line must be HTTP/VERSION STATUS REASON, not {first!r}")
    new = response.copy()
    new.http_version, new.status_code = parts[0], int(parts[1])
    new.reason = parts[2] if len(parts) == 3 else ""
    _fill(new, headers)
    new.text = body
    return new

"""Messages as editable text and back (Fiddler's composer on a captured session, mitmproxy's edit-then-replay).

A request is edited as text: ``METHOD URL HTTP/VERSION``, one ``Name: value`` line per header, a blank line, the
body. Only a text body can be edited; a binary one is replayed as captured (``R``).
"""

from __future__ import annotations

import re

from mitmproxy import http
from mitmproxy.net.http import url as urls

_METHOD = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP token (RFC 9110)
_VERSION = re.compile(r"HTTP/\d(\.\d)?")


class EditError(ValueError):
    """Why the edited text is not a request, in one line."""


def request_text(request: http.Request) -> str:
    """The request as editable text; EditError if its body is not text."""
    try:
        body = request.get_text() if request.raw_content else ""
    except ValueError:  # compressed in a way mitmproxy cannot decode
        body = None
    # mitmproxy falls back to Latin-1, which decodes any bytes: control characters tell binary from text.
    if body is None or any(c < " " and c not in "\t\n\r" for c in body):
        raise EditError("its body is not text: replay it as captured with R")
    head = [f"{request.method} {request.url} {request.http_version}"]
    head += [f"{name}: {value}" for name, value in request.headers.items(multi=True)]
    return "\n".join(head) + "\n\n" + body


def edited(request: http.Request | None, text: str) -> http.Request:
    """A copy of ``request`` with the edited method, URL, version, headers and body; EditError if unreadable.
    Without a request (the composer), a new one made from the text alone."""
    head, _, body = text.replace("\r\n", "\n").partition("\n\n")
    first, *lines = head.split("\n")
    parts = first.split()
    if len(parts) != 3 or not _METHOD.fullmatch(parts[0]) or not _VERSION.fullmatch(parts[2]):
        raise EditError(f"the first line must be METHOD URL HTTP/VERSION, not {first!r}")
    new = request.copy() if request is not None else http.Request.make(parts[0], "http://localhost/")
    new.method, new.http_version = parts[0], parts[2]
    try:
        new.url = parts[1]
    except ValueError as e:
        raise EditError(f"bad URL {parts[1]!r}: {e}") from None
    new.headers.clear()
    for line in filter(None, lines):
        name, colon, value = line.partition(":")
        if not colon or not name.strip():
            raise EditError(f"a header line must be Name: value, not {line!r}")
        new.headers.add(name.strip(), value.strip())
    if "host" not in new.headers:  # dropped in the editor: the origin needs one, as a browser would send it
        new.headers.insert(0, "Host", urls.hostport(new.scheme, new.host, new.port))
    new.text = body  # encoded as the headers say (charset, Content-Encoding); Content-Length follows
    return new

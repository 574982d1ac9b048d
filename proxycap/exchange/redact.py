"""Secrets out of a capture before it is shared: the values of Authorization, Proxy-Authorization, Cookie and
Set-Cookie headers, and of headers, query parameters, form fields and JSON fields (request and response bodies,
WebSocket messages) whose names say token, key, secret, password, session, signature and the like, become
``REDACTED``. Names and structure stay, so the capture still reads the same; each function counts what it replaced.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import unquote_plus

from mitmproxy import http

REDACTED = "REDACTED"

# Words of a name (split at separators and camelCase) that mark its value as secret, and endings of names glued
# together ("accesstoken", "clientsecret").
_SECRET_WORDS = frozenset({
    "token", "secret", "password", "passwd", "pwd", "pass", "passphrase", "key", "apikey", "auth", "authorization",
    "session", "sessionid", "sid", "credential", "credentials", "signature", "sig", "cookie", "jwt", "otp", "csrf",
    "xsrf",
})  # fmt: skip
_SECRET_ENDINGS = ("token", "secret", "password", "passwd", "apikey", "sessionid")
_WORD = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")
_AUTH_HEADERS = frozenset({"authorization", "proxy-authorization"})


def sensitive(name: str) -> bool:
    """Whether a header, parameter or field of this name holds a secret."""
    words = [w.lower() for w in _WORD.findall(name)]
    return any(w in _SECRET_WORDS or w.endswith(_SECRET_ENDINGS) for w in words)


def redact_flow(flow: http.HTTPFlow) -> int:
    """Redact ``flow`` in place (headers, URL query, bodies, WebSocket messages); the number of values replaced."""
    n = _headers(flow.request.headers)
    path, query_mark, query = flow.request.path.partition("?")
    if query_mark:
        query, m = redact_query(query)
        if m:
            flow.request.path = f"{path}?{query}"
            n += m
    n += _body(flow.request)
    if flow.response is not None:
        n += _headers(flow.response.headers) + _body(flow.response)
    if flow.websocket is not None:
        for message in flow.websocket.messages:
            if message.is_text:
                text, m = _json_text(message.text)
                if m:
                    message.text, n = text, n + m
    return n


def redact_row(row: dict[str, Any]) -> int:
    """Redact a summary row in place (its URL's query), as ``proxycap flows --json`` prints it."""
    n = 0
    for key in ("url", "path"):
        value = row.get(key)
        if isinstance(value, str) and "?" in value:
            head, _, query = value.partition("?")
            query, m = redact_query(query)
            row[key] = f"{head}?{query}"
            n = max(n, m)  # the same parameters, counted once
    return n


def redact_query(query: str) -> tuple[str, int]:
    """A query string or form body with the values of secret parameters replaced, everything else as it was."""
    n = 0
    parts = query.split("&")
    for i, part in enumerate(parts):
        name, eq, value = part.partition("=")
        if eq and value and sensitive(unquote_plus(name)):
            parts[i] = f"{name}={REDACTED}"
            n += 1
    return "&".join(parts), n


_PARAM = re.compile(r"(^|[?&;])([^=&?#;\s]+)=([^&#;\s\"']*)")


def redact_params(text: str) -> tuple[str, int]:
    """Text (a header value, a JSON string) with the values of secret query parameters in it replaced: URLs with
    a token (Referer, Location, links in a body) and query strings."""
    n = 0

    def replace(m: re.Match[str]) -> str:
        nonlocal n
        if not m[3] or m[3] == REDACTED or not sensitive(unquote_plus(m[2])):
            return m[0]
        n += 1
        return f"{m[1]}{m[2]}={REDACTED}"

    return (_PARAM.sub(replace, text) if "=" in text else text), n


def redact_json(value: Any) -> tuple[Any, int]:
    """A parsed JSON document with the values of secret keys replaced (whole, whatever they hold), and secrets in
    its strings too: query parameters, JSON documents held as text."""
    if isinstance(value, str):
        if value.lstrip()[:1] in ("{", "["):
            text, n = _json_text(value)
            if n:
                return text, n
        return redact_params(value)
    if isinstance(value, dict):
        n = 0
        out = {}
        for key, item in value.items():
            if isinstance(key, str) and sensitive(key) and item not in (None, "", REDACTED):
                out[key], n = REDACTED, n + 1
            else:
                out[key], m = redact_json(item)
                n += m
        return out, n
    if isinstance(value, list):
        n = 0
        items = []
        for item in value:
            item, m = redact_json(item)
            items.append(item)
            n += m
        return items, n
    return value, 0


def _headers(headers: http.Headers) -> int:
    n = 0
    for i, (name, value) in enumerate(headers.items(multi=True)):
        lower = name.lower()
        if not value or value == REDACTED:
            continue
        if lower in _AUTH_HEADERS:
            scheme, space, _ = value.partition(" ")
            new = f"{scheme} {REDACTED}" if space and scheme.isalpha() else REDACTED
        elif lower == "cookie":
            new = "; ".join(_cookie(c) for c in value.split(";"))
        elif lower == "set-cookie":
            first, semi, attrs = value.partition(";")
            new = _cookie(first) + semi + attrs
        elif sensitive(name):
            new = REDACTED
        else:
            new, m = redact_params(value)
            if not m:
                continue
        if new != value:
            headers.fields = (*headers.fields[:i], (headers.fields[i][0], new.encode()), *headers.fields[i + 1 :])
            n += 1 if lower != "cookie" else value.count(";") + 1
    return n


def _cookie(pair: str) -> str:
    name, eq, _ = pair.strip().partition("=")
    return f"{name}={REDACTED}" if eq else pair.strip()


def _body(message: http.Message) -> int:
    if not message.raw_content:
        return 0
    ctype = message.headers.get("content-type", "").lower()
    try:
        text = message.get_text(strict=True)
    except ValueError:
        return 0
    if text is None:
        return 0
    if "x-www-form-urlencoded" in ctype:
        new, n = redact_query(text)
    elif "json" in ctype or text.lstrip()[:1] in ("{", "["):
        new, n = _json_text(text)
    else:
        return 0
    if n:
        message.text = new
    return n


def _json_text(text: str) -> tuple[str, int]:
    try:
        doc = json.loads(text)
    except ValueError:
        return text, 0
    doc, n = redact_json(doc)
    return (json.dumps(doc, ensure_ascii=False), n) if n else (text, 0)

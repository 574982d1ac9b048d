"""The composer: a request written from scratch in the request editor (``control.editing``'s text format), sent
as a new flow."""

from __future__ import annotations

from mitmproxy import http

from proxycap import __version__
from proxycap.exchange.messages import new_flow


def composer_template(url: str = "https://example.com/") -> str:
    """An empty request to edit: a GET of ``url`` with a couple of usual headers. No Host header: the editor adds
    one from the URL, so changing the URL is enough."""
    return f"GET {url} HTTP/1.1\nUser-Agent: proxycap/{__version__}\nAccept: */*\n\n"


def composed_flow(request: http.Request) -> http.HTTPFlow:
    """A flow for a request that was not captured (``control.editing.edited(None, text)``), for the engine's
    replay to send: it has no client connection of its own."""
    return new_flow(request)

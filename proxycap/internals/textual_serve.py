"""Where proxycap leans on textual-serve's internals (its server's app factory and hooks); tests/test_web.py shows
the page, its assets and its WebSocket still served as textual-serve serves them, below the token's path."""

from __future__ import annotations

from aiohttp import web
from textual_serve.server import Server


class TokenServer(Server):
    """textual-serve's server (one app process per browser tab), under a path only those given the token know: the
    page, its assets and its WebSocket all live below ``/TOKEN/``, and anything else is refused with 403. Quiet: the
    caller says where it serves; textual-serve's own logging and banner stay out of the terminal."""

    def __init__(self, command: str, host: str, port: int, token: str, title: str) -> None:
        super().__init__(command, host=host, port=port, title=title)
        self.token = token

    def initialize_logging(self) -> None:
        pass

    async def on_startup(self, app: web.Application) -> None:
        pass

    async def _make_app(self) -> web.Application:
        root = web.Application()
        root.add_subapp(f"/{self.token}/", await super()._make_app())

        async def refused(request: web.Request) -> web.Response:
            raise web.HTTPForbidden(text="proxycap: this address needs the URL with its token\n")

        root.router.add_route("*", "/{tail:.*}", refused)
        return root

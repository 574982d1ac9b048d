"""The engine: the only code that touches mitmproxy's ``Master``.

mitmproxy runs on its own thread with its own asyncio loop (on Python 3.12+ ``Master.run()`` swaps the
loop's task factory and exception handler, which must not leak into the UI's loop). Everything else talks
to it through this class; calls are marshalled onto the engine loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import logging
import threading
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from mitmproxy import ctx, exceptions, http, options
from mitmproxy.addons import default_addons

from proxycap.capture.ca import CAError, ensure_ca
from proxycap.capture.summary import count_streamed
from proxycap.internals.mitmproxy import (
    QuickMaster,
    close_client_connections,
    count_streamed_bodies,
    listen_failure,
    stop_listening,
)

logger = logging.getLogger(__name__)

DEFAULT_CONFDIR = "~/.mitmproxy"  # mitmproxy's own, so a CA the user already trusts keeps working
DEFAULT_MAX_BODY = "4m"


class EngineError(Exception):
    """The proxy could not start; the message is one line meant for the user."""


@dataclasses.dataclass
class EngineConfig:
    listen_host: str = "127.0.0.1"
    listen_port: int = 8080
    modes: list[str] = dataclasses.field(default_factory=lambda: ["regular"])
    confdir: str = DEFAULT_CONFDIR
    sets: list[str] = dataclasses.field(default_factory=list)  # mitmproxy options as "name=value"
    scripts: list[str] = dataclasses.field(default_factory=list)
    allow: list[str] = dataclasses.field(default_factory=list)  # networks allowed besides loopback
    max_body: str = DEFAULT_MAX_BODY  # bodies larger than this are streamed, not captured
    breaks: list[str] = dataclasses.field(default_factory=list)  # breakpoints on requests (filter expressions)
    break_responses: list[str] = dataclasses.field(default_factory=list)  # … on responses
    rules: str = ""  # the rules file; empty: none
    throttle: str = ""  # a profile for all traffic (a rate in KB/s or a preset); empty: none
    latency: int = 0  # ms added to each request
    proxyauth: str | None = None  # mitmproxy's proxyauth: "user:pass", "any", "@htpasswd"
    settings: str = ""  # the settings file: clients allowed and remembered (none: nothing is remembered)


class _Ready:
    """Reports, from mitmproxy's ``running`` hook, whether every listener actually came up."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def running(self) -> None:
        failure = listen_failure(ctx.master)
        self.engine._started(EngineError(failure) if failure else None)


class Engine:
    def __init__(self, config: EngineConfig, addons: Sequence[object]) -> None:
        """``addons``: proxycap's, added after mitmproxy's default ones; their options can then be set."""
        self.config = config
        self.addons = addons
        self.master: QuickMaster | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self, timeout: float = 30) -> None:
        """Start the proxy and return once it listens; raise ``EngineError`` with a one-line reason if not."""
        self._thread = threading.Thread(target=self._thread_main, name="proxycap-engine", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            self.stop()
            raise EngineError(f"the proxy did not start within {timeout:.0f} s")
        if self._error is not None:
            self.stop()
            raise EngineError(str(self._error)) from None

    @property
    def running(self) -> bool:
        return self.master is not None and self.loop is not None and not self.loop.is_closed()

    def stop_listening(self) -> None:
        """Stop accepting connections (the open ones stay): the first step of stopping."""
        if self.running:
            with contextlib.suppress(RuntimeError, concurrent.futures.TimeoutError):
                self.submit(lambda: stop_listening(self.master)).result(timeout=5)  # type: ignore[arg-type]

    def stop(self) -> None:
        """Close open connections (their flows end as errors, and are recorded), stop, run ``done`` hooks.

        Safe to call more than once.
        """
        if self.master and self.loop and not self.loop.is_closed():
            with contextlib.suppress(RuntimeError, concurrent.futures.TimeoutError):
                self.submit(self._close_connections).result(timeout=5)
            self.master.shutdown()
        if self._thread and self._thread is not threading.current_thread():
            self._thread.join(timeout=15)

    def _started(self, error: BaseException | None) -> None:
        self._error = error
        self._ready.set()

    @property
    def listen_addrs(self) -> list[tuple[str, int]]:
        """Where the proxy listens (the real port when 0 was asked for)."""
        if not self.master:
            return []
        ps = self.master.addons.get("proxyserver")
        return [(str(a[0]), int(a[1])) for a in ps.listen_addrs()]

    @property
    def ca_path(self) -> Path:
        return Path(self.config.confdir).expanduser() / "mitmproxy-ca-cert.pem"

    async def _close_connections(self) -> None:
        if self.master is not None:
            await close_client_connections(self.master, "proxycap is stopping")

    def _thread_main(self) -> None:
        loop = asyncio.new_event_loop()
        self.loop = loop
        try:
            loop.run_until_complete(self._main())
            # Whatever is still running (a connection that ignored cancellation): cancel it rather than leave
            # clients hanging on sockets of a closed loop.
            if pending := asyncio.all_tasks(loop):
                loop.set_exception_handler(lambda _loop, _ctx: None)
                for task in pending:
                    task.cancel()
                loop.run_until_complete(asyncio.wait(pending, timeout=2))
        except BaseException as e:  # anything that escapes mitmproxy must still reach start()
            logger.exception("engine crashed")
            self._started(e)
        finally:
            self._ready.set()
            loop.close()

    async def _main(self) -> None:
        cfg = self.config
        try:
            ensure_ca(cfg.confdir)  # mitmproxy would only log this, then fail every TLS handshake
        except CAError as e:
            self._started(EngineError(str(e)))
            return
        count_streamed_bodies(count_streamed)  # what passes through unkept is still counted (and shown as such)
        opts = options.Options()
        master = QuickMaster(opts)
        try:
            master.addons.add(*default_addons())
            master.addons.add(*self.addons, _Ready(self))
            opts.update(
                listen_host=cfg.listen_host,
                listen_port=cfg.listen_port,
                confdir=cfg.confdir,
                stream_large_bodies=cfg.max_body,
                proxycap_allow=cfg.allow,
                proxycap_break=cfg.breaks,
                proxycap_break_response=cfg.break_responses,
                proxycap_throttle=cfg.throttle,
                proxycap_latency=cfg.latency,
                proxycap_rules=cfg.rules,
                proxycap_settings=cfg.settings,
            )
            if cfg.proxyauth:
                try:
                    opts.update(proxyauth=cfg.proxyauth)
                except exceptions.OptionsError as e:
                    raise exceptions.OptionsError(f"--proxyauth: {e} (user:pass, any, or @htpasswd-file)") from None
            if cfg.allow:
                opts.update(block_global=False)  # proxycap's allow-list is the gate now
            opts.update(mode=cfg.modes)
            if cfg.sets:
                try:
                    opts.set(*cfg.sets)
                except exceptions.OptionsError as e:
                    raise exceptions.OptionsError(f"--set {' '.join(cfg.sets)}: {e}") from None
            if cfg.scripts:
                opts.update(scripts=cfg.scripts)
        except exceptions.OptionsError as e:
            self._started(EngineError(str(e).strip().splitlines()[0]))
            return
        except (KeyError, ValueError, TypeError) as e:
            self._started(EngineError(f"bad option: {e}"))
            return
        self.master = master
        await master.run()

    # --- calls from other threads -----------------------------------------------------------------

    def submit(self, fn: Callable[[], Coroutine[Any, Any, Any]]) -> concurrent.futures.Future[Any]:
        """Run a coroutine on the engine loop; returns a future the caller may (or may not) wait on."""
        if not self.loop or self.loop.is_closed():
            raise EngineError("the proxy is not running")
        return asyncio.run_coroutine_threadsafe(fn(), self.loop)

    def call(self, fn: Callable[..., Any], *args: Any, timeout: float = 5) -> Any:
        """Run ``fn(*args)`` on the engine loop (where flows and addons may be touched) and return its result."""

        async def run() -> Any:
            return fn(*args)

        return self.submit(run).result(timeout)

    def replay(self, f: http.HTTPFlow, timeout: float = 5) -> str | None:
        """Resend a flow's request with mitmproxy's client replay; its hooks record it like any other flow.
        Returns why mitmproxy will not replay it (its own check, e.g. a body that was streamed, not kept), or None
        once it is queued. Blocks until then: call it from a worker thread."""

        async def queue() -> str | None:
            assert self.master is not None
            if error := self.master.addons.get("clientplayback").check(f):
                return error
            self.master.commands.call("replay.client", [f])
            return None

        return self.submit(queue).result(timeout)

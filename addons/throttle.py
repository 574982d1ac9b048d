"""Throttle addon: a slow network, for all traffic (``proxycap_throttle``, ``proxycap_latency``) or for the flows a
rule throttles (a rule's ``throttle``: per client, per filter).

A profile adds latency before each request goes on (an asyncio sleep in the flow's own hook: nothing else waits) and
paces the bytes the proxy writes, towards the client at the download rate and towards the server at the upload rate,
streamed bodies included: the client's connection and its server connections write through a ``PacedWriter``
(``internals.mitmproxy``), which mitmproxy's backpressure then follows. The pace is the connection's, set by each
flow as it starts: on HTTP/1 that is the flow's own; on HTTP/2 the flows sharing a connection share the latest
one's. "offline" closes the client's connection for each request. Other clients' connections are never paced.

Until a profile or a throttling rule exists, the hooks are switched off and no connection is touched.

Threading: hooks on the proxy's loop; ``set_profile`` runs on the loop and waits for it (call it from a worker).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable
from typing import Any

from mitmproxy import connection, ctx, exceptions, http
from mitmproxy.proxy import server_hooks

from proxycap.capture import onloop
from proxycap.capture.summary import mark_modified
from proxycap.internals.mitmproxy import pace_connection, switch_hooks
from proxycap.rules import profiles
from proxycap.rules.actions import META_THROTTLE
from proxycap.rules.profiles import KB, Profile

FLOW_HOOKS = ("requestheaders",)
PACED_HOOKS = ("server_connected", "client_disconnected")


@dataclasses.dataclass
class _Pace:
    """A client connection's rates now, in bytes a second (None: not limited)."""

    down: float | None = None
    up: float | None = None

    def rate(self, upload: bool) -> float | None:
        return self.up if upload else self.down


class Throttle:
    def __init__(self) -> None:
        self._profile: Profile | None = None  # for all traffic
        self._by_rules = False  # some enabled rule throttles the flows it matches (told by the rules addon)
        self._paced: dict[str, _Pace] = {}  # client connection id → its pace
        self._loop: asyncio.AbstractEventLoop | None = None
        for name in FLOW_HOOKS + PACED_HOOKS:
            setattr(self, name, None)

    def load(self, loader: Any) -> None:
        loader.add_option(
            "proxycap_throttle",
            str,
            "",
            'Throttle all traffic: a rate in KB/s ("100", or "100/50" for download/upload) or a preset '
            '("3G", "slow 3G", "offline"). Empty: no throttling.',
        )
        loader.add_option("proxycap_latency", int, 0, "Add this many ms before each request (with or without a rate).")

    def configure(self, updated: set[str]) -> None:
        if {"proxycap_throttle", "proxycap_latency"} & updated:
            try:
                profile = profiles.parse(ctx.options.proxycap_throttle) if ctx.options.proxycap_throttle else None
            except ValueError as e:
                raise exceptions.OptionsError(f"throttle: {e}") from None
            if ctx.options.proxycap_latency < 0:
                raise exceptions.OptionsError("latency: must not be negative")
            if ctx.options.proxycap_latency:
                profile = profiles.with_latency(profile, ctx.options.proxycap_latency)
            self._set(profile)

    def running(self) -> None:
        self._loop = asyncio.get_running_loop()

    # --- entry points -------------------------------------------------------------------------

    def profile(self) -> Profile | None:
        """The profile for all traffic, or None."""
        return self._profile

    def set_profile(self, profile: Profile | None) -> None:
        """Throttle all traffic with ``profile`` from the next request on (None: stop). Any thread."""
        onloop.call(self._loop, lambda: self._set(profile))

    def by_rules(self, on: bool) -> None:
        """The rules addon says whether any enabled rule throttles. On the proxy's loop."""
        self._by_rules = on
        self._switch()

    # --- the loop's side ----------------------------------------------------------------------

    def _set(self, profile: Profile | None) -> None:
        self._profile = profile if profile is not None and profile.limits else None
        self._switch()

    def _switch(self) -> None:
        on = self._profile is not None or self._by_rules
        if not on:
            for pace in self._paced.values():  # what was paced goes at full speed again
                pace.down = pace.up = None
        switch_hooks(ctx.master, self, FLOW_HOOKS, on)

    def _paced_changed(self) -> None:
        switch_hooks(ctx.master, self, PACED_HOOKS, bool(self._paced))

    # --- hooks (switched on and off as above) -------------------------------------------------

    def requestheaders(self, f: http.HTTPFlow) -> Awaitable[None] | None:  # type: ignore[no-redef]
        state = f.metadata.get(META_THROTTLE)
        profile = Profile(**state) if state else self._profile
        client_id = f.client_conn.id
        pace = self._paced.get(client_id)
        if profile is None:
            if pace is not None:
                pace.down = pace.up = None
            return None
        if profile.offline:
            mark_modified(f, "throttled (offline): connection closed")
            f.kill()
            return None
        if pace is None:
            pace = _Pace()
            if not pace_connection(ctx.master, client_id, pace.rate):
                return None
            self._paced[client_id] = pace
            self._paced_changed()
        pace.down = profile.down * KB if profile.down else None
        pace.up = profile.up * KB if profile.up else None
        if not state:  # a rule's throttling is noted by the rules addon
            mark_modified(f, f"throttled ({profile})")
        return asyncio.sleep(profile.latency / 1000) if profile.latency else None

    def server_connected(self, data: server_hooks.ServerConnectionHookData) -> None:  # type: ignore[no-redef]
        if (pace := self._paced.get(data.client.id)) is not None:
            pace_connection(ctx.master, data.client.id, pace.rate)

    def client_disconnected(self, client: connection.Client) -> None:  # type: ignore[no-redef]
        if self._paced.pop(client.id, None) is not None:
            self._paced_changed()


addons = [Throttle()]

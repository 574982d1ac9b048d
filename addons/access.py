"""Access addon: only this machine's programs (127.0.0.1, ::1), the networks the user allowed, and the clients approved
at runtime may use the proxy. Any other client gets a 403 page that says how to allow it, and is announced once
(``ClientRefusedEvent``) so a UI can offer to allow it.

mitmproxy's ``block_global`` lets any LAN or CGNAT address through; a debugging proxy listening beyond loopback must
not become an open relay for the whole network by accident.
"""

from __future__ import annotations

import dataclasses
import html
import ipaddress
import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from mitmproxy import connection, ctx, exceptions, http
from mitmproxy.proxy import mode_specs

from proxycap.capture import allowlist
from proxycap.capture.allowlist import Network, parse_networks
from proxycap.capture.bus import Bus, ClientRefusedEvent
from proxycap.capture.summary import META_LOCAL, normalize_ip, peer
from proxycap.devices.lan import hostport

__all__ = ["Access", "PendingClient", "parse_networks"]

logger = logging.getLogger(__name__)

LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")
# Always allowed: where programs on this machine connect from. Other loopback addresses (127.0.0.2, …) need allowing
# like any device, so that they can play devices (tests, several simulated clients on one machine).
ALWAYS = (ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1"))


@dataclasses.dataclass(slots=True)
class PendingClient:
    """A client refused this session that nobody allowed or denied yet."""

    ip: str
    request: str  # its first request
    first_seen: float
    requests: int = 1  # requests seen from it so far (refused, or for the setup page)


@dataclasses.dataclass(frozen=True)
class Policy:
    """Who is allowed, as one immutable snapshot: changed by replacing it, so the proxy's loop reads it without a lock
    while other threads allow and deny. Its verdicts are cached per address as the proxy saw it (before
    normalisation), which is one dict lookup per request."""

    networks: tuple[Network, ...] = ()
    allowed: frozenset[str] = frozenset()  # addresses allowed at runtime
    denied: frozenset[str] = frozenset()
    cache: dict[str, bool] = dataclasses.field(default_factory=dict, compare=False)

    def check(self, raw_ip: str) -> bool:
        verdict = self.cache.get(raw_ip)
        if verdict is None:
            verdict = self.cache[raw_ip] = self._decide(normalize_ip(raw_ip))
        return verdict

    def _decide(self, ip: str) -> bool:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return False
        if addr in ALWAYS:
            return True
        if ip in self.denied:
            return False
        return ip in self.allowed or any(addr in net for net in self.networks)


def _speaks_http(mode: mode_specs.ProxyMode) -> bool:
    """Modes where a refused client can be answered with an HTTP page; others are refused by closing the connection."""
    if isinstance(mode, mode_specs.RegularMode | mode_specs.UpstreamMode):
        return True
    return isinstance(mode, mode_specs.ReverseMode) and mode.scheme in ("http", "https")


def _first_line(f: http.HTTPFlow) -> str:
    req = f.request
    if req.method == "CONNECT":
        return f"CONNECT {req.host}:{req.port}"
    return f"{req.method} {req.pretty_url}"


def refused_page(ip: str, proxy: str, denied: bool) -> str:
    """The 403 page a refused client sees: who it is, and how to let it in."""
    ip_, proxy_ = html.escape(ip), html.escape(proxy)
    how = (
        "<p>It was denied in proxycap. To let it in after all, allow it in proxycap's clients panel.</p>"
        if denied
        else "<p>To let it in: allow it in proxycap's clients panel, where it is listed as waiting (or on the "
        f"terminal of <code>proxycap record</code>), or start proxycap with <code>--allow {ip_}</code> (or your "
        "network, such as <code>--allow 192.168.1.0/24</code>). Then try again.</p>"
    )
    return (
        '<!doctype html><html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">'
        "<title>403 Refused by proxycap</title></head><body>"
        f"<h1>proxycap refused this device</h1><p>This device ({ip_}) is not allowed to use the proxy at {proxy_}; "
        "nothing was sent on.</p>"
        f"{how}<p>Setting up a device: <a href='http://{proxy_}/'>http://{proxy_}/</a></p></body></html>\n"
    )


class Access:
    WARN_EVERY = 60.0  # seconds between warnings about the same refused address

    def __init__(self, bus: Bus | None = None) -> None:
        self.bus = bus
        self.policy = Policy()
        self._lock = threading.Lock()  # serialises the writers of the policy (options, allow, deny)
        self._cli: tuple[Network, ...] = ()  # --allow
        self._remembered: list[str] = []  # from the settings file
        self._settings: Path | None = None
        self._pending: dict[str, PendingClient] = {}
        self._announced: set[str] = set()  # refused this session: announced once
        self._warned: dict[str, float] = {}
        self.closing = False  # the proxy is stopping: requests on connections still open are refused

    def load(self, loader) -> None:
        loader.add_option(
            "proxycap_allow",
            Sequence[str],
            [],
            "Networks (CIDR), addresses or 'any' allowed to use the proxy besides this machine (127.0.0.1, ::1).",
        )
        loader.add_option(
            "proxycap_settings",
            str,
            "",
            "proxycap's settings file (TOML): its [clients] allow list is allowed too, and clients allowed with "
            '"allow and remember" are added to it. Empty: none.',
        )

    def configure(self, updated: set[str]) -> None:
        if "proxycap_allow" in updated:
            try:
                self._cli = tuple(parse_networks(ctx.options.proxycap_allow))
            except ValueError as e:
                raise exceptions.OptionsError(f"--allow: {e}") from None
        if "proxycap_settings" in updated:
            path = Path(ctx.options.proxycap_settings).expanduser() if ctx.options.proxycap_settings else None
            try:
                self._remembered = allowlist.remembered(path) if path else []
            except (ValueError, OSError) as e:
                raise exceptions.OptionsError(str(e)) from None
            self._settings = path
        if {"proxycap_allow", "proxycap_settings"} & updated:
            with self._lock:
                self._update()

    def running(self) -> None:
        """Warned here, once the options are final: a bad option must not be preceded by a warning about the
        options it replaced."""
        host = ctx.options.listen_host
        if self.policy.networks or host in LOOPBACK_HOSTS or host.startswith("127."):
            return
        where = "all interfaces" if host in ("", "0.0.0.0", "::") else host
        logger.warning(
            f"listening on {where}; only clients on this machine are allowed: others get a 403 page until allowed "
            "(--allow NETWORK, e.g. --allow 192.168.1.0/24, or approved as they come)"
        )

    # --- the policy, from any thread ----------------------------------------------------------------

    def _update(self, allowed: frozenset[str] | None = None, denied: frozenset[str] | None = None) -> None:
        """Replace the policy (the caller holds the lock)."""
        old = self.policy
        self.policy = Policy(
            (*self._cli, *parse_networks(self._remembered)),
            old.allowed if allowed is None else allowed,
            old.denied if denied is None else denied,
        )

    def allowed(self, ip: str) -> bool:
        return self.policy.check(ip)

    def allow(self, ip: str, remember: bool = False) -> None:
        """Let ``ip`` use the proxy from its next request on: for this session, and with ``remember`` in the
        settings file too (for later runs). Safe to call from any thread; with ``remember`` it writes the settings
        file, so call it off the proxy's loop. Raises ValueError for a bad address or when there is no settings file,
        OSError when the file cannot be written."""
        ip = self._checked(ip)
        with self._lock:
            if remember:
                if self._settings is None:
                    raise ValueError("no settings file to remember the client in")
                self._remembered = allowlist.update_remembered(self._settings, add=[ip])
            self._update(self.policy.allowed | {ip}, self.policy.denied - {ip})
            self._pending.pop(ip, None)
        logger.info(f"client {ip} allowed{' and remembered' if remember else ''}")

    def deny(self, ip: str) -> None:
        """Refuse ``ip`` from its next request on and stop announcing it (also when an ``--allow`` network holds it);
        forgets it in the settings file if it was remembered there. Same threading as ``allow``."""
        ip = self._checked(ip)
        with self._lock:
            if self._settings is not None and ip in self._remembered:
                self._remembered = allowlist.update_remembered(self._settings, remove=[ip])
            self._update(self.policy.allowed - {ip}, self.policy.denied | {ip})
            self._pending.pop(ip, None)
            self._announced.add(ip)
        logger.info(f"client {ip} denied")

    def pending(self) -> list[PendingClient]:
        """Clients refused this session that nobody allowed or denied yet, oldest first (a copy)."""
        return [dataclasses.replace(p) for p in list(self._pending.values())]

    def describe(self) -> str:
        """Who is allowed, for people: "localhost, 192.168.1.0/24, 192.168.1.23 (remembered), 10.0.0.5 (this
        session)"."""
        parts = ["localhost", *(str(n) for n in self._cli)]
        parts += [f"{r} (remembered)" for r in self._remembered]
        parts += [f"{ip} (this session)" for ip in sorted(self.policy.allowed) if ip not in self._remembered]
        if "0.0.0.0/0" in parts:
            parts = ["any address"]
        return ", ".join(parts)

    @staticmethod
    def _checked(ip: str) -> str:
        try:
            addr = ipaddress.ip_address(normalize_ip(ip))
        except ValueError:
            raise ValueError(f"not an IP address: {ip!r}") from None
        if addr in ALWAYS:
            raise ValueError(f"{ip} is this machine, which is always allowed")
        return str(addr)

    # --- hooks (the proxy's loop) -------------------------------------------------------------------

    def client_connected(self, client: connection.Client) -> None:
        raw = client.peername[0] if client.peername else ""
        if self.policy.check(raw):
            return
        if not _speaks_http(client.proxy_mode):
            ip = normalize_ip(raw)
            client.error = f"client {ip} is not allowed (proxycap --allow)"
            self._refused(ip, f"a connection in {client.proxy_mode.type_name} mode", client.peername)
        # Not counted as a client (the recorder comes after this addon): its requests get a 403 page, and it shows
        # up only once allowed.
        raise exceptions.AddonHalt

    def requestheaders(self, f: http.HTTPFlow) -> None:
        self._gate(f)
        if META_LOCAL in f.metadata:  # proxycap's own answer: not traffic for the rules, throttle or recorder
            raise exceptions.AddonHalt

    def http_connect(self, f: http.HTTPFlow) -> None:
        self._gate(f)
        if META_LOCAL in f.metadata:
            raise exceptions.AddonHalt

    def _gate(self, f: http.HTTPFlow) -> None:
        if self.closing:
            f.response = http.Response.make(
                503, b"proxycap is stopping\n", {"Content-Type": "text/plain", "Connection": "close"}
            )
            return
        client = f.client_conn
        if f.is_replay or self.policy.check(client.peername[0] if client.peername else ""):
            return  # a replay is this proxy's own request, sent on the user's behalf
        ip = peer(client.peername)[0]
        if f.metadata.get(META_LOCAL) == "setup":  # the setup page and the CA are for devices not allowed yet too
            self._announce(ip, _first_line(f))
            return
        self._refused(ip, _first_line(f), client.peername)
        host, port = peer(client.sockname)
        f.response = http.Response.make(
            403,
            refused_page(ip, hostport(host, port or 0), ip in self.policy.denied),
            {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"},
        )
        f.metadata[META_LOCAL] = "refused"

    def _announce(self, ip: str, request: str) -> None:
        """A client that is not allowed showed up: announced once per address (then counted while pending)."""
        if ip not in self._announced:
            self._announced.add(ip)
            self._pending[ip] = pending = PendingClient(ip, request, time.time())
            if self.bus is not None:
                self.bus.publish(ClientRefusedEvent(pending.first_seen, ip, request))
        elif (pending := self._pending.get(ip)) is not None:
            pending.requests += 1

    def _refused(self, ip: str, request: str, peername: tuple) -> None:
        self._announce(ip, request)
        now = time.monotonic()
        if now - self._warned.get(ip, -self.WARN_EVERY) >= self.WARN_EVERY:
            self._warned[ip] = now
            logger.warning(
                f"refused client {ip} ({request}): not allowed; allow it in the clients panel or start proxycap "
                f"with --allow {ip}",
                extra={"client": peername},  # the event log ties it to the client
            )

"""Access addon: only loopback clients, plus the networks the user allowed, may use the proxy.

mitmproxy's ``block_global`` lets any LAN or CGNAT address through; a debugging proxy listening beyond
loopback must not become an open relay for the whole network by accident.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Sequence

from mitmproxy import connection, ctx, exceptions, http

from proxycap.capture.summary import peer

logger = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(specs: Sequence[str]) -> list[Network]:
    """``192.168.1.0/24``, ``10.0.0.7`` or ``any``; raises ValueError with the bad entry named."""
    out: list[Network] = []
    for spec in specs:
        for part in filter(None, (p.strip() for p in spec.split(","))):
            if part == "any":
                out += [ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")]
                continue
            try:
                out.append(ipaddress.ip_network(part, strict=False))
            except ValueError:
                raise ValueError(f"not an IP address or network: {part!r}") from None
    return out


class Access:
    WARN_EVERY = 60.0  # seconds between warnings about the same refused address

    def __init__(self) -> None:
        self.networks: list[Network] = []
        self._warned: dict[str, float] = {}
        self.closing = False  # the proxy is stopping: requests on connections still open are refused

    def load(self, loader) -> None:
        loader.add_option(
            "proxycap_allow",
            Sequence[str],
            [],
            "Networks (CIDR), addresses or 'any' allowed to use the proxy besides loopback.",
        )

    def configure(self, updated: set[str]) -> None:
        if "proxycap_allow" in updated:
            try:
                self.networks = parse_networks(ctx.options.proxycap_allow)
            except ValueError as e:
                raise exceptions.OptionsError(f"--allow: {e}") from None
        if {"listen_host", "proxycap_allow"} & updated and not self.networks:
            host = ctx.options.listen_host
            if host not in ("", "127.0.0.1", "::1", "localhost") and not host.startswith("127."):
                logger.warning(
                    f"listening on {host}, but only loopback clients are allowed: add --allow NETWORK "
                    "(e.g. --allow 192.168.1.0/24) for other devices"
                )
            elif host == "":
                logger.warning("listening on all interfaces; only loopback clients are allowed without --allow")

    def allowed(self, ip: str) -> bool:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return addr.is_loopback or any(addr in net for net in self.networks)

    def client_connected(self, client: connection.Client) -> None:
        ip = peer(client.peername)[0]
        if self.allowed(ip):
            return
        client.error = f"client {ip} is not allowed (proxycap --allow)"
        now = time.monotonic()
        if now - self._warned.get(ip, -self.WARN_EVERY) >= self.WARN_EVERY:
            self._warned[ip] = now
            logger.warning(f"refused client {ip}: not in the allowed networks; start proxycap with --allow {ip}")

    def requestheaders(self, f: http.HTTPFlow) -> None:
        if self.closing:
            f.response = _stopping()

    def http_connect(self, f: http.HTTPFlow) -> None:
        if self.closing:
            f.response = _stopping()


def _stopping() -> http.Response:
    return http.Response.make(503, b"proxycap is stopping\n", {"Content-Type": "text/plain", "Connection": "close"})

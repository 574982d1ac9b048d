"""Setup addon: the proxy answers requests for itself with the setup page, its CA and a PAC file.

A request whose destination is the proxy's own address and port reaches the hooks like any other: asked directly (a
phone with no proxy set yet opens ``http://192.168.1.5:8080/``; in regular mode mitmproxy takes the destination from
the Host header) or through the proxy. Either way it is answered here, never forwarded (forwarding it would loop
back into the proxy). Devices that are not allowed get these pages too: they hold nothing secret, and a device fetches
the CA before it is allowed.
"""

from __future__ import annotations

import json
import logging
import socket
from pathlib import Path

from cryptography import x509
from mitmproxy import ctx, http

from proxycap import __version__
from proxycap.capture.ca import BASENAME, CAInfo, export
from proxycap.capture.processes import local_addresses
from proxycap.capture.summary import META_LOCAL, peer
from proxycap.devices import setup
from proxycap.devices.lan import WILDCARDS, is_loopback

logger = logging.getLogger(__name__)

NO_STORE = {"Cache-Control": "no-store"}


def _local_names() -> set[str]:
    """Every name and address this machine answers to."""
    names = {"localhost", *local_addresses()}
    try:
        hostname = socket.gethostname().lower()
        names |= {hostname, f"{hostname}.local"}
    except OSError:
        pass
    return names


class SetupServer:
    def __init__(self) -> None:
        self._targets: frozenset[tuple[str, int]] = frozenset()  # (host, port) that mean "this proxy"
        self._ca: tuple[bytes, bytes] | None = None  # PEM (the file as it is), DER
        self._local: set[str] = set()  # this machine's names and addresses

    def running(self) -> None:
        targets: set[tuple[str, int]] = set()
        self._local = names = _local_names()
        for host, port, *_ in ctx.master.addons.get("proxyserver").listen_addrs():
            if host in WILDCARDS:
                targets |= {(name, port) for name in names}
            else:
                targets.add((host, port))
                if is_loopback(host):
                    targets.add(("localhost", port))
        self._targets = frozenset(targets)
        pem_path = Path(ctx.options.confdir).expanduser() / f"{BASENAME}-ca-cert.pem"
        try:
            pem = pem_path.read_bytes()
            self._ca = pem, export(CAInfo(pem_path, x509.load_pem_x509_certificate(pem)), "der")
        except (OSError, ValueError) as e:
            logger.warning(f"cannot serve the CA from {pem_path}: {e}")

    def requestheaders(self, f: http.HTTPFlow) -> None:
        req = f.request
        if (req.host.lower(), req.port) not in self._targets:
            return
        f.metadata[META_LOCAL] = "setup"
        f.response = self._answer(f)

    def _answer(self, f: http.HTTPFlow) -> http.Response:
        req = f.request
        path = req.path.split("?", 1)[0]
        if req.method not in ("GET", "HEAD"):
            return http.Response.make(405, "proxycap's setup pages only answer GET\n", {"Allow": "GET, HEAD"})
        client_ip = peer(f.client_conn.peername)[0]
        port = req.port
        if path == "/":
            info = setup.SetupInfo(ctx.options.listen_host, port, (req.host,))
            access = ctx.master.addons.get("access")
            allowed = access is None or access.allowed(client_ip)
            page = setup.setup_page(info, req.host, client_ip, allowed)
            return http.Response.make(200, page, {"Content-Type": "text/html; charset=utf-8", **NO_STORE})
        if path == setup.PAC:
            return http.Response.make(
                200, setup.pac_file(req.host, port), {"Content-Type": "application/x-ns-proxy-autoconfig", **NO_STORE}
            )
        if path in (setup.CA_PEM, setup.CA_CRT) and self._ca is not None:
            logger.info(f"client {client_ip} fetched proxycap's CA ({path})")
            pem, der = self._ca
            if path == setup.CA_PEM:
                return http.Response.make(200, pem, {"Content-Type": "application/x-pem-file", **NO_STORE})
            return http.Response.make(200, der, {"Content-Type": "application/x-x509-ca-cert", **NO_STORE})
        if path == setup.INFO and (client_ip in self._local or is_loopback(client_ip)):  # for proxycap's commands
            access = ctx.master.addons.get("access")
            info = {
                "proxycap": __version__,
                "listen": [[h, p] for h, p, *_ in ctx.master.addons.get("proxyserver").listen_addrs()],
                "allowed": access.describe() if access is not None else None,
                "proxyauth": bool(ctx.options.proxyauth),
            }
            return http.Response.make(200, json.dumps(info), {"Content-Type": "application/json", **NO_STORE})
        return http.Response.make(404, "not one of proxycap's setup pages: try /\n", {"Content-Type": "text/plain"})

"""Setting up a device: where it reaches the proxy, the setup page's URL (also the QR code's payload), the CA and PAC
URLs, short steps per platform, and the setup page and PAC file that the setup addon serves.

The proxy serves all of it on its own port (``addons/setup.py``), so a phone with no proxy set yet can open the setup
page, fetch the CA, and point its "automatic proxy" setting at the PAC file.
"""

from __future__ import annotations

import dataclasses
import html
import io
from collections.abc import Iterable

import segno

from proxycap.devices.lan import hostport, reachable_addresses

CA_PEM = "/ca.pem"  # mitmproxy's CA certificate file, as it is
CA_CRT = "/ca.crt"  # the same certificate in DER, which phones install from a download
PAC = "/proxy.pac"
INFO = "/proxycap.json"  # what the running proxy is: proxycap's commands for this machine ask it

# Short steps per platform; {setup}, {pem}, {crt}, {pac}, {host}, {port} are filled in by ``SetupInfo.steps``.
STEPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "iOS / iPadOS",
        (
            "Open {setup} in Safari and tap the CA certificate ({crt}); allow the download.",
            "Settings → General → VPN & Device Management → the mitmproxy profile → Install.",
            "Settings → General → About → Certificate Trust Settings → turn on full trust for it.",
            "Settings → Wi-Fi → (i) next to your network → Configure Proxy → Manual: server {host}, port {port} "
            "(or Automatic, URL {pac}).",
        ),
    ),
    (
        "Android",
        (
            "Open {setup} in Chrome and download the CA certificate ({crt}).",
            "Settings → Security & privacy → More security settings → Encryption & credentials → Install a "
            "certificate → CA certificate → pick the file.",
            "Settings → Wi-Fi → your network → Edit → Advanced → Proxy: Manual, host {host}, port {port} "
            "(or Proxy Auto-Config, URL {pac}).",
            "Browsers trust the CA; apps ignore user-installed CAs unless they opt in (a network security config "
            "that trusts user certificates, as debug builds may) or the CA is installed as a system CA (rooted "
            "devices, emulators).",
        ),
    ),
    (
        "macOS",
        (
            "curl -o proxycap-ca.pem {pem}",
            "sudo security add-trusted-cert -d -p ssl -p basic -k /Library/Keychains/System.keychain proxycap-ca.pem",
            "System Settings → Network → your network → Details → Proxies → Web proxy (HTTP) and Secure web proxy "
            "(HTTPS): {host}, port {port} (or Automatic proxy configuration, URL {pac}).",
        ),
    ),
    (
        "Windows",
        (
            "Download {crt}, open it → Install Certificate → Local Machine → Place all certificates in: Trusted Root "
            "Certification Authorities (or, as administrator: certutil -addstore root ca.crt).",
            "Settings → Network & internet → Proxy → Manual proxy setup: {host}, port {port} (or Use setup script, "
            "address {pac}).",
        ),
    ),
    (
        "Linux",
        (
            "Debian/Ubuntu: sudo curl -o /usr/local/share/ca-certificates/proxycap.crt {pem} && sudo "
            "update-ca-certificates; Fedora/Arch: curl -o proxycap-ca.pem {pem} && sudo trust anchor --store "
            "proxycap-ca.pem. Firefox keeps its own CAs: Settings → Privacy & Security → View Certificates → Import.",
            "export http_proxy=http://{host}:{port} https_proxy=http://{host}:{port} (or GNOME Settings → Network → "
            "Proxy: Manual, or Automatic with {pac}).",
            'On the machine running proxycap: proxycap run -- CMD, eval "$(proxycap env)", proxycap browser.',
        ),
    ),
)


@dataclasses.dataclass(frozen=True)
class SetupInfo:
    """How devices reach a proxy listening on ``listen_host``:``port``."""

    listen_host: str
    port: int
    addresses: tuple[str, ...]  # this machine's addresses that devices can reach it at, best first

    @property
    def reachable(self) -> bool:
        """False when the proxy listens on loopback only (or no LAN address was found): no device can reach it."""
        return bool(self.addresses)

    @property
    def host(self) -> str:
        """The address to give devices (the first LAN address; loopback when there is none)."""
        return self.addresses[0] if self.addresses else "127.0.0.1"

    def url(self, path: str = "/", host: str | None = None) -> str:
        return f"http://{hostport(host or self.host, self.port)}{path}"

    @property
    def setup_url(self) -> str:
        return self.url()

    @property
    def qr_text(self) -> str:
        """The QR code's payload: the setup page's URL (a phone opens it before its proxy is set)."""
        return self.setup_url

    def steps(self, host: str | None = None) -> list[tuple[str, list[str]]]:
        """(platform, steps) for iOS, Android, macOS, Windows and Linux, with this proxy's URLs filled in."""
        host = host or self.host
        urls = {
            "setup": self.url("/", host),
            "pem": self.url(CA_PEM, host),
            "crt": self.url(CA_CRT, host),
            "pac": self.url(PAC, host),
            "host": host,
            "port": self.port,
        }
        return [(name, [step.format(**urls) for step in steps]) for name, steps in STEPS]


def setup_info(listen_host: str, port: int) -> SetupInfo:
    return SetupInfo(listen_host, port, tuple(reachable_addresses(listen_host)))


def setup_for(listen_addrs: Iterable[tuple[str, int]]) -> SetupInfo:
    """The setup of a proxy listening on ``listen_addrs`` (``Engine.listen_addrs``): the first listener devices can
    reach, else the first (then ``reachable`` is False: say the proxy must listen beyond loopback)."""
    infos = [setup_info(host, port) for host, port in listen_addrs]
    if not infos:
        raise ValueError("the proxy listens nowhere")
    return next((info for info in infos if info.reachable), infos[0])


def qr_lines(text: str) -> list[str]:
    """``text`` as a QR code in lines of Unicode half blocks (segno's compact terminal form). A block is a light
    module, a space a dark one: show the lines light on dark (white on black) whatever the terminal's theme."""
    out = io.StringIO()
    segno.make(text, error="m").terminal(out=out, compact=True)
    return out.getvalue().splitlines()


def pac_file(host: str, port: int) -> str:
    """A proxy auto-config file sending everything to the proxy, straight to the network when it is not there."""
    return f'function FindProxyForURL(url, host) {{\n  return "PROXY {hostport(host, port)}; DIRECT";\n}}\n'


def setup_page(info: SetupInfo, host: str, client_ip: str, allowed: bool) -> str:
    """The page at ``/``: this device's status, the CA downloads, the PAC URL and the steps, for the address the
    device used (``host``)."""
    e = html.escape
    status = (
        f"This device ({e(client_ip)}) may use the proxy."
        if allowed
        else f"This device ({e(client_ip)}) is not allowed yet: allow it in proxycap (it is listed as waiting), or "
        f"start proxycap with <code>--allow {e(client_ip)}</code>."
    )
    sections = "".join(
        f"<h2>{e(name)}</h2><ol>{''.join(f'<li>{e(step)}</li>' for step in steps)}</ol>"
        for name, steps in info.steps(host)
    )
    proxy = e(hostport(host, info.port))
    return (
        '<!doctype html><html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">'
        "<title>proxycap setup</title></head><body>"
        f"<h1>proxycap at {proxy}</h1><p>{status}</p>"
        f'<p>1. Install the CA certificate: <a href="{CA_CRT}">ca.crt</a> (phones, Windows) or '
        f'<a href="{CA_PEM}">ca.pem</a> (macOS, Linux, tools).</p>'
        f"<p>2. Set this device's proxy to <b>{proxy}</b>, or its automatic proxy configuration URL to "
        f'<a href="{PAC}">http://{proxy}{PAC}</a>.</p>'
        f"{sections}</body></html>\n"
    )

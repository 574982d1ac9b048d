"""This machine's addresses that other devices can reach, and the note shown when the proxy listens beyond loopback."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable

import psutil

WILDCARDS = ("", "0.0.0.0", "::")
# Interfaces no device on the LAN reaches: container and VM bridges come last, veth pairs not at all.
VIRTUAL = ("docker", "br-", "virbr", "vboxnet", "vmnet", "cni", "flannel", "podman", "lxc")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def lan_addresses() -> list[str]:
    """Addresses of this machine's interfaces that are up, not loopback or link-local: IPv4 first, physical-looking
    interfaces before bridges of containers and VMs."""
    stats = psutil.net_if_stats()
    found: list[tuple[int, int, str]] = []
    for name, addrs in psutil.net_if_addrs().items():
        if not (stats.get(name) and stats[name].isup) or name.startswith(("lo", "veth")):
            continue
        for a in addrs:
            if a.family not in (socket.AF_INET, socket.AF_INET6):
                continue
            ip = ipaddress.ip_address(a.address.split("%", 1)[0])
            if ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_unspecified:
                continue
            found.append((name.startswith(VIRTUAL), ip.version, str(ip)))
    return [ip for *_, ip in sorted(found, key=lambda t: (t[0], t[1]))]


def reachable_addresses(listen_host: str) -> list[str]:
    """Where other devices reach a proxy listening on ``listen_host``: every LAN address for a wildcard, the address
    itself for a specific one, none for loopback."""
    if listen_host in WILDCARDS:
        ipv4_only = listen_host == "0.0.0.0"
        return [ip for ip in lan_addresses() if not (ipv4_only and ":" in ip)]
    return [] if is_loopback(listen_host) else [listen_host]


def hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def listening_note(listen_addrs: Iterable[tuple[str, int]], allowed: str, short: bool = False) -> str | None:
    """What to tell the user when the proxy listens beyond loopback (None when it does not): where devices reach it
    and who is allowed. ``short`` for a status bar: "LAN 192.168.1.5:8080 · allowed: loopback, 192.168.1.0/24"."""
    reach: list[str] = []
    for host, port in listen_addrs:
        for ip in reachable_addresses(host):
            if (where := hostport(ip, port)) not in reach:
                reach.append(where)
    if not reach and all(is_loopback(host) for host, _ in listen_addrs):
        return None
    shown = ", ".join(reach) or "no LAN address found"
    if short:
        return f"LAN {shown} · allowed: {allowed}"
    setup = f"; setup page for devices: http://{reach[0]}/" if reach else ""
    return (
        f"listening beyond loopback: devices reach this proxy at {shown}{setup}\n"
        f"allowed: {allowed}; any other client gets a 403 page and is listed here until allowed"
    )

"""Who may use the proxy besides loopback: networks from ``--allow``, and addresses remembered in the settings file.

The settings file is TOML, private to the user, and meant to be read and edited by hand::

    [clients]
    allow = ["192.168.1.23", "10.0.0.0/24"]
"""

from __future__ import annotations

import ipaddress
import tomllib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import tomli_w

from proxycap.paths import write_private

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

HEADER = (
    "# proxycap's settings. [clients] allow: addresses or networks allowed to use the proxy besides loopback and\n"
    '# --allow ("allow and remember" adds to it). Edit freely.\n\n'
)


def parse_networks(specs: Iterable[str]) -> list[Network]:
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


def _read(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        return {}
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{path}: not valid TOML ({e})") from None


def remembered(path: Path) -> list[str]:
    """The entries of ``[clients] allow``; raises ValueError (file named) for a damaged file or entry."""
    entries = _read(path).get("clients", {}).get("allow", [])
    if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
        raise ValueError(f"{path}: [clients] allow must be a list of addresses or networks")
    try:
        parse_networks(entries)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    return entries


def update_remembered(path: Path, add: Sequence[str] = (), remove: Sequence[str] = ()) -> list[str]:
    """Add and remove entries of ``[clients] allow``, keeping the rest of the file's settings; returns the new list."""
    data = _read(path)
    entries = [e for e in remembered(path) if e not in remove]
    entries += [a for a in add if a not in entries]
    data.setdefault("clients", {})["allow"] = entries
    write_private(path, (HEADER + tomli_w.dumps(data)).encode())
    return entries

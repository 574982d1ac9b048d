"""Who may use the proxy: loopback always, other networks only when allowed."""

from __future__ import annotations

import pytest
from conftest import Proxy, start_proxy
from origins import OriginServer, TestPKI

from proxycap.addons.access import Access, parse_networks


def test_only_loopback_by_default() -> None:
    access = Access()
    assert access.allowed("127.0.0.5") and access.allowed("::1")
    assert not access.allowed("192.168.1.20") and not access.allowed("100.64.0.1") and not access.allowed("8.8.8.8")


def test_allowed_networks() -> None:
    access = Access()
    access.networks = parse_networks(["192.168.1.0/24, 10.0.0.7", "fd00::/8"])
    assert access.allowed("192.168.1.20") and access.allowed("10.0.0.7") and access.allowed("fd00::1")
    assert not access.allowed("192.168.2.1") and not access.allowed("10.0.0.70")
    access.networks = parse_networks(["any"])
    assert access.allowed("8.8.8.8") and access.allowed("2001:db8::1")


def test_bad_network_is_named() -> None:
    with pytest.raises(ValueError, match=r"'10\.0\.0\.300'"):
        parse_networks(["10.0.0.0/8,10.0.0.300"])


def test_listening_beyond_loopback_warns_and_still_serves_loopback(
    tmp_path, confdir, pki: TestPKI, origin: OriginServer
) -> None:
    p: Proxy = start_proxy(tmp_path, confdir, pki, listen_host="0.0.0.0")
    try:
        with p.client(source_ip="127.0.0.2") as c:
            assert c.get(f"{origin.url}/json").status_code == 200
        p.wait_flows(1)
    finally:
        p.session.stop()
    log = (tmp_path / "proxycap.log").read_text()
    assert "only loopback clients are allowed" in log

"""Throttling through the running engine, timed from real clients (the feature is a timing: its tests are too)."""

from __future__ import annotations

import statistics
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from conftest import Proxy
from origins import OriginServer, pattern_bytes

from proxycap.rules import profiles
from proxycap.rules.profiles import Profile

Start = Callable[..., Proxy]
MB = 1_000_000


def timed_download(proxy: Proxy, url: str, source_ip: str = "127.0.0.1") -> tuple[float, bytes]:
    with proxy.client(source_ip, timeout=60) as c:
        start = time.monotonic()
        r = c.get(url)
        return time.monotonic() - start, r.content


def ttfb(client: httpx.Client, url: str) -> float:
    """Seconds from sending a request to its response's headers."""
    start = time.monotonic()
    with client.stream("GET", url) as r:
        elapsed = time.monotonic() - start
        r.read()
    return elapsed


def test_a_throttled_download_takes_the_stated_time_and_another_clients_does_not(
    proxy_with: Start, origin: OriginServer, tmp_path: Path
) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text('[[rule]]\naction = "throttle"\nclient = "127.0.0.2"\nthrottle = { down = 100 }\n')
    proxy = proxy_with(rules=str(rules))
    url = f"{origin.url}/bytes/{MB}"
    with ThreadPoolExecutor(2) as pool:
        slow = pool.submit(timed_download, proxy, url, "127.0.0.2")
        time.sleep(0.5)  # the other client's download runs while the throttled one does
        fast_time, fast_body = timed_download(proxy, url, "127.0.0.3")
        assert not slow.done()
        slow_time, slow_body = slow.result(60)
    assert slow_body == fast_body == pattern_bytes(MB)
    assert 9.0 <= slow_time <= 11.0  # 1 MB at 100 KB/s: 10 s ± 10 %
    assert fast_time < 3.0
    rows = proxy.wait_flows(2)
    assert [r["modified"] for r in rows] == ["rule 'throttle every flow': throttled (100 KB/s down)", None]


def test_added_latency_shows_in_time_to_first_byte(proxy: Proxy, origin: OriginServer) -> None:
    throttle = proxy.session.throttle
    url = f"{origin.url}/json"
    with proxy.client() as c:
        ttfb(c, url)  # the connection is open before timing starts
        base = statistics.median(ttfb(c, url) for _ in range(5))
        throttle.set_profile(Profile(latency=200))
        slowed = statistics.median(ttfb(c, url) for _ in range(5))
        throttle.set_profile(None)
        again = statistics.median(ttfb(c, url) for _ in range(5))
    assert 0.18 <= slowed - base <= 0.22
    assert again - base < 0.05


def test_a_streamed_body_and_an_upload_are_throttled(proxy_with: Start, origin: OriginServer) -> None:
    proxy = proxy_with(max_body="64k", throttle="100/50")
    elapsed, content = timed_download(proxy, f"{origin.url}/bytes/{MB // 2}")
    assert content == pattern_bytes(MB // 2) and 4.5 <= elapsed <= 5.5  # 500 KB at 100 KB/s
    with proxy.client(timeout=60) as c:
        start = time.monotonic()
        echo = c.post(f"{origin.url}/echo", content=b"x" * 100_000).json()
        elapsed = time.monotonic() - start
    # 100 KB up at 50 KB/s, and the echo of it down at 100 KB/s
    assert echo["body_length"] == 100_000 and 2.7 <= elapsed <= 3.3
    rows = proxy.wait_flows(2)
    assert rows[0]["streamed"] == "response" and rows[0]["modified"] == "throttled (100 KB/s down, 50 KB/s up)"


def test_offline_closes_each_request(proxy_with: Start, origin: OriginServer) -> None:
    proxy = proxy_with(throttle="offline")
    out = subprocess.run(["curl", "-sS", "-x", proxy.url, f"{origin.url}/json"], capture_output=True, text=True)
    assert out.returncode == 52 and "Empty reply from server" in out.stderr
    [row] = proxy.wait_flows(1)
    assert row["modified"] == "throttled (offline): connection closed" and row["status"] is None
    # proxycap's own pages are not traffic: a device still gets the setup page and the CA through it
    ca = subprocess.run(["curl", "-sS", "-x", proxy.url, f"{proxy.url}/ca.pem"], capture_output=True, text=True)
    assert ca.returncode == 0 and "BEGIN CERTIFICATE" in ca.stdout, ca.stderr


def test_profiles() -> None:
    assert profiles.parse("3G") == profiles.PRESETS["3g"] and profiles.parse("Slow-3G").name == "slow 3G"
    assert profiles.parse("100") == Profile(down=100, up=100) and profiles.parse(80) == Profile(down=80, up=80)
    assert profiles.parse({"preset": "3g", "latency": 10}) == Profile(10, 180, 84.375)
    assert str(profiles.parse("100/20")) == "100 KB/s down, 20 KB/s up"
    for bad in ("0", "fast", "-5/1", {"down": 0}, {"speed": 1}, True):
        with pytest.raises(ValueError):
            profiles.parse(bad)

"""proxycap's addon manager calls exactly what mitmproxy's calls, in the same order, with the same error handling;
hooks switched off are skipped by both; paced connections deliver what mitmproxy's own writers do."""

from __future__ import annotations

import socket
import time
from typing import Any

from conftest import Proxy
from mitmproxy import exceptions, hooks, options
from mitmproxy.master import Master
from mitmproxy.proxy.layers.http import HttpRequestHook
from mitmproxy.test import tflow
from origins import OriginServer, pattern_bytes

from proxycap.internals.mitmproxy import QuickMaster, switch_hooks
from proxycap.rules.profiles import Profile


class Calls:
    def __init__(self, name: str, log: list[str]) -> None:
        self.name, self.log = name, log

    def request(self, f: Any) -> None:
        self.log.append(f"{self.name}.request")

    def update(self, flows: Any) -> None:
        self.log.append(f"{self.name}.update")


class Quiet:
    """No handlers: skipped by proxycap's manager, asked for nothing by mitmproxy's."""


class Failing:
    def request(self, f: Any) -> None:
        raise ValueError("boom")


class Parent:
    """An addon with children (as mitmproxy's script loader has): their handlers must be reached."""

    def __init__(self, log: list[str]) -> None:
        self.addons = [Calls("child", log)]


class Halting:
    def request(self, f: Any) -> None:
        raise exceptions.AddonHalt


async def _calls(master_type: type[Master]) -> list[str]:
    log: list[str] = []
    m = master_type(options.Options())
    m.addons.add(Calls("a", log), Quiet(), Failing(), Parent(log), Calls("b", log), Halting(), Calls("c", log))
    f = tflow.tflow()
    await m.addons.handle_lifecycle(HttpRequestHook(f))
    m.addons.trigger(hooks.UpdateHook([f]))
    return log


async def test_the_quick_manager_calls_what_mitmproxys_calls() -> None:
    expected = await _calls(Master)
    assert expected == [
        "a.request", "child.request", "b.request",  # the failing addon is logged and skipped; Halting stops the hook
        "a.update", "child.update", "b.update", "c.update",
        "a.update", "child.update", "b.update", "c.update",
    ]  # fmt: skip
    assert await _calls(QuickMaster) == expected


async def _calls_as_the_chain_changes(master_type: type[Master]) -> list[str]:
    log: list[str] = []
    m = master_type(options.Options())
    a, b, parent = Calls("a", log), Calls("b", log), Parent(log)
    m.addons.add(a, Quiet(), parent)
    f = tflow.tflow()
    await m.addons.handle_lifecycle(HttpRequestHook(f))
    log.append("--")
    m.addons.add(b)  # appended to the chain
    parent.addons = [Calls("reloaded", log)]  # a script reloaded under its loader
    await m.addons.handle_lifecycle(HttpRequestHook(f))
    log.append("--")
    m.addons.remove(a)  # the chain is a new list now, as long as the old one once c is added
    m.addons.add(Calls("c", log))
    await m.addons.handle_lifecycle(HttpRequestHook(f))
    return log


async def test_the_quick_manager_follows_addons_added_removed_and_reloaded() -> None:
    """proxycap's manager remembers each hook's handlers: a changed chain must be seen at the next hook."""
    expected = await _calls_as_the_chain_changes(Master)
    assert expected == [
        "a.request", "child.request", "a.update", "child.update", "--",
        "a.request", "reloaded.request", "b.request", "a.update", "reloaded.update", "b.update", "--",
        "reloaded.request", "b.request", "c.request", "reloaded.update", "b.update", "c.update",
    ]  # fmt: skip
    assert await _calls_as_the_chain_changes(QuickMaster) == expected


class Switchable:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    def request(self, f: Any) -> None:
        self.log.append("switchable.request")


async def _calls_with_a_hook_switched(master_type: type[Master]) -> list[str]:
    log: list[str] = []
    m = master_type(options.Options())
    switchable = Switchable(log)
    m.addons.add(Calls("a", log), switchable)
    f = tflow.tflow()
    for on in (False, True, False):
        switch_hooks(m, switchable, ("request",), on)
        await m.addons.handle_lifecycle(HttpRequestHook(f))
        log.append("--")
    return log


async def test_a_hook_switched_off_is_skipped_by_both_managers() -> None:
    expected = await _calls_with_a_hook_switched(Master)
    assert [x for x in expected if x.endswith("request") or x == "--"] == [
        "a.request", "--", "a.request", "switchable.request", "--", "a.request", "--",
    ]  # fmt: skip
    assert await _calls_with_a_hook_switched(QuickMaster) == expected


def _fetch(proxy: Proxy, url: str, http2: bool = False) -> tuple[int, bytes, dict[str, str]]:
    with proxy.client(http2=http2, timeout=60) as c:
        r = c.get(url)
        return r.status_code, r.content, dict(r.headers)


def _raw_close(proxy: Proxy, origin: OriginServer, path: str) -> bytes:
    """An HTTP/1.0-style exchange: the proxy closes the connection after the response."""
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=30) as s:
        s.sendall(f"GET {origin.url}{path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return data.split(b"\r\n\r\n", 1)[1]


def test_paced_writers_deliver_what_stock_writers_do(
    proxy_with: Any, origin: OriginServer, tls_origin: OriginServer
) -> None:
    """Connections written through PacedWriter, unpaced (rate None) and paced, deliver the same bytes as mitmproxy's
    own writers: bodies streamed and buffered, chunked, compressed, TLS and HTTP/2, and a response the proxy closes
    the connection after (the close waits for what is still paced)."""
    stock = proxy_with(max_body="1m")
    paced = proxy_with(max_body="1m")
    throttle = paced.session.throttle
    urls = [
        (f"{origin.url}/bytes/{5_000_000}", False),
        (f"{origin.url}/chunked", False),
        (f"{origin.url}/gzip", False),
        (f"{tls_origin.url}/json", True),
        (f"{tls_origin.url}/bytes/300000", True),
    ]
    expected = [_fetch(stock, url, h2) for url, h2 in urls]
    closing = _raw_close(stock, origin, "/bytes/200000")
    assert closing == pattern_bytes(200_000)

    def without_date(results: list[tuple[int, bytes, dict[str, str]]]) -> list[Any]:
        return [(s, b, {k: v for k, v in h.items() if k != "date"}) for s, b, h in results]

    for profile in (Profile(latency=1), Profile(down=20_000, up=20_000)):  # unpaced writers, paced ones
        throttle.set_profile(profile)
        start = time.monotonic()
        assert without_date([_fetch(paced, url, h2) for url, h2 in urls]) == without_date(expected)
        assert _raw_close(paced, origin, "/bytes/200000") == closing
    assert time.monotonic() - start >= 5_500_000 / 20e6  # they were paced


# --- mitmproxy's curl and HTTPie exports without a Master ---------------------------------------------------------


def _with_body(content: bytes) -> Any:
    f = tflow.tflow()
    f.request.method = "POST"
    f.request.headers["content-type"] = "text/plain"
    f.request.content = content
    return f


def test_command_head_is_mitmproxys_command_less_its_body() -> None:
    """Without a Master (``ctx.options`` unset), for a body mitmproxy quotes as it is: its own command, whose body
    argument is what command_head leaves for the caller to add."""
    from mitmproxy import ctx
    from mitmproxy.addons import export

    from proxycap.internals.mitmproxy import command_head

    saved = getattr(ctx, "options", None)
    if saved is not None:
        del ctx.options
    try:
        for kind, make, arg in (
            ("curl", export.curl_command, " -d plain"),
            ("httpie", export.httpie_command, " <<< plain"),
        ):
            f = _with_body(b"plain")
            ctx.options = options.Options()  # mitmproxy's own call needs the option registered...
            ctx.options.add_option("export_preserve_original_ip", bool, False, "")
            expected = make(f)
            del ctx.options  # ...command_head does not
            assert command_head(kind, f) + arg == expected
            empty = _with_body(b"")
            ctx.options = options.Options()
            ctx.options.add_option("export_preserve_original_ip", bool, False, "")
            expected = make(empty)
            del ctx.options
            assert command_head(kind, empty) == expected
            assert not hasattr(ctx, "options")  # left as it was
    finally:
        if saved is not None:
            ctx.options = saved


def test_command_head_uses_a_running_masters_option() -> None:
    from mitmproxy import ctx

    from proxycap.internals.mitmproxy import command_head

    saved = getattr(ctx, "options", None)
    try:
        ctx.options = options.Options()
        ctx.options.add_option("export_preserve_original_ip", bool, True, "")
        f = tflow.tflow()
        f.request.host = "example.com"
        assert "--resolve 'example.com:22:[192.168.0.1]'" in command_head("curl", f)
        assert ctx.options.export_preserve_original_ip is True
    finally:
        if saved is not None:
            ctx.options = saved
        else:
            del ctx.options

"""proxycap's addon manager calls exactly what mitmproxy's calls, in the same order, with the same error handling."""

from __future__ import annotations

from typing import Any

from mitmproxy import exceptions, hooks, options
from mitmproxy.master import Master
from mitmproxy.proxy.layers.http import HttpRequestHook
from mitmproxy.test import tflow

from proxycap.internals.mitmproxy import QuickMaster


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

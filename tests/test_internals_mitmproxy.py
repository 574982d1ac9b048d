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

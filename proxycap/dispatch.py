"""mitmproxy's addon manager, minus the cost of asking addons that have no handler for a hook.

For every hook, and again for the ``update`` hook after every flow hook, mitmproxy's ``trigger_event`` walks the
whole addon chain (30-odd default addons) and, for each one, enters a context manager, creates and awaits a
coroutine and walks a generator, although a given hook has a handler in a handful of them. That is ~35 µs per
hook on this project's bench machine, 8 hooks per keep-alive request: a quarter of the proxy thread's time per
request (bench/RESULTS.md §3.3). Skipping the addons without a handler, before any of that, changes nothing
else: the ones with a handler, and any addon with children (the script loader), go through mitmproxy's own path.
Which addons those are is worked out once per hook, and again when the chain changes.
"""

from __future__ import annotations

from typing import Any

from mitmproxy import addonmanager, exceptions, hooks, options
from mitmproxy.master import Master


class QuickAddonManager(addonmanager.AddonManager):
    def __init__(self, master: Any) -> None:
        super().__init__(master)
        # Per hook: (the chain list it was computed from, its length then, the addons). mitmproxy appends to the
        # chain or replaces the list, never edits it in place otherwise, so list and length say it is current.
        self._cache: dict[str, tuple[list[Any], int, list[Any]]] = {}

    def _handlers(self, event: hooks.Hook) -> list[Any]:
        """The chain's addons that mitmproxy's own walk could find a handler in: one with an attribute named after
        the hook, or with children (the script loader, whose scripts come and go). Cached: 8 lookups per request."""
        chain, name = self.chain, event.name
        cached = self._cache.get(name)
        if cached is None or cached[0] is not chain or cached[1] != len(chain):
            handlers = [a for a in chain if getattr(a, name, None) or hasattr(a, "addons")]
            cached = self._cache[name] = (chain, len(chain), handlers)
        return cached[2]

    async def trigger_event(self, event: hooks.Hook) -> None:
        for addon in self._handlers(event):
            try:
                with addonmanager.safecall():
                    await self.invoke_addon(addon, event)
            except exceptions.AddonHalt:
                return

    def trigger(self, event: hooks.Hook) -> None:
        for addon in self._handlers(event):
            try:
                with addonmanager.safecall():
                    self.invoke_addon_sync(addon, event)
            except exceptions.AddonHalt:
                return


class QuickMaster(Master):
    """mitmproxy's ``Master`` with the quicker addon manager; built before any addon is added."""

    def __init__(self, opts: options.Options) -> None:
        super().__init__(opts)
        self.addons = QuickAddonManager(self)

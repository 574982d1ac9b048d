"""mitmproxy's addon manager, minus the cost of asking addons that have no handler for a hook.

For every hook, and again for the ``update`` hook after every flow hook, mitmproxy's ``trigger_event`` walks the
whole addon chain (30-odd default addons) and, for each one, enters a context manager, creates and awaits a
coroutine and walks a generator, although a given hook has a handler in a handful of them. That is ~35 µs per
hook on this project's bench machine, 8 hooks per keep-alive request: a quarter of the proxy thread's time per
request (bench/RESULTS.md §3.1). Skipping the addons without a handler, before any of that, changes nothing
else: the ones with a handler, and any addon with children (the script loader), go through mitmproxy's own path.
"""

from __future__ import annotations

from typing import Any

from mitmproxy import addonmanager, exceptions, hooks, options
from mitmproxy.master import Master


class QuickAddonManager(addonmanager.AddonManager):
    def _handlers(self, event: hooks.Hook) -> list[Any]:
        """The chain's addons that mitmproxy's own walk could find a handler in: one with an attribute named after
        the hook, or with children (the script loader)."""
        name = event.name
        return [a for a in self.chain if getattr(a, name, None) or hasattr(a, "addons")]

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

"""Command palette provider: every action in the key table, by name, with its key as a reminder."""

from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

from proxycap.tui.keys import KEYS, Key


class ProxycapCommands(Provider):
    def _available(self) -> list[Key]:
        """Actions that apply now (the app hides e.g. inspector actions while no flow is inspected)."""
        seen: set[str] = set()
        out = []
        for k in KEYS:
            name = k.action.split("(", 1)[0]
            if k.action in seen or name == "command_palette" or self.app.check_action(name, ()) is not True:
                continue
            seen.add(k.action)
            out.append(k)
        return out

    def _command(self, k: Key) -> partial:
        return partial(self.app.run_action, k.action)

    async def discover(self) -> Hits:
        for k in self._available():
            yield DiscoveryHit(f"{k.title}  ({k.shown_keys})", self._command(k), help=k.help)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for k in self._available():
            text = f"{k.title}  ({k.shown_keys})"
            score = max(matcher.match(text), matcher.match(k.help) * 0.8)
            if score > 0:
                yield Hit(score, matcher.highlight(text), self._command(k), text=text, help=k.help)

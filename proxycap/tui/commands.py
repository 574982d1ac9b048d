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
            if k.scope != "app" or k.action in seen or name == "command_palette":
                continue
            if self.app.check_action(name, ()) is not True:
                continue
            seen.add(k.action)
            out.append(k)
        return out

    def _command(self, k: Key) -> partial:
        return partial(self.app.run_action, k.action)

    @staticmethod
    def _text(k: Key) -> str:
        return f"{k.title}  ({k.shown_keys})" if k.keys else k.title

    async def discover(self) -> Hits:
        for k in self._available():
            yield DiscoveryHit(self._text(k), self._command(k), help=k.help)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for k in self._available():
            text = self._text(k)
            score = max(matcher.match(text), matcher.match(k.help) * 0.8)
            if score > 0:
                yield Hit(score, matcher.highlight(text), self._command(k), text=text, help=k.help)

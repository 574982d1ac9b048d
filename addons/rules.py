"""Rules addon: the user's rules file (``proxycap.rules``) applied to traffic in flight, with a hit count per rule.

Each hook runs the enabled rules that act in it, top to bottom, each if its client and filter match the flow; what
a rule changed is noted on the flow (its summary's ``modified``), and the flow is recorded as it was sent and
received. A hook with no rule acting in it is switched off, so rules cost the proxy nothing until there are some.

Threading: the hooks run on the proxy's loop and read an immutable snapshot of the compiled rules. The entry points
may be called from any thread but the proxy's (one at a time: they hold a lock while they read or write the file);
a change is checked (``RuleError`` with the reason in one line if the rule is not valid: nothing is changed), saved
to the file, then swapped in for the next flows, waiting one turn of the proxy's loop for its hooks: call them from
a worker thread. ``rules()`` and ``problem()`` never wait for the loop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import threading
from pathlib import Path
from typing import Any

from mitmproxy import ctx, http

from proxycap.capture import onloop
from proxycap.capture.summary import META_LOCAL, mark_modified, peer
from proxycap.internals.mitmproxy import switch_hooks
from proxycap.rules import model
from proxycap.rules.actions import Compiled, compile_rule
from proxycap.rules.model import Rule, RuleError

logger = logging.getLogger(__name__)

HOOKS = ("requestheaders", "request", "responseheaders", "response")


@dataclasses.dataclass(frozen=True)
class RuleInfo:
    """A rule as the rules screen lists it."""

    id: int  # stable for this run, not stored
    rule: Rule | None  # None: the table as written is not a rule (``error`` says why)
    table: dict[str, Any]  # as written in the file
    error: str | None
    hits: int


@dataclasses.dataclass
class _Item:
    id: int
    table: dict[str, Any]
    rule: Rule | None
    error: str | None = None
    compiled: Compiled | None = None


class Rules:
    def __init__(self) -> None:
        self.path: Path | None = None
        self._items: list[_Item] = []
        self._problem: str | None = None  # why the file could not be read: then it is never written
        self._lock = threading.RLock()
        self._ids = itertools.count(1)
        self._by_hook: dict[str, tuple[Compiled, ...]] = {h: () for h in HOOKS}
        self._hits: dict[int, int] = {}
        self._throttling = False
        self._loop: asyncio.AbstractEventLoop | None = None
        for name in HOOKS:  # idle until there are rules
            setattr(self, name, None)

    def load(self, loader: Any) -> None:
        loader.add_option("proxycap_rules", str, "", "proxycap's rules file (TOML); empty: no rules.")

    def configure(self, updated: set[str]) -> None:
        if "proxycap_rules" in updated:
            self.path = Path(ctx.options.proxycap_rules).expanduser() if ctx.options.proxycap_rules else None
            self.reload()

    def running(self) -> None:
        self._loop = asyncio.get_running_loop()

    # --- entry points (any thread) ------------------------------------------------------------

    def problem(self) -> str | None:
        """Why the file could not be read (then no rule applies and changes are refused), or None."""
        return self._problem

    def rules(self) -> tuple[RuleInfo, ...]:
        with self._lock:
            return tuple(RuleInfo(i.id, i.rule, i.table, i.error, self._hits.get(i.id, 0)) for i in self._items)

    def reload(self) -> None:
        """Read the file again (hit counts start over); problems are logged and kept in ``rules()``."""
        with self._lock:
            entries, self._problem = model.load(self.path) if self.path else ([], None)
            if self._problem:
                logger.warning(f"rules: {self._problem}; no rules apply, and the file is left as it is")
            self._items = [_Item(next(self._ids), e.table, e.rule, e.error) for e in entries]
            self._hits = {}
            for n, item in enumerate(self._items, 1):
                if item.rule is not None and item.error is None:
                    try:
                        item.compiled = compile_rule(item.id, item.rule, self._base)
                    except RuleError as e:
                        item.error = str(e)
                if item.error:
                    label = item.rule.label if item.rule else item.table.get("name") or item.table.get("action")
                    logger.warning(f"rules: {self.path}: rule {n} ({label}): {item.error}; the other rules apply")
            self._swap()

    def add(self, rule: Rule, index: int | None = None) -> int:
        """Add a rule (at ``index``, else last); returns its id."""
        with self._lock:
            item = _Item(next(self._ids), model.to_table(rule), rule)
            self._change(lambda items: items.insert(len(items) if index is None else index, item))
            return item.id

    def edit(self, rule_id: int, rule: Rule) -> None:
        """Replace a rule (a broken one too) with ``rule``; its hit count stays."""

        def edit(items: list[_Item]) -> None:
            items[self._index(rule_id)] = _Item(rule_id, model.to_table(rule), rule)

        with self._lock:
            self._change(edit)

    def set_enabled(self, rule_id: int, enabled: bool) -> None:
        with self._lock:
            rule = self._items[self._index(rule_id)].rule
            if rule is None:
                raise RuleError("a broken rule cannot be enabled: edit it first")
            self.edit(rule_id, dataclasses.replace(rule, enabled=enabled))

    def move(self, rule_id: int, index: int) -> None:
        """Move a rule to ``index`` (0: first, applied before the others)."""
        with self._lock:
            self._change(lambda items: items.insert(index, items.pop(self._index(rule_id))))

    def remove(self, rule_id: int) -> None:
        with self._lock:
            self._change(lambda items: items.pop(self._index(rule_id)))

    def mock(self, flow: http.HTTPFlow, index: int | None = None) -> int:
        """ "Mock this": a respond rule answering the flow's method and URL with its response; returns its id. A big
        or binary body goes to a file beside the rules file."""
        if self.path is None:
            raise RuleError("no rules file (start proxycap with --rules FILE)")
        return self.add(model.mock_rule(flow, self.path.parent), index)

    # --- changes ------------------------------------------------------------------------------

    @property
    def _base(self) -> Path:
        return self.path.parent if self.path else Path.cwd()

    def _index(self, rule_id: int) -> int:
        for n, item in enumerate(self._items):
            if item.id == rule_id:
                return n
        raise KeyError(f"no rule {rule_id}")

    def _change(self, change: Any) -> None:
        """Apply ``change`` to a copy of the rules, check the new ones, save, then swap them in."""
        if self.path is None:
            raise RuleError("no rules file (start proxycap with --rules FILE)")
        if self._problem:
            raise RuleError(f"{self._problem}: fix the file (nothing was changed), then reload")
        items = [dataclasses.replace(i) for i in self._items]
        change(items)
        for item in items:
            if item.rule is not None and item.compiled is None and item.error is None:
                item.compiled = compile_rule(item.id, item.rule, self._base)  # RuleError: nothing changed
        model.save(self.path, [i.table if i.error or i.rule is None else model.to_table(i.rule) for i in items])
        self._items = items
        self._swap()

    def _swap(self) -> None:
        by_hook: dict[str, list[Compiled]] = {h: [] for h in HOOKS}
        for item in self._items:
            if item.compiled is not None and item.rule is not None and item.rule.enabled:
                for hook in item.compiled.acts:
                    by_hook[hook].append(item.compiled)
        self._by_hook = {h: tuple(rules) for h, rules in by_hook.items()}
        self._throttling = any(
            i.rule.throttle is not None for i in self._items if i.compiled and i.rule and i.rule.enabled
        )
        if self._loop is None:  # configuring, on the loop, before it runs
            self._switch()
        else:  # in place before the caller goes on: the next flow sees the change
            onloop.call(self._loop, self._switch)

    def _switch(self) -> None:
        for hook, rules in self._by_hook.items():
            switch_hooks(ctx.master, self, (hook,), bool(rules))
        if (throttle := ctx.master.addons.get("throttle")) is not None:  # it paces what rules throttle
            throttle.by_rules(self._throttling)

    # --- hooks (switched on and off as above) -------------------------------------------------

    def _apply(self, hook: str, f: http.HTTPFlow) -> None:
        if META_LOCAL in f.metadata:  # proxycap's own answer (the setup page, a refusal): not traffic
            return
        ip = None
        for rule in self._by_hook[hook]:
            if rule.client is not None:
                ip = ip or peer(f.client_conn.peername)[0]
                if ip != rule.client:
                    continue
            if not rule.matches(f):
                continue
            if done := rule.acts[hook](f):
                mark_modified(f, f"{rule.title}: {done}")
                if hook == rule.counted:
                    self._hits[rule.id] = self._hits.get(rule.id, 0) + 1

    def requestheaders(self, f: http.HTTPFlow) -> None:  # type: ignore[no-redef]
        self._apply("requestheaders", f)

    def request(self, f: http.HTTPFlow) -> None:  # type: ignore[no-redef]
        self._apply("request", f)

    def responseheaders(self, f: http.HTTPFlow) -> None:  # type: ignore[no-redef]
        self._apply("responseheaders", f)

    def response(self, f: http.HTTPFlow) -> None:  # type: ignore[no-redef]
        self._apply("response", f)


addons = [Rules()]

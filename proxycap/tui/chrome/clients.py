"""The clients panel: one row per client IP with a readable name, counts and last activity.

Names, best first: the label the user set, one derived from the User-Agent ("curl 8.5", "Firefox 128 on
Linux"), reverse DNS (looked up in threads, cached, never awaited by the UI), "localhost" for loopback.
The rows are computed in a worker (``client_rows``) from ``Store.clients()`` about once a second.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import ipaddress
import re
import socket

from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from proxycap.query import fmt
from proxycap.storage.store import Store

ALL = "*"  # option id of the "all clients" row

_OS = (
    ("Windows", "Windows"),
    ("Android", "Android"),
    ("iPhone", "iOS"),
    ("iPad", "iPadOS"),
    ("CrOS", "ChromeOS"),
    ("Mac OS X", "macOS"),
    ("Macintosh", "macOS"),
    ("Linux", "Linux"),
)
# Browser tokens, most specific first (Edge and Opera also say Chrome; Chrome also says Safari).
_BROWSERS = (
    ("Edg", "Edge"),
    ("OPR", "Opera"),
    ("Firefox", "Firefox"),
    ("Chrome", "Chrome"),
    ("Version", "Safari"),
)
_PRODUCT = re.compile(r"^([A-Za-z][\w.+-]*)/v?(\d+(?:\.\d+)?)")


def ua_label(user_agent: str | None) -> str | None:
    """A short name for a User-Agent: "Firefox 128 on Linux", "curl 8.5", "python-httpx 0.27"."""
    if not user_agent:
        return None
    ua = user_agent.strip()
    if ua.startswith("Mozilla/"):
        system = next((name for token, name in _OS if token in ua), None)
        for token, name in _BROWSERS:
            if m := re.search(rf"\b{token}/(\d+)", ua):
                return f"{name} {m.group(1)}" + (f" on {system}" if system else "")
        return f"browser on {system}" if system else "browser"
    if m := _PRODUCT.match(ua):
        return f"{m.group(1)} {m.group(2)}"
    return ua.split()[0][:24]


class ReverseDNS:
    """Cached reverse lookups in a small thread pool; callers wait at most ``timeout`` for new names."""

    def __init__(self, workers: int = 4) -> None:
        self._pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="proxycap-rdns")
        self._lookups: dict[str, concurrent.futures.Future[str | None]] = {}

    @staticmethod
    def _lookup(ip: str) -> str | None:
        try:
            return socket.gethostbyaddr(ip)[0]
        except (OSError, UnicodeError):
            return None

    def names(self, ips: list[str], timeout: float = 0.3) -> dict[str, str]:
        """Names known for ``ips`` (loopback is "localhost"); unresolved ones are tried in the background."""
        out: dict[str, str] = {}
        waiting = []
        for ip in ips:
            try:
                if ipaddress.ip_address(ip).is_loopback:
                    out[ip] = "localhost"
                    continue
            except ValueError:
                continue
            if ip not in self._lookups:
                self._lookups[ip] = self._pool.submit(self._lookup, ip)
            waiting.append(ip)
        concurrent.futures.wait([self._lookups[ip] for ip in waiting], timeout=timeout)
        for ip in waiting:
            future = self._lookups[ip]
            if future.done() and (name := future.result()):
                out[ip] = name
        return out

    @property
    def pending(self) -> bool:
        """Lookups still running: their names will show at a later refresh."""
        return any(not f.done() for f in self._lookups.values())

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


@dataclasses.dataclass(frozen=True, slots=True)
class ClientRow:
    ip: str
    name: str  # label, or derived name, or "" (then the IP is the name)
    labelled: bool  # the user chose the name
    flows: int
    bytes: int
    errors: int
    last_seen: float | None


def client_rows(store: Store, resolver: ReverseDNS, include: str | None = None) -> list[ClientRow]:
    """Rows for the panel (a worker calls this; reverse DNS may wait briefly). ``include`` keeps a client
    that has no flows yet (the one the UI was started focused on)."""
    stats = store.clients()
    named = {c.ip: c.label or ua_label(c.user_agent) for c in stats}
    dns = resolver.names([ip for ip, name in named.items() if not name])
    rows = [
        ClientRow(
            c.ip, named[c.ip] or dns.get(c.ip, ""), bool(c.label), c.flows, c.bytes or 0, c.errors or 0, c.last_seen
        )
        for c in stats
    ]
    if include and include not in {c.ip for c in stats}:
        rows.append(ClientRow(include, store.labels().get(include, ""), False, 0, 0, 0, None))
    return rows


def _prompt(row: ClientRow | None, total: int, active: bool, width: int) -> Text:
    """Two lines: name, flow count and errors; then IP, bytes and when it was last seen."""
    name = "All clients" if row is None else (row.name or row.ip)
    count = Text(f"{(row.flows if row else total):,}")
    if row and row.errors:
        count.append(f" {row.errors} err", Style(color="red"))
    first = Text(("▸" if active else " ") + name, style=Style(bold=active), no_wrap=True, overflow="ellipsis")
    first.truncate(max(1, width - count.cell_len - 1), overflow="ellipsis")
    first.pad_right(width - first.cell_len - count.cell_len)
    first.append_text(count)
    if row is None:
        return first
    parts = [row.ip] if row.name else []
    parts += [fmt.size(row.bytes), fmt.clock(row.last_seen)[:8] if row.last_seen else "no flows yet"]
    second = Text(" " + " · ".join(parts), Style(dim=True), no_wrap=True, overflow="ellipsis")
    second.truncate(width, overflow="ellipsis")
    return Text("\n").join([first, second])


class ClientsList(OptionList):
    """The panel's list, with its keys on the key bar while it has the keyboard."""

    BINDINGS = [
        Binding("enter", "select", "Show its flows"),
        Binding("r", "app.rename_client", "Rename"),
        Binding("escape,b", "app.focus_flows", "Back to flows"),
    ]


class ClientsPanel(Vertical):
    """Selecting a row (enter or click) filters the flow list to that client; "All clients" clears it."""

    class Selected(Message):
        def __init__(self, ip: str | None) -> None:
            super().__init__()
            self.ip = ip

    def __init__(self, active: str | None = None, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.active = active
        self.rows: list[ClientRow] = []

    def compose(self) -> ComposeResult:
        yield Static("Clients", id="clients-title")
        with Vertical(id="clients-body"):
            yield ClientsList(id="clients-list")

    @property
    def options(self) -> OptionList:
        return self.query_one("#clients-list", OptionList)

    def on_mount(self) -> None:
        self.update_rows([])

    def on_resize(self) -> None:
        self.update_rows(self.rows, force=True)

    def highlighted_ip(self) -> str | None:
        option = self.options.highlighted_option
        return None if option is None or option.id == ALL else option.id

    def row(self, ip: str) -> ClientRow | None:
        return next((r for r in self.rows if r.ip == ip), None)

    def update_rows(self, rows: list[ClientRow], force: bool = False) -> None:
        """Show new counts; rebuilds the options only when clients come or go (keeps the highlight)."""
        if rows == self.rows and not force and self.options.option_count:
            return
        options = self.options
        width = max(10, options.scrollable_content_region.width)
        total = sum(r.flows for r in rows)
        prompts = {ALL: _prompt(None, total, self.active is None, width)}
        prompts |= {r.ip: _prompt(r, total, r.ip == self.active, width) for r in rows}
        if [o.id for o in options.options] == list(prompts):
            for option_id, prompt in prompts.items():
                options.replace_option_prompt(option_id, prompt)
        else:
            keep = options.highlighted_option.id if options.highlighted_option else (self.active or ALL)
            options.set_options(Option(prompt, id=option_id) for option_id, prompt in prompts.items())
            options.highlighted = options.get_option_index(keep) if keep in prompts else 0
        self.rows = rows
        title = f"Clients ({len(rows)})"
        if (static := self.query_one("#clients-title", Static)).content != title:
            static.update(title, layout=False)  # one line of fixed size: a repaint, not a reflow of the screen

    def activate(self, ip: str | None) -> None:
        self.active = ip
        self.update_rows(self.rows, force=True)
        if (key := ip or ALL) in [o.id for o in self.options.options]:
            self.options.highlighted = self.options.get_option_index(key)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        ip = None if event.option.id == ALL else event.option.id
        self.activate(ip)
        self.post_message(self.Selected(ip))

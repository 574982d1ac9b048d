"""The clients panel: one row per client IP with a readable name, counts and last activity, and the clients waiting
to be allowed.

Names, best first: the label the user set; for a client on this machine, the program that connected ("curl (4242)");
one derived from the User-Agent ("curl 8.5", "Firefox 128 on Linux"); reverse DNS (looked up in threads, cached,
never awaited by the UI), "localhost" for loopback. The rows are computed in a worker (``client_rows``) from
``Store.clients()`` about once a second. Clients refused by the proxy are listed first, as "pending" with their first
request (or "denied"), until someone allows them (``a``, ``A``) or denies them (``d``); the app hands the panel who
waits (``set_access``) whenever the capture says it changed.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import ipaddress
import socket
from typing import Any

from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from proxycap.capture.processes import is_local, local_addresses
from proxycap.query import fmt
from proxycap.query.naming import ua_label
from proxycap.storage.store import Query, Store

ALL = "*"  # option id of the "all clients" row
ACCESS_STYLES = {"pending": Style(color="yellow", bold=True), "denied": Style(color="red", bold=True)}
REQUEST = Style(color="yellow")
REQUEST_LINES = 2  # at most, for a waiting client's first request (the host and path say what is asking)


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


def program_label(processes: list[str]) -> str | None:
    """A local client's name from the programs that connected from it (the newer first): "curl (4242)" for one, their
    names for several ("firefox, curl")."""
    if len(processes) <= 1:
        return processes[0] if processes else None
    return ", ".join(dict.fromkeys(p.rsplit(" (", 1)[0] for p in processes))


class ProgramNames:
    """The programs behind each local client's flows (their ``process`` column), those first seen at a later refresh
    first. Each refresh reads only the rows stored since the last one (an indexed range per client): the panel
    refreshes about once a second."""

    def __init__(self) -> None:
        self._local = local_addresses()
        self._read: dict[str, tuple[int, int]] = {}  # ip → (rows read up to, its flow count then)
        self._programs: dict[str, list[str]] = {}  # ip → "name (pid)", newest first

    def name(self, store: Store, ip: str, flows: int, top: int) -> str | None:
        """The name of client ``ip`` (which has ``flows`` flows) from the store's rows up to ``top``."""
        if not is_local(ip, self._local):
            return None
        upto, counted = self._read.get(ip, (0, 0))
        if flows < counted:  # flows were deleted: their programs may be gone
            upto, self._programs[ip] = 0, []
        if top > upto:
            new = sorted(p for p in store.distinct("process", Query(client_ip=ip, after_seq=upto, upto_seq=top)) if p)
            self._programs[ip] = new + [p for p in self._programs.get(ip, []) if p not in new]
        self._read[ip] = (top, flows)
        return program_label(self._programs.get(ip, []))


class ClientNames:
    """Where client names come from besides labels and User-Agents: programs on this machine, and reverse DNS."""

    def __init__(self) -> None:
        self.programs = ProgramNames()
        self.dns = ReverseDNS()

    @property
    def pending(self) -> bool:
        return self.dns.pending

    def close(self) -> None:
        self.dns.close()


@dataclasses.dataclass(frozen=True, slots=True)
class ClientRow:
    ip: str
    name: str  # label, or derived name, or "" (then the IP is the name)
    labelled: bool  # the user chose the name
    flows: int
    bytes: int
    errors: int
    last_seen: float | None
    access: str = ""  # "pending" (refused, waiting to be allowed) or "denied"; "" for clients the proxy serves
    request: str | None = None  # a refused client's first request
    first_seen: float | None = None  # … and when it came
    requests: int = 0  # … and how many it sent until the panel last asked


def client_rows(store: Store, names: ClientNames, include: str | None = None) -> list[ClientRow]:
    """Rows for the panel (a worker calls this; reverse DNS may wait briefly). ``include`` keeps a client
    that has no flows yet (the one the UI was started focused on)."""
    top = store.max_seq()  # before the counts: rows stored meanwhile are read at the next refresh
    stats = store.clients()
    named = {c.ip: c.label or names.programs.name(store, c.ip, c.flows, top) or ua_label(c.user_agent) for c in stats}
    dns = names.dns.names([ip for ip, name in named.items() if not name])
    rows = [
        ClientRow(
            c.ip, named[c.ip] or dns.get(c.ip, ""), bool(c.label), c.flows, c.bytes or 0, c.errors or 0, c.last_seen
        )
        for c in stats
    ]
    if include and include not in {c.ip for c in stats}:
        rows.append(ClientRow(include, store.labels().get(include, ""), False, 0, 0, 0, None))
    return rows


def with_access(rows: list[ClientRow], access: dict[str, Any], first_requests: dict[str, str]) -> list[ClientRow]:
    """The panel's rows with who the proxy refuses (``Control.client_access``): pending and denied clients first, with
    their first request (``first_requests`` keeps those seen while pending, for clients denied since), then the
    others, and the clients allowed this session that have no flows yet."""
    known = {r.ip: r for r in rows}
    blank = ClientRow("", "", False, 0, 0, 0, None)
    waiting: list[ClientRow] = []
    for p in access.get("pending", ()):
        ip = p["ip"]
        first_requests.setdefault(ip, p["request"])
        row = known.get(ip) or dataclasses.replace(blank, ip=ip)
        waiting.append(
            dataclasses.replace(
                row, access="pending", request=p["request"], first_seen=p["first_seen"], requests=p["requests"]
            )
        )
    for ip in access.get("denied", ()):
        row = known.get(ip) or dataclasses.replace(blank, ip=ip)
        waiting.append(dataclasses.replace(row, access="denied", request=first_requests.get(ip)))
    refused = {r.ip for r in waiting}
    new = [dataclasses.replace(blank, ip=ip) for ip in access.get("allowed", ()) if ip not in known]
    return waiting + [r for r in rows if r.ip not in refused] + [r for r in new if r.ip not in refused]


def _line(text: str, width: int, style: Style) -> Text:
    line = Text(" " + text, style, no_wrap=True, overflow="ellipsis")
    line.truncate(width, overflow="ellipsis")
    return line


def _prompt(row: ClientRow | None, total: int, active: bool, width: int) -> Text:
    """Two lines: name, flow count and errors; then IP, bytes and when it was last seen. A client waiting to be
    allowed says "pending" instead of a count, and its first request (on up to ``REQUEST_LINES`` lines) comes before
    the IP, when it came and how many it sent."""
    name = "All clients" if row is None else (row.name or row.ip)
    if row is not None and row.access:
        count = Text(row.access, ACCESS_STYLES[row.access])
    else:
        count = Text(f"{(row.flows if row else total):,}")
    if row and row.errors and not row.access:
        count.append(f" {row.errors} err", Style(color="red"))
    first = Text(("▸" if active else " ") + name, style=Style(bold=active), no_wrap=True, overflow="ellipsis")
    first.truncate(max(1, width - count.cell_len - 1), overflow="ellipsis")
    first.pad_right(width - first.cell_len - count.cell_len)
    first.append_text(count)
    if row is None:
        return first
    lines = [first]
    parts = [row.ip] if row.name else []
    if row.access:
        request, room = row.request or "refused from now on", max(1, width - 1)
        pieces = [request[i : i + room] for i in range(0, len(request), room)]
        if len(pieces) > REQUEST_LINES:
            pieces = [*pieces[: REQUEST_LINES - 1], pieces[REQUEST_LINES - 1][:-1] + "…"]
        lines += [_line(piece, width, REQUEST) for piece in pieces]
        parts += [f"since {fmt.clock(row.first_seen)[:8]}"] if row.first_seen else []
        parts += [f"{row.requests} requests"] if row.requests > 1 else []
    else:
        parts += [fmt.size(row.bytes), fmt.clock(row.last_seen)[:8] if row.last_seen else "no flows yet"]
    if parts:
        lines.append(_line(" · ".join(parts), width, Style(dim=True)))
    return Text("\n").join(lines)


class ClientsList(OptionList):
    """The panel's list, with its keys on the key bar while it has the keyboard."""

    BINDINGS = [
        Binding("enter", "select", "Show its flows"),
        Binding("r", "app.rename_client", "Rename"),
        Binding("a", "app.allow_client", "Allow"),
        Binding("A", "app.allow_client(True)", "Allow always"),
        Binding("d", "app.deny_client", "Deny"),
        Binding("escape,b", "app.focus_flows", "Back to flows"),
    ]


class ClientsPanel(Vertical):
    """Selecting a row (enter or click) filters the flow list to that client; "All clients" clears it."""

    class Selected(Message):
        def __init__(self, ip: str | None) -> None:
            super().__init__()
            self.ip = ip

    class Entered(Message):
        """The panel got the keyboard: a moment to bring the waiting clients' counts up to date."""

    def __init__(self, active: str | None = None, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.active = active
        self.stats: list[ClientRow] = []  # from the store
        self.access: dict[str, Any] = {}  # who the proxy refuses (``Control.client_access``)
        self._first_requests: dict[str, str] = {}
        self.rows: list[ClientRow] = []  # as shown: both together

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
        self.update_rows(self.stats, force=True)

    def on_descendant_focus(self) -> None:
        self.post_message(self.Entered())

    def set_access(self, access: dict[str, Any]) -> None:
        self.access = access
        self.update_rows(self.stats, force=True)

    def waiting(self) -> list[str]:
        """The clients waiting to be allowed, oldest first."""
        return [p["ip"] for p in self.access.get("pending", ())]

    def highlighted_ip(self) -> str | None:
        option = self.options.highlighted_option
        return None if option is None or option.id == ALL else option.id

    def row(self, ip: str) -> ClientRow | None:
        return next((r for r in self.rows if r.ip == ip), None)

    def update_rows(self, rows: list[ClientRow], force: bool = False) -> None:
        """Show new counts; rebuilds the options only when clients come or go (keeps the highlight)."""
        if rows == self.stats and not force and self.options.option_count:
            return
        self.stats = rows
        rows = with_access(rows, self.access, self._first_requests)
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
        pending = sum(r.access == "pending" for r in rows)
        title = f"Clients ({len(rows)})" + (f" · {pending} pending" if pending else "")
        if (static := self.query_one("#clients-title", Static)).content != title:
            static.update(title, layout=False)  # one line of fixed size: a repaint, not a reflow of the screen

    def activate(self, ip: str | None) -> None:
        self.active = ip
        self.update_rows(self.stats, force=True)
        if (key := ip or ALL) in [o.id for o in self.options.options]:
            self.options.highlighted = self.options.get_option_index(key)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        ip = None if event.option.id == ALL else event.option.id
        self.activate(ip)
        self.post_message(self.Selected(ip))

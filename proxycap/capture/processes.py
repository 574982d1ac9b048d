"""Which program on this machine opened a client connection: its process name and PID, from the OS's socket table
(psutil), for Fiddler's "Process" column.

Reading the socket table means reading every process's open files (Linux's /proc), milliseconds of Python that must
stay off the proxy's loop: the recorder queues each local client connection (``lookup``, O(1)), a thread looks up
what has queued in one go and hands the names back. Processes that connected before are asked first, each alone,
which is cheap; only connections they do not own need the whole table.
"""

from __future__ import annotations

import collections
import ipaddress
import logging
import queue
import socket
import threading
from collections.abc import Callable, Iterable
from typing import Any

import psutil

logger = logging.getLogger(__name__)

Key = tuple[str, int, int]  # the client's address and port, the proxy's port it connected to
RECENT = 4  # processes asked first


def local_addresses() -> frozenset[str]:
    """Every address of this machine's interfaces: a client from one of them is a program on this machine."""
    families = (socket.AF_INET, socket.AF_INET6)
    return frozenset(
        a.address.split("%", 1)[0] for addrs in psutil.net_if_addrs().values() for a in addrs if a.family in families
    )


def _normal(ip: str) -> str:
    return ip[7:] if ip.startswith("::ffff:") and "." in ip else ip


def is_local(ip: str, local: frozenset[str]) -> bool:
    if ip in local:
        return True
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return False


class ProcessNames:
    """Looks up the programs behind client connections in a thread; ``deliver`` gets {client id: "name (pid)" or
    None} from that thread, per batch."""

    def __init__(self, deliver: Callable[[dict[str, str | None]], None]) -> None:
        self._deliver = deliver
        self._queue: queue.SimpleQueue[tuple[str, Key] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._recent: collections.OrderedDict[int, None] = collections.OrderedDict()

    def lookup(self, client_id: str, peer: tuple[str, int], proxy_port: int) -> None:
        """Queue a lookup of the program behind a client connection (from the proxy's loop: O(1))."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="proxycap-processes", daemon=True)
            self._thread.start()
        self._queue.put((client_id, (peer[0], peer[1], proxy_port)))

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=5)
            self._thread = None

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            batch: dict[Key, str] = {}
            while item is not None:
                batch[item[1]] = item[0]
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            names: dict[Key, str] = {}
            if batch:
                try:
                    names = self._resolve(set(batch))
                except Exception:  # a lookup must never keep flows waiting for their names
                    logger.exception("looking up client processes failed")
                self._deliver({cid: names.get(key) for key, cid in batch.items()})
            if item is None:
                return

    def _resolve(self, wanted: set[Key]) -> dict[Key, str]:
        pids: dict[Key, int] = {}
        for pid in list(reversed(self._recent)):
            try:
                self._match(((pid, c) for c in psutil.Process(pid).net_connections("tcp")), wanted, pids)
            except psutil.Error:
                self._recent.pop(pid, None)
            if len(pids) == len(wanted):
                break
        if len(pids) < len(wanted):
            self._match(self._table(), wanted, pids)
        names: dict[Key, str] = {}
        for key, pid in pids.items():
            try:
                names[key] = f"{psutil.Process(pid).name()} ({pid})"
            except psutil.Error:
                continue
            self._recent[pid] = None
            self._recent.move_to_end(pid)
            while len(self._recent) > RECENT:
                self._recent.popitem(last=False)
        return names

    @staticmethod
    def _table() -> list[tuple[int | None, Any]]:
        """Every TCP socket with its process; where the OS keeps the table from users (macOS), the user's own
        processes one by one."""
        try:
            return [(c.pid, c) for c in psutil.net_connections("tcp")]
        except psutil.AccessDenied:
            out: list[tuple[int | None, Any]] = []
            for proc in psutil.process_iter():
                try:
                    out += [(proc.pid, c) for c in proc.net_connections("tcp")]
                except psutil.Error:
                    continue
            return out

    @staticmethod
    def _match(conns: Iterable[tuple[int | None, Any]], wanted: set[Key], found: dict[Key, int]) -> None:
        """(pid, socket) pairs → ``found``: the pid of each wanted client socket (its own address, the proxy's port)."""
        for owner, c in conns:
            if owner is None or not c.laddr or not c.raddr:
                continue
            key = (_normal(c.laddr.ip), c.laddr.port, c.raddr.port)
            if key in wanted:
                found[key] = owner

"""Which program on this machine opened a client connection: its process name and PID, from the OS's socket table,
for Fiddler's "Process" column.

Finding a socket's process means reading every process's open files: milliseconds that must stay off the proxy's
loop. The recorder queues each local client connection (``lookup``, O(1)); a thread looks up what has queued in one
go and hands the names back. On Linux it reads the kernel's socket table (/proc/net/tcp) for just the sockets
wanted, then the open files of the processes that connected before, and only then of the others. psutil does the
same for every socket of the machine, in Python: with the thousands of closed connections a load leaves in the
table, tens of milliseconds holding the GIL that the proxy's thread waits for. psutil names the processes, and finds
the sockets where there is no /proc (macOS).
"""

from __future__ import annotations

import collections
import contextlib
import ipaddress
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import psutil

from proxycap.capture.summary import normalize_ip

logger = logging.getLogger(__name__)

Key = tuple[str, int, str, int]  # the client's address and port, the proxy's address and port it connected to
RECENT = 8  # processes asked first
TABLES = ("/proc/net/tcp", "/proc/net/tcp6")
# At most this share of the time goes to lookups: reading the socket table is Python holding the GIL, which the
# proxy's thread waits for, and a stream of new local connections (a load test) would keep a lookup running always.
# After a lookup of t seconds the next waits t * (1 / DUTY - 1), at most MAX_GAP; connections queue meanwhile.
DUTY = 0.1
MAX_GAP = 1.0


def local_addresses() -> frozenset[str]:
    """Every address of this machine's interfaces: a client from one of them is a program on this machine."""
    families = (socket.AF_INET, socket.AF_INET6)
    return frozenset(
        a.address.split("%", 1)[0] for addrs in psutil.net_if_addrs().values() for a in addrs if a.family in families
    )


def is_local(ip: str, local: frozenset[str]) -> bool:
    if ip in local:
        return True
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return False


class ProcessNames:
    """Looks up the programs behind client connections in a thread; ``deliver`` gets {client id: "name (pid)" or
    None} from that thread, per batch. A connection that closes before its turn is not looked up (``forget``): its
    socket is gone from the table, and under a stream of short connections each lookup would scan a table grown by
    thousands of closed sockets while holding the GIL (bench/RESULTS.md, "Which program")."""

    def __init__(self, deliver: Callable[[dict[str, str | None]], None]) -> None:
        self._deliver = deliver
        self._pending: dict[str, Key] = {}  # client id → its addresses, until its batch starts
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._recent: collections.OrderedDict[int, None] = collections.OrderedDict()
        self._closing = threading.Event()  # ends the pause between lookups at once

    def lookup(self, client_id: str, peer: tuple[str, int], proxy: tuple[str, int]) -> None:
        """Queue a lookup of the program behind a client connection: its address and the proxy's, both as the proxy
        saw them (from the proxy's loop: O(1))."""
        if self._thread is None:
            self._closing.clear()
            self._thread = threading.Thread(target=self._run, name="proxycap-processes", daemon=True)
            self._thread.start()
        with self._lock:
            self._pending[client_id] = (normalize_ip(peer[0]), peer[1], normalize_ip(proxy[0]), proxy[1])
        self._wake.set()

    def forget(self, client_id: str) -> bool:
        """The connection closed: True if its lookup had not started (no name will be delivered for it)."""
        with self._lock:
            return self._pending.pop(client_id, None) is not None

    def close(self) -> None:
        if self._thread is not None:
            self._closing.set()
            self._wake.set()
            self._thread.join(timeout=5)
            self._thread = None

    def _run(self) -> None:
        while True:
            self._wake.wait()
            if self._closing.is_set():
                return
            self._wake.clear()
            with self._lock:
                batch = {key: cid for cid, key in self._pending.items()}
                self._pending.clear()
            if not batch:
                continue
            started = time.monotonic()
            names: dict[Key, str] = {}
            try:
                names = self._resolve(set(batch))
            except Exception:  # a lookup must never keep flows waiting for their names
                logger.exception("looking up client processes failed")
            self._deliver({cid: names.get(key) for key, cid in batch.items()})
            if self._closing.wait(min(MAX_GAP, (time.monotonic() - started) * (1 / DUTY - 1))):
                return

    def _resolve(self, wanted: set[Key]) -> dict[Key, str]:
        inodes = _inodes(wanted)
        if inodes is not None:
            pids = _owners(inodes, [*reversed(self._recent), *_all_pids(self._recent)])
        else:
            pids = {}
            for pid in list(reversed(self._recent)):
                with contextlib.suppress(psutil.Error):
                    _match(((pid, c) for c in psutil.Process(pid).net_connections("tcp")), wanted, pids)
                if len(pids) == len(wanted):
                    break
            if len(pids) < len(wanted):
                _match(_table(), wanted, pids)
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


# --- Linux: the kernel's socket table and /proc/PID/fd ------------------------------------------------------


def _hex(ip: str, port: int) -> bytes:
    """An address as /proc/net/tcp{,6} print it: each 32-bit word of the address in host byte order, the port."""
    packed = socket.inet_pton(socket.AF_INET6 if ":" in ip else socket.AF_INET, ip)
    words = "".join(f"{int.from_bytes(packed[i : i + 4], sys.byteorder):08X}" for i in range(0, len(packed), 4))
    return f"{words}:{port:04X}".encode()


def _inodes(wanted: set[Key]) -> dict[int, Key] | None:
    """The socket inode of each wanted client socket found in the kernel's table (None: no such table here). Each
    table is read once, and only if needed: the kernel writes out every socket of the machine (with a load's
    thousands of closed ones, milliseconds, though not holding the GIL)."""
    tables: dict[str, bytes] = {}

    def find(path: str, client: tuple[str, int], proxy: tuple[str, int]) -> int | None:
        if path not in tables:
            tables[path] = Path(path).read_bytes()
        table = tables[path]
        needle = b" " + _hex(*client) + b" " + _hex(*proxy) + b" "
        start = table.find(needle)
        while start >= 0:
            end = table.find(b"\n", start)
            inode = int(table[start:end].split()[8])  # local, remote, state, queues, timers, retransmits, uid, …
            if inode:  # 0: a closed socket's leftover (TIME_WAIT)
                return inode
            start = table.find(needle, end)
        return None

    found: dict[int, Key] = {}
    try:
        for key in wanted:
            client_ip, client_port, proxy_ip, proxy_port = key
            if ":" in client_ip:
                inode = find(TABLES[1], (client_ip, client_port), (proxy_ip, proxy_port))
            else:  # an IPv6 socket that connected to an IPv4 address is listed with IPv4-mapped addresses
                inode = find(TABLES[0], (client_ip, client_port), (proxy_ip, proxy_port)) or find(
                    TABLES[1], (f"::ffff:{client_ip}", client_port), (f"::ffff:{proxy_ip}", proxy_port)
                )
            if inode:
                found[inode] = key
    except OSError:
        return None
    return found


def _all_pids(skip: Iterable[int]) -> list[int]:
    skipped = set(skip)
    return [int(d) for d in os.listdir("/proc") if d.isdigit() and int(d) not in skipped]


def _owners(inodes: dict[int, Key], pids: Iterable[int]) -> dict[Key, int]:
    """The process holding each socket inode, from the processes' open files, in the order of ``pids``."""
    found: dict[Key, int] = {}
    for pid in pids:
        if len(found) == len(inodes):
            break
        fd_dir = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:  # gone, or not ours
            continue
        for fd in fds:
            try:
                link = os.readlink(f"{fd_dir}/{fd}")
            except OSError:
                continue
            if link.startswith("socket:[") and (key := inodes.get(int(link[8:-1]))) is not None:
                found[key] = pid
    return found


# --- elsewhere: psutil's socket table -----------------------------------------------------------------------


def _table() -> list[tuple[int | None, Any]]:
    """Every TCP socket with its process; where the OS keeps the table from users (macOS), the user's own processes
    one by one."""
    try:
        return [(c.pid, c) for c in psutil.net_connections("tcp")]
    except psutil.AccessDenied:
        out: list[tuple[int | None, Any]] = []
        for proc in psutil.process_iter():
            with contextlib.suppress(psutil.Error):
                out += [(proc.pid, c) for c in proc.net_connections("tcp")]
        return out


def _match(conns: Iterable[tuple[int | None, Any]], wanted: set[Key], found: dict[Key, int]) -> None:
    """(pid, socket) pairs → ``found``: the pid of each wanted client socket."""
    for owner, c in conns:
        if owner is not None and c.laddr and c.raddr:
            key = (normalize_ip(c.laddr.ip), c.laddr.port, normalize_ip(c.raddr.ip), c.raddr.port)
            if key in wanted:
                found[key] = owner

"""Frames between the store writer and its child: a pickle and its out-of-band buffers as length-prefixed parts.

Written with one ``writev`` (the bodies go from where the proxy holds them into the pipe without the GIL, never
copied into one pickle: bench/RESULTS.md, "Bodies beside the pickle"), read part by part from a raw descriptor.
"""

from __future__ import annotations

import os
import pickle
import struct
from collections.abc import Sequence

_COUNT = struct.Struct("!I")
IOV_PARTS = 512  # parts per writev: within every platform's IOV_MAX (1024 on Linux and macOS)
Frame = Sequence[bytes]  # a pickle, then the buffers it was pickled with out of band


def write_frame(fd: int, payload: bytes, buffers: Sequence[pickle.PickleBuffer] = ()) -> None:
    """A pickle and its out-of-band buffers, the parts' count and lengths first, by ``writev``."""
    parts = [memoryview(payload), *(b.raw() for b in buffers)]
    lengths = struct.pack(f"!{len(parts) + 1}I", len(parts), *map(len, parts))
    _write_all(fd, [memoryview(lengths), *parts])


def _write_all(fd: int, parts: list[memoryview]) -> None:
    i = 0
    while i < len(parts):
        written = os.writev(fd, parts[i : i + IOV_PARTS])  # a pipe may take less (a signal): go on from there
        while i < len(parts) and len(parts[i]) <= written:
            written -= len(parts[i])
            i += 1
        if written:
            parts[i] = parts[i][written:]


def read_frame(fd: int) -> list[bytes] | None:
    """The next frame's parts from a raw file descriptor, or None at end of input."""
    if (count := _read_exact(fd, _COUNT.size)) is None:
        return None
    n = _COUNT.unpack(count)[0]
    if (lengths := _read_exact(fd, 4 * n)) is None:
        return None
    parts = []
    for length in struct.unpack(f"!{n}I", lengths):
        if (part := _read_exact(fd, length)) is None:
            return None
        parts.append(part)
    return parts


def _read_exact(fd: int, n: int) -> bytes | None:
    chunks, left = [], n
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)

"""Files that hold captured traffic: readable by their owner only (0600, in 0700 folders), and never left
half-written."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from proxycap.paths import exports_dir


def private_dir(path: Path) -> Path:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def open_private(path: Path) -> BinaryIO:
    """``path`` opened for writing, truncated, mode 0600 even if it existed with another mode."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, "wb")


@contextlib.contextmanager
def atomic_output(path: Path) -> Iterator[BinaryIO]:
    """A private file that appears at ``path`` only once it is complete: an export that fails, or is interrupted,
    leaves no truncated file behind (nor replaces an earlier one)."""
    partial = path.with_name(f".{path.name}.partial")
    try:
        with open_private(partial) as fo:
            yield fo
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)


def save_export(data: str | bytes, name: str) -> Path:
    """Write ``data`` to the exports folder as ``name`` (text as UTF-8) and return its path: the fallback for a copy
    too big for the clipboard, or for a terminal without one."""
    path = private_dir(exports_dir()) / name
    with open_private(path) as fo:
        fo.write(data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data)
    return path

"""Default locations (captures, exports, logs, the filter history, the rules and settings: platformdirs' data, state
and config folders), and files only their owner can read."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP = "proxycap"


def default_store() -> Path:
    return Path(platformdirs.user_data_dir(APP)) / "captures.db"


def default_log_file() -> Path:
    return Path(platformdirs.user_log_dir(APP)) / "proxycap.log"


def filter_history() -> Path:
    return Path(platformdirs.user_state_dir(APP)) / "filter-history"


def settings_file() -> Path:
    """The capture settings kept across runs (the clients allowed with "allow and remember")."""
    return Path(platformdirs.user_config_dir(APP)) / "settings.toml"


def private_dir(path: Path) -> None:
    """Create ``path`` and any missing parents readable by their owner only (0700): they hold captures, logs and
    settings with passwords and cookies. Folders that exist are left as they are."""
    missing = []
    for folder in [path, *path.parents]:
        if folder.exists():
            break
        missing.append(folder)
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:  # made meanwhile by another process
            continue
        folder.chmod(0o700)  # whatever the umask took away or let through


def private_file(path: Path) -> None:
    """Create ``path`` empty, readable by its owner only (0600), if it does not exist, in a private folder."""
    private_dir(path.parent)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))


def readable_by_others(path: Path) -> bool:
    return path.exists() and bool(path.stat().st_mode & 0o077)


def default_rules() -> Path:
    return Path(platformdirs.user_config_dir(APP)) / "rules.toml"


def exports_dir() -> Path:
    """Where copies too big for the clipboard, and the bodies a copied command reads, are written."""
    return Path(platformdirs.user_data_dir(APP)) / "exports"


def write_private(path: Path, data: bytes) -> None:
    """Replace ``path`` at once (readers see the old file or the new one) with a file its owner only can read, in a
    private folder."""
    private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with open(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise

"""Default locations: captures, logs and the filter history in the user's data/state directories (platformdirs), the
settings in the user's config directory."""

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


def private_dir(path: Path) -> Path:
    """``path`` (proxycap's own folder) as one only the user may enter, created if missing."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o077:
        path.chmod(0o700)
    return path


def write_private(path: Path, data: str | bytes) -> None:
    """Replace ``path`` at once with a file only the user may read, in a folder only the user may enter."""
    private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with open(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise

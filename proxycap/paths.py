"""Default locations: captures, exports, logs and the filter history in the user's data/state directories
(platformdirs)."""

from __future__ import annotations

from pathlib import Path

import platformdirs

APP = "proxycap"


def default_store() -> Path:
    return Path(platformdirs.user_data_dir(APP)) / "captures.db"


def default_log_file() -> Path:
    return Path(platformdirs.user_log_dir(APP)) / "proxycap.log"


def filter_history() -> Path:
    return Path(platformdirs.user_state_dir(APP)) / "filter-history"


def exports_dir() -> Path:
    """Where copies too big for the clipboard, and the bodies a copied command reads, are written."""
    return Path(platformdirs.user_data_dir(APP)) / "exports"

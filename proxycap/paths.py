"""Default locations: captures, logs, the filter history and the rules in the user's data/state/config directories
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


def default_rules() -> Path:
    return Path(platformdirs.user_config_dir(APP)) / "rules.toml"

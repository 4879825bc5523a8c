"""Where imds-scan looks for the user's config file and keeps its cache (the XDG base
directories), in a module of its own: the command line asks before it knows whether it needs
the config machinery (imds_scan.config), which it then imports only when there is a file."""

from __future__ import annotations

import os

# Not read implicitly: only named (``--config imds-scan.toml``); the CLI says it was ignored.
DEFAULT_CONFIG = "imds-scan.toml"
CONFIG_ENV = "IMDS_SCAN_CONFIG"


def _base(variable: str, default: str) -> str | None:
    """``$variable``, else ``~/default``; a relative value is ignored (the XDG rule). None
    when there is no absolute home directory either."""
    base = os.environ.get(variable, "")
    if os.path.isabs(base):
        return base
    home = os.path.expanduser("~")
    return os.path.join(home, default) if os.path.isabs(home) else None


def user_config_path() -> str:
    """``$XDG_CONFIG_HOME/imds-scan/config.toml``, ``~/.config/imds-scan/config.toml`` by
    default (the XDG base directory rule: a relative XDG_CONFIG_HOME is ignored)."""
    base = _base("XDG_CONFIG_HOME", ".config")
    if base is None:  # as before: the home directory as expanduser gives it
        base = os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "imds-scan", "config.toml")


def user_cache_dir() -> str | None:
    """``$XDG_CACHE_HOME/imds-scan``, ``~/.cache/imds-scan`` by default; None without a home."""
    base = _base("XDG_CACHE_HOME", ".cache")
    return None if base is None else os.path.join(base, "imds-scan")

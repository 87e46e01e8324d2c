"""What the command lines share that needs no click: data dirs, TOML files, durations, logging.

``schulwart-agent run`` starts through these alone (agent/entry.py), so a running agent does not
load click; :mod:`base.cli` builds the commands' options and errors on top of them.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Any

from base.errors import ConfigError
from base.logthrottle import RepeatFilter
from base.secretfile import ensure_private_dir

_DURATION_RE = re.compile(r"(\d+)([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def default_data_dir(role: str) -> Path:
    """$SCHULWART_DATA_DIR, else a per-user directory (XDG data home)."""
    env = os.environ.get("SCHULWART_DATA_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "schulwart" / role


def parse_duration(text: str) -> timedelta:
    """'90s', '15m', '24h', '7d' or combinations like '1h30m'."""
    text = text.strip()
    if not text or _DURATION_RE.sub("", text):
        raise ConfigError(f"not a duration: {text!r} (use e.g. 30s, 15m, 8h, 7d)")
    seconds = sum(int(n) * _UNITS[u] for n, u in _DURATION_RE.findall(text))
    return timedelta(seconds=seconds)


def read_toml(path: Path) -> dict[str, Any]:
    """The parsed TOML document of ``path``; ConfigError (one line naming the file) when it cannot be read.

    Covers a missing or unreadable file, bytes that are not UTF-8 and invalid TOML.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror or exc}") from None
    try:
        # A byte-order mark (Windows editors write one) is not part of the TOML: it is dropped.
        text = data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config {path} is not UTF-8 text (bad byte at offset {exc.start})") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config {path} is not valid TOML: {exc}") from None


def load_toml(path: Path | None) -> dict[str, Any]:
    """Read a TOML config file (None: an empty document); a missing or broken file is a ConfigError naming it."""
    return {} if path is None else read_toml(path)


def resolve_data_dir(data_dir: Path | None, role: str) -> Path:
    """The --data-dir given, or the default for this role."""
    return data_dir if data_dir is not None else default_data_dir(role)


def require_database(db_path: Path, data_dir: Path, hint: str) -> None:
    """Refuse a data dir that holds no database: ConfigError naming the path (and ``hint``: how state is made).

    Commands that only read or change existing state call this before opening anything, so a
    mistyped ``--data-dir`` leaves nothing behind.
    """
    if not db_path.is_file():
        where = f"{data_dir}" if db_path.parent == data_dir else f"{data_dir} (database {db_path})"
        raise ConfigError(f"no schulwart database in {where}: wrong --data-dir? ({hint})")


def create_data_dir(data_dir: Path) -> Path:
    """Create the data dir owner-only (0700), or tighten an existing one we own; returns it.

    Only the commands that create state call this. Raises ConfigError naming the path when the
    directory cannot be made.
    """
    try:
        ensure_private_dir(data_dir, tighten=True)
    except OSError as exc:
        raise ConfigError(f"cannot create data dir {data_dir}: {exc.strerror or exc}") from None
    return data_dir


def setup_logging(level: str = "INFO") -> None:
    """One line per event on stderr; repeated warnings and errors are rate-limited (base.logthrottle)."""
    root = logging.getLogger()
    before = list(root.handlers)
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    # Only on the handler made here: a host that brought its own (a test runner) keeps it unfiltered.
    repeat = RepeatFilter()
    for handler in root.handlers:
        if handler not in before:
            handler.addFilter(repeat)

"""Central's configuration: TOML sections [central] and [sync], every key with a working default."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from base.cli import load_toml, parse_duration
from base.errors import ConfigError
from protocol.envelope import DEFAULT_MAX_ENVELOPE_BYTES
from protocol.schema import MAX_EVENTS

DB_FILE = "central.sqlite3"


@dataclass(frozen=True, slots=True)
class AgentSyncPolicy:
    """What central tells agents about syncing (enrollment answer and signed config)."""

    report_interval_s: int = 30
    max_batch_events: int = 500
    max_batch_bytes: int = 262_144
    snapshot_interval_s: int = 300

    def to_json(self) -> dict[str, int]:
        """The settings as the enrollment answer carries them."""
        return {
            "report_interval_s": self.report_interval_s,
            "max_batch_events": self.max_batch_events,
            "max_batch_bytes": self.max_batch_bytes,
            "snapshot_interval_s": self.snapshot_interval_s,
        }


@dataclass(frozen=True, slots=True)
class CentralConfig:
    """Everything `serve` and the other commands need; built by ``load_config``."""

    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 8400
    db: str | None = None
    log_level: str = "INFO"
    silent_window: timedelta = timedelta(minutes=15)
    silent_check_interval: timedelta = timedelta(seconds=30)
    enroll_code_ttl: timedelta = timedelta(hours=24)
    enroll_max_failures: int = 10
    enroll_failure_window: timedelta = timedelta(minutes=10)
    max_body_bytes: int = DEFAULT_MAX_ENVELOPE_BYTES
    max_decoded_bytes: int = DEFAULT_MAX_ENVELOPE_BYTES
    max_events: int = MAX_EVENTS
    clock_skew_flag: timedelta = timedelta(minutes=5)
    config_version: int = 1
    sync: AgentSyncPolicy = field(default_factory=AgentSyncPolicy)

    @property
    def db_path(self) -> Path:
        """The SQLite file: --db / `db` when given, else central.sqlite3 in the data dir."""
        return parse_db_url(self.db, self.data_dir)


def parse_db_url(url: str | None, data_dir: Path) -> Path:
    """A SQLite path from a plain path or sqlite:///path; PostgreSQL is refused for now."""
    if not url:
        return data_dir / DB_FILE
    if url.startswith(("postgresql://", "postgres://")):
        raise ConfigError("PostgreSQL is not supported yet: use a SQLite path for --db")
    if url.startswith("sqlite:///"):
        return Path(url[len("sqlite://") :])
    if "://" in url:
        raise ConfigError(f"unsupported database URL {url.split('://')[0]}://… (use a path or sqlite:///path)")
    return Path(url)


_DURATIONS = {
    "silent_window",
    "silent_check_interval",
    "enroll_code_ttl",
    "enroll_failure_window",
    "clock_skew_flag",
}
_INTS = {"port", "enroll_max_failures", "max_body_bytes", "max_decoded_bytes", "max_events", "config_version"}
_STRS = {"host", "db", "log_level"}


def _section(doc: dict[str, Any], name: str) -> dict[str, Any]:
    value = doc.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"config: [{name}] must be a table")
    return value


def _positive_int(name: str, value: Any) -> int:
    if type(value) is not int or value < 0:
        raise ConfigError(f"config: {name} must be a non-negative integer")
    return value


def load_config(path: Path | None, data_dir: Path, **overrides: Any) -> CentralConfig:
    """Read the TOML file (may be None) and apply command-line overrides that are not None."""
    doc = load_toml(path)
    unknown_sections = set(doc) - {"central", "sync"}
    if unknown_sections:
        raise ConfigError(f"config: unknown section(s) {sorted(unknown_sections)} (known: central, sync)")
    values: dict[str, Any] = {}
    for key, value in _section(doc, "central").items():
        if key in _DURATIONS:
            if not isinstance(value, str):
                raise ConfigError(f"config: {key} must be a duration string like '15m'")
            values[key] = parse_duration(value)
        elif key in _INTS:
            values[key] = _positive_int(key, value)
        elif key in _STRS:
            if not isinstance(value, str):
                raise ConfigError(f"config: {key} must be a string")
            values[key] = value
        else:
            raise ConfigError(f"config: unknown key central.{key}")
    sync_doc = _section(doc, "sync")
    known_sync = set(AgentSyncPolicy.__dataclass_fields__)
    for key in sync_doc:
        if key not in known_sync:
            raise ConfigError(f"config: unknown key sync.{key}")
    sync = AgentSyncPolicy(**{k: _positive_int(f"sync.{k}", v) for k, v in sync_doc.items()})
    config = CentralConfig(data_dir=data_dir, sync=sync, **values)
    clean = {k: v for k, v in overrides.items() if v is not None}
    config = replace(config, **clean)
    if not 0 <= config.port <= 65535:
        raise ConfigError(f"port {config.port} is outside 0..65535")
    if config.silent_window <= timedelta(0) or config.silent_check_interval <= timedelta(0):
        raise ConfigError("config: silent_window and silent_check_interval must be positive")
    config.db_path  # noqa: B018 - refuse a bad database URL now, with one line
    return config

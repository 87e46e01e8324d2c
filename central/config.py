"""Central's configuration: TOML sections [central], [sync] and [alerts], every key with a working default.

The file is read by the declarative loader of ``base.config`` (one line naming file, section and
key for every refusal); command-line options then override single values.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from base.config import duration, load_document, setting
from base.errors import ConfigError
from central.alerts.config import AlertsSection
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
    alerts: AlertsSection = field(default_factory=AlertsSection)
    config_file: Path | None = None  # where relative paths in [alerts] are read from

    @property
    def database(self) -> Path | str:
        """--db / `db` parsed: a SQLite file (Path) or a PostgreSQL URL (str); default central.sqlite3
        in the data dir."""
        return parse_db_url(self.db, self.data_dir)

    @property
    def db_path(self) -> Path | None:
        """The SQLite file, or None when the database is PostgreSQL."""
        database = self.database
        return database if isinstance(database, Path) else None


POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def parse_db_url(url: str | None, data_dir: Path) -> Path | str:
    """A SQLite path (Path) from a plain path or sqlite:///path, or a PostgreSQL URL (str, as given).

    PostgreSQL URLs are libpq connection URIs (postgresql://user@host:port/dbname?…; PostgreSQL
    documentation, "Connection URIs"). Raises ConfigError for another scheme.
    """
    if not url:
        return data_dir / DB_FILE
    if url.startswith(POSTGRES_SCHEMES):
        return url
    if url.startswith("sqlite:///"):
        return Path(url[len("sqlite://") :])
    if "://" in url:
        raise ConfigError(
            f"unsupported database URL {url.split('://')[0]}://… (use a path, sqlite:///path or postgresql://…)"
        )
    return Path(url)


def _check_db(url: str) -> None:
    try:
        parse_db_url(url, Path())
    except ConfigError as exc:
        raise ValueError(f"is refused: {exc.message}") from None


@dataclass(frozen=True, slots=True)
class CentralSection:
    """[central]: where to listen, the database, and the service's limits and windows (durations)."""

    host: str = "127.0.0.1"
    port: int = setting(8400, low=0, high=65535)
    db: str | None = setting(None, check=_check_db)  # a path, sqlite:///path or postgresql://…
    log_level: str = "INFO"
    silent_window: timedelta = duration(timedelta(minutes=15))
    silent_check_interval: timedelta = duration(timedelta(seconds=30))
    enroll_code_ttl: timedelta = duration(timedelta(hours=24), zero_ok=True)
    enroll_max_failures: int = setting(10, low=0)
    enroll_failure_window: timedelta = duration(timedelta(minutes=10), zero_ok=True)
    max_body_bytes: int = setting(DEFAULT_MAX_ENVELOPE_BYTES, low=0)
    max_decoded_bytes: int = setting(DEFAULT_MAX_ENVELOPE_BYTES, low=0)
    max_events: int = setting(MAX_EVENTS, low=0)
    clock_skew_flag: timedelta = duration(timedelta(minutes=5), zero_ok=True)
    config_version: int = setting(1, low=0)


@dataclass(frozen=True, slots=True)
class SyncPolicySection:
    """[sync]: what agents are told about syncing; intervals are whole seconds, batch sizes counts/bytes."""

    report_interval: int = duration(30, old="report_interval_s")
    max_batch_events: int = setting(500, low=0)
    max_batch_bytes: int = setting(262_144, low=0)
    snapshot_interval: int = duration(300, old="snapshot_interval_s")

    def policy(self) -> AgentSyncPolicy:
        """As the enrollment answer and the signed config carry it."""
        return AgentSyncPolicy(
            report_interval_s=self.report_interval,
            max_batch_events=self.max_batch_events,
            max_batch_bytes=self.max_batch_bytes,
            snapshot_interval_s=self.snapshot_interval,
        )


@dataclass(frozen=True, slots=True)
class CentralFile:
    """The sections of central's TOML file."""

    central: CentralSection = field(default_factory=CentralSection)
    sync: SyncPolicySection = field(default_factory=SyncPolicySection)
    alerts: AlertsSection = field(default_factory=AlertsSection)


def load_config(path: Path | None, data_dir: Path, **overrides: Any) -> CentralConfig:
    """Read the TOML file (may be None) and apply command-line overrides that are not None.

    Raises ConfigError: one line naming the file, section and key, or the option's value.
    """
    doc = load_document(CentralFile, path)
    values = {f.name: getattr(doc.central, f.name) for f in fields(CentralSection)}
    config = CentralConfig(data_dir=data_dir, sync=doc.sync.policy(), alerts=doc.alerts, config_file=path, **values)
    clean = {k: v for k, v in overrides.items() if v is not None}
    config = replace(config, **clean)
    if not 0 <= config.port <= 65535:
        raise ConfigError(f"port {config.port} is outside 0..65535")
    config.database  # noqa: B018 - refuse a bad --db URL now, with one line
    return config

"""The agent's TOML configuration: frozen dataclasses, every key with a working default.

Unknown sections and keys are refused with a line naming them (a typo must not silently
fall back to a default). Durations accept seconds (a number) or text like "5m".
The ``[discovery]``, ``[wlan]`` and ``[cabinets]`` sections belong to the site monitors
and are passed on raw.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from base.cli import load_toml, parse_duration
from base.errors import ConfigError

SITE_SECTIONS = ("discovery", "wlan", "cabinets")
MB = 1024 * 1024


def _duration(default: float) -> Any:
    return field(default=default, metadata={"kind": "duration"})


def _int(default: int | None, low: int = 0, high: int | None = None) -> Any:
    return field(default=default, metadata={"kind": "int", "low": low, "high": high})


def _float(default: float, low: float = 0.0, high: float | None = None) -> Any:
    return field(default=default, metadata={"kind": "float", "low": low, "high": high})


def _str(default: str) -> Any:
    return field(default=default, metadata={"kind": "str"})


def _bool(default: bool) -> Any:
    return field(default=default, metadata={"kind": "bool"})


@dataclass(frozen=True, slots=True)
class AgentSection:
    """[agent]: logging, the health snapshot and the outbox cap."""

    log_level: str = _str("INFO")
    snapshot_interval: float = _duration(300)
    outbox_max_mb: int = _int(200, low=1)
    maintenance_interval: float = _duration(60)


@dataclass(frozen=True, slots=True)
class SyncSection:
    """[sync]: how reports reach central. Unset batch/interval keys come from enrollment."""

    central_url: str = _str("")
    report_interval: float | None = field(default=None, metadata={"kind": "duration"})
    max_batch_events: int | None = _int(None, low=1, high=2000)
    max_batch_bytes: int | None = _int(None, low=4096, high=700_000)
    max_bytes_per_s: int = _int(32_768)
    request_timeout: float = _duration(30)
    backoff_max: float = _duration(60)
    revoked_retry: float = _duration(3600)
    config_interval: float = _duration(300)


@dataclass(frozen=True, slots=True)
class HostSection:
    """[host]: the host monitor's schedule and rule thresholds."""

    interval: float = _duration(60)
    disk_max_percent: float = _float(90.0, high=100.0)
    memory_min_available_percent: float = _float(10.0, high=100.0)
    clock_max_offset: float = _duration(300)


@dataclass(frozen=True, slots=True)
class IncidentSection:
    """[incidents]: hysteresis defaults for every rule that does not set its own."""

    open_after: int = _int(3, low=1, high=1000)
    resolve_after: int = _int(3, low=1, high=1000)


@dataclass(frozen=True, slots=True)
class ApiSection:
    """[api]: the local technician API."""

    listen: str = _str("0.0.0.0:8401")  # the school LAN is where technicians are
    tls_cert: str = _str("")  # PEM certificate chain; with tls_key, the API speaks HTTPS
    tls_key: str = _str("")


@dataclass(frozen=True, slots=True)
class PrivacySection:
    """[privacy]: whether real device names may leave the school."""

    share_names: bool = _bool(False)


@dataclass(frozen=True, slots=True)
class AgentConfig:
    """The whole configuration."""

    agent: AgentSection = field(default_factory=AgentSection)
    sync: SyncSection = field(default_factory=SyncSection)
    host: HostSection = field(default_factory=HostSection)
    incidents: IncidentSection = field(default_factory=IncidentSection)
    api: ApiSection = field(default_factory=ApiSection)
    privacy: PrivacySection = field(default_factory=PrivacySection)
    site: Mapping[str, Any] = field(default_factory=dict)

    @property
    def outbox_max_bytes(self) -> int:
        """The outbox cap in bytes."""
        return self.agent.outbox_max_mb * MB


_SECTIONS: dict[str, type] = {
    "agent": AgentSection,
    "sync": SyncSection,
    "host": HostSection,
    "incidents": IncidentSection,
    "api": ApiSection,
    "privacy": PrivacySection,
}


def _value(section: str, key: str, meta: Mapping[str, Any], raw: Any) -> Any:
    where = f"[{section}] {key}"
    kind = meta["kind"]
    if kind == "duration":
        if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
            raise ConfigError(f"{where} must be seconds or a duration like '5m'")
        seconds = parse_duration(raw).total_seconds() if isinstance(raw, str) else float(raw)
        if seconds <= 0:
            raise ConfigError(f"{where} must be positive")
        return seconds
    if kind in ("int", "float"):
        ok = type(raw) is int or (kind == "float" and type(raw) is float)
        if not ok:
            raise ConfigError(f"{where} must be {'an integer' if kind == 'int' else 'a number'}")
        low, high = meta["low"], meta["high"]
        if raw < low or (high is not None and raw > high):
            raise ConfigError(f"{where} = {raw} is outside {low}..{high if high is not None else '∞'}")
        return raw
    if kind == "bool":
        if not isinstance(raw, bool):
            raise ConfigError(f"{where} must be true or false")
        return raw
    if not isinstance(raw, str):
        raise ConfigError(f"{where} must be a string")
    return raw


def _section(name: str, cls: type, raw: Any) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"[{name}] must be a table")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ConfigError(f"unknown key(s) in [{name}]: {', '.join(unknown)} (known: {', '.join(fields)})")
    return cls(**{k: _value(name, k, fields[k].metadata, v) for k, v in raw.items()})


def parse_config(doc: Mapping[str, Any]) -> AgentConfig:
    """Build the configuration from a parsed TOML document."""
    unknown = sorted(set(doc) - set(_SECTIONS) - set(SITE_SECTIONS))
    if unknown:
        raise ConfigError(
            f"unknown section(s): {', '.join(unknown)} (known: {', '.join([*_SECTIONS, *SITE_SECTIONS])})"
        )
    sections = {name: _section(name, cls, doc[name]) for name, cls in _SECTIONS.items() if name in doc}
    site = {name: doc[name] for name in SITE_SECTIONS if name in doc}
    config = AgentConfig(**sections, site=site)
    _check_listen(config.api.listen)
    return config


def load_config(path: Path | None) -> AgentConfig:
    """Read and check a config file; None gives the defaults."""
    return parse_config(load_toml(path))


def parse_listen(text: str) -> tuple[str, int]:
    """'HOST:PORT' (IPv6 in brackets) into its parts; port 0 means any free port."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"listen address {text!r} must be HOST:PORT")
    host = host.strip("[]") or "0.0.0.0"  # noqa: S104
    return host, int(port)


def _check_listen(text: str) -> None:
    parse_listen(text)

"""The agent's configuration sections that central may set as well (``schulwart-central config set``).

The agent reads them from its TOML file (``agent.config``), central checks what its staff set
with the same types (one loader, ``base.config``), and the agent lays its own file over
central's layers: a key the school's file sets wins and is reported as an override.

Sections here: ``[agent]`` (intervals, outbox cap), ``[host]`` (thresholds), ``[incidents]``
(hysteresis), ``[privacy]``, ``[wlan]`` (probe targets, controller) and ``[cabinets]`` (cabinets,
meters, charging windows). ``[sync]``, ``[api]`` and ``[discovery]`` are the school's own: how
it reaches central, where it listens, which of its interfaces it watches.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from base.agentconfig.cabinets import CabinetsConfig
from base.agentconfig.wlan import WlanConfig
from base.config import duration, parse_document, setting

__all__ = [
    "AgentSection",
    "CentralSettings",
    "HostSection",
    "IncidentSection",
    "PrivacySection",
    "parse_central_settings",
]


@dataclass(frozen=True, slots=True)
class AgentSection:
    """[agent]: logging, the health snapshot (seconds) and the outbox cap (MiB)."""

    log_level: str = "INFO"
    snapshot_interval: float = duration(300.0)
    outbox_max_mb: int = setting(200, low=1)
    maintenance_interval: float = duration(60.0)


@dataclass(frozen=True, slots=True)
class HostSection:
    """[host]: the host monitor's schedule (seconds) and rule thresholds (percent, seconds)."""

    interval: float = duration(60.0)
    disk_max_percent: float = setting(90.0, low=0, high=100)
    memory_min_available_percent: float = setting(10.0, low=0, high=100)
    clock_max_offset: float = duration(300.0)


@dataclass(frozen=True, slots=True)
class IncidentSection:
    """[incidents]: hysteresis defaults (consecutive rounds) for every rule that does not set its own."""

    open_after: int = setting(3, low=1, high=1000)
    resolve_after: int = setting(3, low=1, high=1000)


@dataclass(frozen=True, slots=True)
class PrivacySection:
    """[privacy]: whether real device names may leave the school."""

    share_names: bool = False


@dataclass(frozen=True, slots=True)
class CentralSettings:
    """What central may set for an agent: one field per section, each as the agent's file types it."""

    agent: AgentSection = field(default_factory=AgentSection)
    host: HostSection = field(default_factory=HostSection)
    incidents: IncidentSection = field(default_factory=IncidentSection)
    privacy: PrivacySection = field(default_factory=PrivacySection)
    wlan: WlanConfig = field(default_factory=WlanConfig)
    cabinets: CabinetsConfig = field(default_factory=CabinetsConfig)


def parse_central_settings(doc: Mapping[str, Any], *, source: str | None = None) -> CentralSettings:
    """Check a parsed TOML document of central-set sections; ConfigError (one line naming the key) on refusal."""
    return parse_document(CentralSettings, doc, source=source)

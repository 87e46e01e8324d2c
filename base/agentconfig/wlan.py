"""The ``[wlan]`` section: probe targets (gateway, dns, internet, central, APs, others) and a controller.

A target is a host string (TCP probe), a URL string (HTTP probe) or a table with ``host`` or
``url`` and optionally ``name``, ``kind``, ``port`` and ``mac``. Every key has a working default.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from base.config import InvalidValueError, check_http_url, duration, parse_section, setting

TargetKind = Literal["ap", "gateway", "dns", "internet", "central", "other"]
DEFAULT_PORTS: dict[str, int] = {"ap": 22, "gateway": 53, "dns": 53, "internet": 443, "central": 443, "other": 80}


def _shorthand(value: Any) -> Any:
    """'10.0.0.1' → {host = ...}; 'https://…' → {url = ...}; tables pass through."""
    if isinstance(value, str):
        return {"url": value} if value.startswith(("http://", "https://")) else {"host": value}
    return value


def _shorthands(value: Any) -> Any:
    return [_shorthand(v) for v in value] if isinstance(value, list) else value


@dataclass(frozen=True, slots=True)
class TargetTable:
    """One probe target as written; ``port`` defaults by kind (ap 22, gateway/dns 53, internet/central 443)."""

    host: str | None = None
    url: str | None = setting(None, check=check_http_url)
    port: int | None = setting(None, low=1, high=65535)
    name: str | None = None
    kind: TargetKind | None = None
    mac: str | None = None

    def __post_init__(self) -> None:
        if self.host is None and self.url is None:
            raise InvalidValueError("needs host (TCP probe) or url (HTTP probe)")


@dataclass(frozen=True, slots=True)
class ProbeTarget:
    """Something to probe: TCP host:port, or an HTTP(S) URL."""

    name: str
    kind: str
    host: str | None = None
    port: int | None = None
    url: str | None = None
    mac: str | None = None

    @property
    def key_id(self) -> str:
        """The id in the signal key: the MAC for APs when known (matches the controller), else the name."""
        return self.mac.lower() if self.mac else self.name


@dataclass(frozen=True, slots=True)
class ControllerConfig:
    """``[wlan.controller]``: a UniFi Network controller; ``timeout`` in seconds."""

    url: str = setting("", required=True, check=check_http_url)
    kind: Literal["unifi"] = "unifi"
    username: str = ""
    password: str = ""
    site: str = "default"
    style: Literal["auto", "unifi-os", "classic"] = "auto"
    timeout: float = duration(10.0, old="timeout_s")
    name: str = "unifi"


@dataclass(frozen=True, slots=True)
class WlanConfig:
    """The ``[wlan]`` section. ``interval`` and ``probe_timeout`` in seconds; ``window`` in probes.

    ``loss_degraded_pct`` (percent of the window) and ``slow_ms`` (median latency) mark a target
    degraded; ``max_clients_per_ap`` and ``min_satisfaction`` (percent) do so for controller APs.
    """

    interval: float = duration(30.0, old="interval_s")
    window: int = setting(10, low=1)
    probe_timeout: float = duration(3.0, old="probe_timeout_s")
    loss_degraded_pct: float = setting(30.0, low=0, high=100)
    slow_ms: float = setting(500.0, low=0)
    max_clients_per_ap: int = setting(40, low=0)
    min_satisfaction: int = setting(50, low=0, high=100)
    gateway: TargetTable | None = setting(None, coerce=_shorthand)
    dns: TargetTable | None = setting(None, coerce=_shorthand)
    internet: TargetTable | None = setting(None, coerce=_shorthand)
    central: TargetTable | None = setting(None, coerce=_shorthand)
    aps: tuple[TargetTable, ...] = setting((), coerce=_shorthands)
    probes: tuple[TargetTable, ...] = setting((), coerce=_shorthands)
    controller: ControllerConfig | None = None

    @property
    def targets(self) -> tuple[ProbeTarget, ...]:
        """Every target to probe: the single ones, then the APs, then the other probes."""
        slots: list[tuple[TargetTable | None, str]] = [
            (self.gateway, "gateway"), (self.dns, "dns"), (self.internet, "internet"), (self.central, "central"),
        ]
        slots += [(t, "ap") for t in self.aps]
        slots += [(t, "other") for t in self.probes]
        return tuple(_probe_target(table, kind) for table, kind in slots if table is not None)


def _probe_target(table: TargetTable, default_kind: str) -> ProbeTarget:
    kind = table.kind or default_kind
    return ProbeTarget(
        name=table.name or table.host or table.url or kind,
        kind=kind,
        host=table.host,
        port=table.port if table.port is not None else DEFAULT_PORTS[kind],
        url=table.url,
        mac=table.mac,
    )


def parse_wlan(doc: Mapping[str, Any], *, source: str | None = None) -> WlanConfig:
    """``[wlan]`` of a parsed agent config document (absent: nothing to probe); ConfigError on refusal."""
    return parse_section(WlanConfig, doc.get("wlan", {}), section="wlan", source=source)

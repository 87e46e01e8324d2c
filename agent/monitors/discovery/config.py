"""The ``[discovery]`` section of the agent config: every key has a working default."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import ifaddr

from agent.monitors.discovery.classes import AIRPLAY, DEVICE_CLASSES, METER, PRINTER
from base.cli import parse_duration
from base.errors import ConfigError


@dataclass(frozen=True, slots=True)
class DiscoveryConfig:
    """Parsed [discovery] settings."""

    enabled: bool = True
    interval_s: float = 5.0
    interfaces: tuple[str, ...] = ()
    ip_version: str = "v4"
    question_type: str = "qm"
    extra_service_types: tuple[str, ...] = ()
    max_devices: int = 2000
    rcvbuf_bytes: int = 4 * 1024 * 1024
    resolve_timeout_s: float = 3.0
    host_rate_per_s: float = 2.0
    host_burst: int = 32
    must_stay_present: tuple[str, ...] = (AIRPLAY, PRINTER, METER)
    missing_after: timedelta = timedelta(minutes=10)
    probe_timeout_s: float = 2.0
    # A device that loses power sends no goodbye and its records live for up to 75 min:
    # present must-stay-present devices are probed this often (0: never).
    liveness_interval: timedelta = timedelta(minutes=1)
    tablet_not_seen_after: timedelta = timedelta(days=7)
    not_seen_report_at: time = time(7, 30)
    forget_after: timedelta = timedelta(days=60)
    timezone: str = "Europe/Berlin"


_KNOWN = {
    "enabled", "interval_s", "interfaces", "ip_version", "question_type", "service_types", "max_devices",
    "rcvbuf_bytes", "resolve_timeout_s", "host_rate_per_s", "host_burst", "must_stay_present", "missing_after",
    "probe_timeout_s", "liveness_interval", "tablet_not_seen_after", "not_seen_report_at", "forget_after", "timezone",
}


def _duration(section: Mapping[str, Any], key: str, default: timedelta) -> timedelta:
    value = section.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ConfigError(f"[discovery] {key} must be a duration like '10m'")
    if isinstance(value, (int, float)):
        return timedelta(seconds=float(value))
    return parse_duration(value)


def _number(section: Mapping[str, Any], key: str, default: float, minimum: float = 0.0) -> float:
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
        raise ConfigError(f"[discovery] {key} must be a number >= {minimum}")
    return float(value)


def resolve_interfaces(names: list[str]) -> tuple[str, ...]:
    """IPv4 addresses as given; interface names (eth0, br-lan) become their IPv4 addresses."""
    result: list[str] = []
    adapters = None
    for name in names:
        try:
            ipaddress.ip_address(name)
            result.append(name)
            continue
        except ValueError:
            pass
        if adapters is None:
            adapters = ifaddr.get_adapters()
        matches = [ip.ip for a in adapters if name in (a.nice_name, a.name) for ip in a.ips if ip.is_IPv4]
        if not matches:
            raise ConfigError(f"[discovery] interfaces: no interface or IPv4 address {name!r}")
        result.extend(str(m) for m in matches)
    return tuple(dict.fromkeys(result))


def parse_discovery(config: Mapping[str, Any]) -> DiscoveryConfig:
    """Read [discovery] from the raw config mapping; unknown keys and bad values are ConfigErrors."""
    section = config.get("discovery", {})
    if not isinstance(section, Mapping):
        raise ConfigError("[discovery] must be a table")
    unknown = set(section) - _KNOWN
    if unknown:
        raise ConfigError(f"[discovery] unknown key(s): {', '.join(sorted(unknown))}")
    d = DiscoveryConfig()
    interfaces = section.get("interfaces", [])
    if not isinstance(interfaces, list) or not all(isinstance(i, str) for i in interfaces):
        raise ConfigError("[discovery] interfaces must be a list of addresses or interface names")
    must = section.get("must_stay_present", list(d.must_stay_present))
    if not isinstance(must, list) or any(m not in DEVICE_CLASSES for m in must):
        raise ConfigError(f"[discovery] must_stay_present must list classes of {', '.join(DEVICE_CLASSES)}")
    types = section.get("service_types", [])
    if not isinstance(types, list) or not all(isinstance(t, str) and t.startswith("_") for t in types):
        raise ConfigError("[discovery] service_types must be a list like ['_hap._tcp']")
    qtype = section.get("question_type", d.question_type)
    if qtype not in ("qm", "qu", "auto"):
        raise ConfigError("[discovery] question_type must be qm, qu or auto")
    ipv = section.get("ip_version", d.ip_version)
    if ipv not in ("v4", "all"):
        raise ConfigError("[discovery] ip_version must be v4 or all")
    report_at = section.get("not_seen_report_at", "07:30")
    try:
        hh, mm = str(report_at).split(":")
        report_time = time(int(hh), int(mm))
    except ValueError:
        raise ConfigError("[discovery] not_seen_report_at must be HH:MM") from None
    tz_name = section.get("timezone", d.timezone)
    try:
        ZoneInfo(str(tz_name))
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"[discovery] timezone {tz_name!r} is unknown") from None
    enabled = section.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ConfigError("[discovery] enabled must be true or false")
    return DiscoveryConfig(
        enabled=enabled,
        interval_s=_number(section, "interval_s", d.interval_s, 0.05),
        interfaces=resolve_interfaces(interfaces),
        ip_version=ipv,
        question_type=qtype,
        extra_service_types=tuple(types),
        max_devices=int(_number(section, "max_devices", d.max_devices, 1)),
        rcvbuf_bytes=int(_number(section, "rcvbuf_bytes", d.rcvbuf_bytes, 65536)),
        resolve_timeout_s=_number(section, "resolve_timeout_s", d.resolve_timeout_s, 0.1),
        host_rate_per_s=_number(section, "host_rate_per_s", d.host_rate_per_s, 0.01),
        host_burst=int(_number(section, "host_burst", d.host_burst, 1)),
        must_stay_present=tuple(must),
        missing_after=_duration(section, "missing_after", d.missing_after),
        probe_timeout_s=_number(section, "probe_timeout_s", d.probe_timeout_s, 0.05),
        liveness_interval=_duration(section, "liveness_interval", d.liveness_interval),
        tablet_not_seen_after=_duration(section, "tablet_not_seen_after", d.tablet_not_seen_after),
        not_seen_report_at=report_time,
        forget_after=_duration(section, "forget_after", d.forget_after),
        timezone=str(tz_name),
    )

"""The ``[discovery]`` section of the agent config: every key has a working default."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, time, timedelta
from typing import Any, Literal

import ifaddr

from agent.monitors.discovery.classes import AIRPLAY, DEVICE_CLASSES, METER, PRINTER
from agent.monitors.discovery.interfaces import ALL
from agent.monitors.discovery.presence import holiday_dates, hours_of, weekdays
from base.config import InvalidValueError, check_timezone, duration, parse_section, setting


def resolve_interfaces(names: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """IPv4 addresses as given; interface names (eth0, br-lan) become their IPv4 addresses; ``["all"]`` stays.

    Raises InvalidValueError (a ValueError) for a name that is neither an address nor an interface here.
    """
    if ALL in names:
        if len(names) != 1:
            raise InvalidValueError(f"may be [{ALL!r}] alone, or interface names and addresses (got {list(names)})")
        return (ALL,)
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
            raise InvalidValueError(f"names no interface or IPv4 address of this host: {name!r}")
        result.extend(str(m) for m in matches)
    return tuple(dict.fromkeys(result))


def _check_classes(classes: tuple[str, ...]) -> None:
    unknown = [c for c in classes if c not in DEVICE_CLASSES]
    if unknown:
        raise InvalidValueError(f"must list classes of {', '.join(DEVICE_CLASSES)} (got {unknown[0]!r})")


def _check_service_types(types: tuple[str, ...]) -> None:
    bad = [t for t in types if not t.startswith("_")]
    if bad:
        raise InvalidValueError(f"must be service types like '_hap._tcp' (got {bad[0]!r})")


def _texts(value: Any) -> Any:
    """'mon-fri' (a string) as a one-element list; TOML dates as ISO text; lists pass through."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v.isoformat() if isinstance(v, date) else v for v in value]
    return value


def _check_days(days: tuple[str, ...]) -> None:
    weekdays(days)


def _check_hours(text: str) -> None:
    hours_of(text)


def _check_holidays(texts: tuple[str, ...]) -> None:
    holiday_dates(texts)


@dataclass(frozen=True, slots=True)
class DiscoveryConfig:
    """The ``[discovery]`` section.

    ``interval``, ``resolve_timeout`` and ``probe_timeout`` are float seconds; the other durations
    are timedeltas; ``interfaces`` holds IPv4 addresses (names given in the file are resolved when
    it is read), ``()`` for the default route's interface (the default) or ``("all",)`` for every
    interface (``agent.monitors.discovery.interfaces``); ``not_seen_report_at`` is local time in
    ``timezone``. ``school_hours`` is 'HH:MM-HH:MM', ``school_days`` like ``["mon-fri"]``,
    ``school_holidays`` ISO dates or ranges ``"2025-07-24..2025-09-03"``; they matter only with
    ``tablets_go_home``.
    """

    enabled: bool = True
    interval: float = duration(5.0, low=0.05, old="interval_s")
    # Empty: the default route's interface, not every one (bridges and VPNs are not the school's LAN).
    interfaces: tuple[str, ...] = setting((), convert=resolve_interfaces)
    ip_version: Literal["v4", "all"] = "v4"
    question_type: Literal["qm", "qu", "auto"] = "qm"
    service_types: tuple[str, ...] = setting((), check=_check_service_types)  # browsed besides the class table's
    max_devices: int = setting(2000, low=1)
    rcvbuf_bytes: int = setting(4 * 1024 * 1024, low=65536)
    resolve_timeout: float = duration(3.0, low=0.1, old="resolve_timeout_s")
    host_rate_per_s: float = setting(2.0, low=0.01)
    host_burst: int = setting(32, low=1)
    must_stay_present: tuple[str, ...] = setting((AIRPLAY, PRINTER, METER), check=_check_classes)
    missing_after: timedelta = duration(timedelta(minutes=10), zero_ok=True)
    probe_timeout: float = duration(2.0, low=0.05, old="probe_timeout_s")
    # A device that loses power sends no goodbye and its records live for up to 75 min:
    # present must-stay-present devices are probed this often (0: never).
    liveness_interval: timedelta = duration(timedelta(minutes=1), zero_ok=True)
    tablet_not_seen_after: timedelta = duration(timedelta(days=7), zero_ok=True)
    not_seen_report_at: time = time(7, 30)
    forget_after: timedelta = duration(timedelta(days=60), zero_ok=True)
    timezone: str = setting("Europe/Berlin", check=check_timezone)
    # Tablets that go home with the pupils (1:1): absent outside school hours is normal, and
    # tablet_not_seen_after counts school days (school_days minus school_holidays) only.
    tablets_go_home: bool = False
    school_hours: str = setting("07:30-15:00", check=_check_hours)
    school_days: tuple[str, ...] = setting(("mon-fri",), coerce=_texts, check=_check_days)
    school_holidays: tuple[str, ...] = setting((), coerce=_texts, check=_check_holidays)


def parse_discovery(doc: Mapping[str, Any], *, source: str | None = None) -> DiscoveryConfig:
    """``[discovery]`` of a parsed agent config document (absent: the defaults); ConfigError on refusal."""
    return parse_section(DiscoveryConfig, doc.get("discovery", {}), section="discovery", source=source)

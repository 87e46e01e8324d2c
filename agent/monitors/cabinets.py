"""Charging cabinets: a named place with a power meter and a charging window, and the rules over both.

Rules (evaluated with the time passed in, in the cabinet's time zone):
no power or meter unreachable during the window; switched off during the window; still drawing
charging power after the window ended; over-temperature (any time).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import aiohttp

from agent.monitors.base import MonitorReport, Severity, Signal
from agent.monitors.meters import ENERGY_UNITS, KINDS, Meter, MeterError, MeterReading, MeterSpec
from base.cli import parse_duration
from base.errors import ConfigError

log = logging.getLogger(__name__)

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


# -- charging windows ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChargingWindow:
    """Daily window, e.g. 15:00-07:00; ``days`` are the weekdays (0 = Monday) on which it starts."""

    start: time
    end: time
    days: frozenset[int] = frozenset(range(5))
    skip_dates: frozenset[date] = frozenset()

    @property
    def crosses_midnight(self) -> bool:
        """True for 15:00-07:00; a window with start == end lasts 24 h."""
        return self.end <= self.start

    def _starts_on(self, day: date) -> bool:
        return day.weekday() in self.days and day not in self.skip_dates

    def _bounds(self, start_day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
        begin = datetime.combine(start_day, self.start, tz)
        end_day = start_day + timedelta(days=1) if self.crosses_midnight else start_day
        return begin, datetime.combine(end_day, self.end, tz)

    def current(self, local: datetime) -> tuple[datetime, datetime] | None:
        """The window (start, end) that contains this local time, or None."""
        tz = _tz_of(local)
        for back in (0, 1):
            day = local.date() - timedelta(days=back)
            if self._starts_on(day):
                begin, end = self._bounds(day, tz)
                if begin <= local < end:
                    return begin, end
        return None

    def last_end(self, local: datetime) -> datetime | None:
        """The end of the latest window that ended at or before this local time (looks back 8 days)."""
        tz = _tz_of(local)
        for back in range(9):
            day = local.date() - timedelta(days=back)
            if self._starts_on(day):
                _begin, end = self._bounds(day, tz)
                if end <= local:
                    return end
        return None


def _tz_of(local: datetime) -> ZoneInfo:
    tz = local.tzinfo
    return tz if isinstance(tz, ZoneInfo) else ZoneInfo("UTC")


def parse_days(text: str | list[str]) -> frozenset[int]:
    """'mon-fri', 'mon,wed,fri', ['sat', 'sun'] or 'all' → weekday numbers."""
    parts = text if isinstance(text, list) else [p for p in str(text).replace(" ", "").split(",") if p]
    days: set[int] = set()
    for raw in parts:
        part = raw.lower()
        if part in ("all", "daily"):
            return frozenset(range(7))
        if "-" in part:
            first, last = part.split("-", 1)
            if first not in _DAYS or last not in _DAYS:
                raise ConfigError(f"[cabinets] days: {part!r} is not a day range like mon-fri")
            a, b = _DAYS.index(first), _DAYS.index(last)
            days.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)])
        elif part in _DAYS:
            days.add(_DAYS.index(part))
        else:
            raise ConfigError(f"[cabinets] days: {part!r} is not a day (mon … sun)")
    return frozenset(days)


def parse_window(text: str, days: str | list[str] = "mon-fri", skip: list[str] | None = None) -> ChargingWindow:
    """'15:00-07:00' (crosses midnight), '00:00-00:00' (all day) → ChargingWindow."""
    try:
        first, second = str(text).split("-")
        start = time.fromisoformat(first.strip())
        end = time.fromisoformat(second.strip())
        skip_dates = frozenset(date.fromisoformat(d) for d in (skip or []))
    except ValueError:
        raise ConfigError(f"[cabinets] window {text!r} must look like 15:00-07:00 (dates as YYYY-MM-DD)") from None
    return ChargingWindow(start, end, parse_days(days), skip_dates)


# -- cabinets and their rules ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CabinetConfig:
    """One cabinet: where it is, its meter, its window and thresholds."""

    id: str
    name: str
    meter: MeterSpec
    window: ChargingWindow
    room: str | None = None
    slots: int | None = None
    no_power_below_w: float = 1.0
    charging_above_w: float = 30.0
    still_charging_check: timedelta = timedelta(hours=2)
    max_temperature_c: float = 70.0


@dataclass(slots=True)
class _CabinetState:
    still_charging: bool = False
    errors: dict[str, int] = field(default_factory=dict)
    last_reading: MeterReading | None = None
    last_error: str | None = None


def evaluate(
    cab: CabinetConfig,
    reading: MeterReading | None,
    error: MeterError | None,
    now: datetime,
    tz: ZoneInfo,
    state: _CabinetState,
) -> list[Signal]:
    """The verdicts of all cabinet rules for one reading (or one failed read) at ``now``."""
    local = now.astimezone(tz)
    window = cab.window.current(local)
    label = cab.name + (f" ({cab.room})" if cab.room else "")
    signals: list[Signal] = []

    def signal(kind: str, bad: bool, severity: Severity, title: str, **details: Any) -> None:
        signals.append(
            Signal(
                key=f"cabinet-{kind}:{cab.id}",
                bad=bad,
                category="cabinet",
                severity=severity,
                title=title,
                subject=cab.name,
                at=now,
                details={"cabinet": cab.id, "in_window": window is not None, **details},
            )
        )

    unreachable = reading is None and window is not None
    reason = error.reason if error else None
    signal(
        "meter-unreachable", unreachable, "warning",
        f"Cabinet {label}: power meter unreachable during the charging window ({reason})"
        if unreachable else f"Cabinet {label}: power meter answers",
        reason=reason,
    )
    if reading is None:
        return signals  # no verdict on power, switch or temperature without a reading

    switched_off = window is not None and reading.switch_on is False
    signal(
        "switched-off", switched_off, "critical",
        f"Cabinet {label} switched off during its charging window" if switched_off
        else f"Cabinet {label} switched on",
        switch_on=reading.switch_on,
    )
    no_power = window is not None and not switched_off and reading.power_w < cab.no_power_below_w
    signal(
        "no-power", no_power, "critical",
        f"Cabinet {label} has no power during its charging window ({reading.power_w:.1f} W)" if no_power
        else f"Cabinet {label} has power",
        power_w=round(reading.power_w, 1),
    )
    signals.append(_still_charging(cab, reading, local, window is not None, state, now, label))
    temp = reading.temperature_c
    hot = (temp is not None and temp > cab.max_temperature_c) or any(
        e in ("overtemp", "overtemperature") for e in reading.errors
    )
    signal(
        "over-temperature", hot, "critical",
        f"Cabinet {label} over temperature ({temp if temp is not None else '?'} °C)" if hot
        else f"Cabinet {label} temperature normal",
        temperature_c=temp, errors=list(reading.errors),
    )
    return signals


def _still_charging(
    cab: CabinetConfig,
    reading: MeterReading,
    local: datetime,
    in_window: bool,
    state: _CabinetState,
    now: datetime,
    label: str,
) -> Signal:
    """Bad when power is still above the charging level after the window ended; stays bad until it drops."""
    drawing = reading.power_w > cab.charging_above_w
    if in_window:
        state.still_charging = False
    else:
        ended = cab.window.last_end(local)
        just_ended = ended is not None and local - ended <= cab.still_charging_check
        state.still_charging = drawing and (just_ended or state.still_charging)
    bad = state.still_charging
    return Signal(
        key=f"cabinet-still-charging:{cab.id}",
        bad=bad,
        category="cabinet",
        severity="warning",
        title=f"Cabinet {label} still drawing {reading.power_w:.0f} W after its charging window"
        if bad else f"Cabinet {label} not charging outside its window",
        subject=cab.name,
        at=now,
        details={"cabinet": cab.id, "power_w": round(reading.power_w, 1), "threshold_w": cab.charging_above_w},
    )


# -- config ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CabinetsConfig:
    """The ``[cabinets]`` section."""

    interval_s: float = 60.0
    timezone: str = "Europe/Berlin"
    cabinets: tuple[CabinetConfig, ...] = ()


def _num(table: Mapping[str, Any], key: str, default: float, where: str) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ConfigError(f"{where} {key} must be a number >= 0")
    return float(value)


def _meter(table: Any, where: str) -> MeterSpec:
    if not isinstance(table, Mapping) or not isinstance(table.get("url"), str):
        raise ConfigError(f"{where} needs a meter table with kind and url")
    kind = table.get("kind", "shelly-gen2")
    if kind not in KINDS:
        raise ConfigError(f"{where} meter kind must be one of {', '.join(KINDS)}")
    unit = str(table.get("energy_unit", "wh")).lower()
    if unit not in ENERGY_UNITS:
        raise ConfigError(f"{where} meter energy_unit must be one of {', '.join(ENERGY_UNITS)}")
    if not table["url"].startswith(("http://", "https://")):
        raise ConfigError(f"{where} meter url must start with http:// or https://")
    return MeterSpec(
        kind=kind,
        url=table["url"],
        channel=int(_num(table, "channel", 0, where)),
        username=table.get("username"),
        password=table.get("password"),
        timeout_s=_num(table, "timeout_s", 5.0, where),
        power_path=str(table.get("power_path", "power")),
        energy_path=table.get("energy_path"),
        energy_unit=unit,
        switch_path=table.get("switch_path"),
        temperature_path=table.get("temperature_path"),
    )


def parse_cabinets(config: Mapping[str, Any]) -> CabinetsConfig:
    """Read ``[cabinets]`` and its ``[[cabinets.cabinet]]`` entries."""
    section = config.get("cabinets", {})
    if not isinstance(section, Mapping):
        raise ConfigError("[cabinets] must be a table")
    tz_name = str(section.get("timezone", "Europe/Berlin"))
    try:
        ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"[cabinets] timezone {tz_name!r} is unknown") from None
    default_window = section.get("window", "15:00-07:00")
    default_days = section.get("days", "mon-fri")
    skip = section.get("skip_dates", [])
    entries = section.get("cabinet", [])
    if not isinstance(entries, list):
        raise ConfigError("[cabinets] cabinet must be an array of tables ([[cabinets.cabinet]])")
    cabinets: list[CabinetConfig] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        where = f"[[cabinets.cabinet]] #{index + 1}"
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{where} must be a table")
        cab_id = str(entry.get("id", index + 1))
        if cab_id in seen:
            raise ConfigError(f"{where} id {cab_id!r} is used twice")
        seen.add(cab_id)
        check = entry.get("still_charging_check", "2h")
        cabinets.append(
            CabinetConfig(
                id=cab_id,
                name=str(entry.get("name", f"Cabinet {cab_id}")),
                room=entry.get("room"),
                slots=entry.get("slots"),
                meter=_meter(entry.get("meter"), where),
                window=parse_window(
                    entry.get("window", default_window), entry.get("days", default_days), entry.get("skip_dates", skip)
                ),
                no_power_below_w=_num(entry, "no_power_below_w", 1.0, where),
                charging_above_w=_num(entry, "charging_above_w", 30.0, where),
                still_charging_check=parse_duration(check) if isinstance(check, str) else timedelta(seconds=check),
                max_temperature_c=_num(entry, "max_temperature_c", 70.0, where),
            )
        )
    return CabinetsConfig(
        interval_s=_num(section, "interval_s", 60.0, "[cabinets]") or 60.0,
        timezone=tz_name,
        cabinets=tuple(cabinets),
    )


# -- the monitor -----------------------------------------------------------------------------------


class CabinetMonitor:
    """Polls every cabinet's meter (concurrently) and applies the cabinet rules."""

    name = "cabinets"

    def __init__(self, config: CabinetsConfig, *, school: str = "school") -> None:
        self.interval_s = config.interval_s
        self._config = config
        self._school = school
        self._tz = ZoneInfo(config.timezone)
        self._meters = {cab.id: Meter(cab.meter) for cab in config.cabinets}
        self._state = {cab.id: _CabinetState() for cab in config.cabinets}
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Open the HTTP session the meters share."""
        # One connection per meter at a time: Shelly Gen2 allows only a handful of RPC channels.
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit_per_host=1))

    async def stop(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _read(self, cab: CabinetConfig) -> tuple[MeterReading | None, MeterError | None]:
        assert self._session is not None
        try:
            return await self._meters[cab.id].read(self._session), None
        except MeterError as exc:
            return None, exc

    async def collect(self, now: datetime) -> MonitorReport:
        """Read all meters, apply the rules, report."""
        if self._session is None:
            await self.start()
        results = await asyncio.gather(*(self._read(cab) for cab in self._config.cabinets))
        signals: list[Signal] = []
        snapshot: dict[str, Any] = {}
        for cab, (reading, error) in zip(self._config.cabinets, results, strict=True):
            state = self._state[cab.id]
            if error is not None:
                state.errors[error.reason] = state.errors.get(error.reason, 0) + 1
                if state.last_error != error.reason:
                    log.warning(
                        "cabinet meter error school=%s cabinet=%s reason=%s detail=%s",
                        self._school, cab.name, error.reason, error.message,
                    )
                state.last_error = error.reason
            else:
                if state.last_error is not None:
                    log.info("cabinet meter answers again school=%s cabinet=%s", self._school, cab.name)
                state.last_error = None
                state.last_reading = reading
            signals.extend(evaluate(cab, reading, error, now, self._tz, state))
            local = now.astimezone(self._tz)
            snapshot[cab.id] = {
                "name": cab.name,
                "room": cab.room,
                "slots": cab.slots,
                "meter": cab.meter.kind,
                "in_window": cab.window.current(local) is not None,
                "ok": reading is not None,
                "power_w": None if reading is None else round(reading.power_w, 1),
                "energy_wh": None if reading is None or reading.energy_wh is None else round(reading.energy_wh, 1),
                "switch_on": None if reading is None else reading.switch_on,
                "temperature_c": None if reading is None else reading.temperature_c,
                "error": None if error is None else error.reason,
                "errors": dict(state.errors),
            }
        return MonitorReport(section="cabinets", snapshot={"cabinets": snapshot}, signals=signals)

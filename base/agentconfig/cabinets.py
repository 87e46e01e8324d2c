"""The ``[cabinets]`` section: shared defaults, then one ``[[cabinets.cabinet]]`` table per cabinet.

Each cabinet has a ``meter`` table (``MeterSpec``); ``window``, ``days`` and ``skip_dates`` of a
cabinet fall back to the section's. Every key has a working default except a cabinet's meter url.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal, get_args

from base.agentconfig.window import ChargingWindow, dates_of, days_of, span_of
from base.config import InvalidValueError, check_http_url, check_timezone, duration, parse_section, setting

DEFAULT_USER = "admin"  # the only user of Shelly Gen2+ and of Tasmota's web login; Gen1's default

MeterKind = Literal["shelly-gen2", "shelly-gen1", "tasmota", "http-json"]
EnergyUnit = Literal["wh", "kwh", "wmin", "mwh"]
KINDS: tuple[str, ...] = get_args(MeterKind)
ENERGY_UNITS = {"wh": 1.0, "kwh": 1000.0, "wmin": 1.0 / 60.0, "mwh": 0.001}


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _check_username(value: str | None) -> None:
    if value is not None and ":" in value:
        raise InvalidValueError("cannot contain ':' (HTTP Basic and Digest separate user and password with it)")


@dataclass(frozen=True, slots=True)
class MeterSpec:
    """How to reach and read one meter: a cabinet's ``meter`` table.

    ``timeout`` is in seconds; ``energy_unit`` is what ``energy_path`` reports (any case in the file).
    ``channel`` is the 0-based relay/meter index (Shelly ``switch:N``/``em1:N``, Gen1
    ``meters[N]``, Tasmota ``POWER<N+1>`` and the N-th value of array-valued ENERGY fields).
    ``username`` defaults to ``admin`` when only a password is given.
    The path keys are dotted JSON paths for ``http-json`` meters ('data.0.power', list indices allowed).
    """

    kind: MeterKind = "shelly-gen2"
    url: str = setting("", required=True, check=check_http_url)
    channel: int = setting(0, low=0)
    username: str | None = setting(None, check=_check_username)
    password: str | None = None
    timeout: float = duration(5.0, old="timeout_s")
    power_path: str = "power"
    energy_path: str | None = None
    energy_unit: EnergyUnit = setting("wh", coerce=_lower)
    switch_path: str | None = None
    temperature_path: str | None = None

    @property
    def user(self) -> str | None:
        """The user name to log in with: the configured one, ``admin`` with only a password, else None."""
        if self.username:
            return self.username
        return DEFAULT_USER if self.password else None


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


def _day_list(value: Any) -> Any:
    """'mon-fri' or 'mon, wed' (a string) as the list of its parts; lists pass through."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def _date_texts(value: Any) -> Any:
    """TOML date literals (2025-12-24 without quotes) as the ISO text the quoted form gives."""
    if isinstance(value, list):
        return [v.isoformat() if isinstance(v, date) and not isinstance(v, datetime) else v for v in value]
    return value


def _id_text(value: Any) -> Any:
    return str(value) if type(value) is int else value


def _check_window(text: str | None) -> None:
    if text is not None:
        span_of(text)


def _check_days(days: tuple[str, ...] | None) -> None:
    if days is not None:
        days_of(days)


def _check_dates(dates: tuple[str, ...] | None) -> None:
    if dates is not None:
        dates_of(dates)


@dataclass(frozen=True, slots=True)
class CabinetEntry:
    """One ``[[cabinets.cabinet]]`` table as written; unset window/days/skip_dates use the section's.

    Thresholds in W and °C; ``still_charging_check`` is how long after the window's end drawing
    power still counts as "still charging".
    """

    meter: MeterSpec
    id: str | None = setting(None, coerce=_id_text)  # default: the entry's position, 1-based
    name: str | None = None  # default: "Cabinet <id>"
    room: str | None = None
    slots: int | None = setting(None, low=0)
    window: str | None = setting(None, check=_check_window)
    days: tuple[str, ...] | None = setting(None, coerce=_day_list, check=_check_days)
    skip_dates: tuple[str, ...] | None = setting(None, coerce=_date_texts, check=_check_dates)
    no_power_below_w: float = setting(1.0, low=0)
    charging_above_w: float = setting(30.0, low=0)
    still_charging_check: timedelta = duration(timedelta(hours=2), zero_ok=True)
    max_temperature_c: float = setting(70.0, low=0)


@dataclass(frozen=True, slots=True)
class CabinetsConfig:
    """The ``[cabinets]`` section; ``interval`` in seconds, ``window`` like '15:00-07:00', ``days`` like 'mon-fri'.

    ``cabinet`` holds the tables as written; ``cabinets`` the resolved cabinets the monitor uses.
    Raises (through the loader) a ConfigError for a cabinet id used twice.
    """

    interval: float = duration(60.0, old="interval_s")
    timezone: str = setting("Europe/Berlin", check=check_timezone)
    window: str = setting("15:00-07:00", check=_check_window)
    days: tuple[str, ...] = setting(("mon-fri",), coerce=_day_list, check=_check_days)
    skip_dates: tuple[str, ...] = setting((), coerce=_date_texts, check=_check_dates)
    cabinet: tuple[CabinetEntry, ...] = ()

    def __post_init__(self) -> None:
        seen: dict[str, int] = {}
        for index, entry in enumerate(self.cabinet, 1):
            cab_id = _cabinet_id(entry, index)
            if cab_id in seen:
                problem = f"id {cab_id!r} is used twice (entries #{seen[cab_id]} and #{index})"
                raise InvalidValueError(problem, "cabinet")
            seen[cab_id] = index

    @property
    def cabinets(self) -> tuple[CabinetConfig, ...]:
        """Every cabinet with the section's defaults filled in and its charging window built."""
        return tuple(self._cabinet(entry, index) for index, entry in enumerate(self.cabinet, 1))

    def _cabinet(self, entry: CabinetEntry, index: int) -> CabinetConfig:
        cab_id = _cabinet_id(entry, index)
        start, end = span_of(entry.window if entry.window is not None else self.window)
        days = days_of(entry.days if entry.days is not None else self.days)
        skip = dates_of(entry.skip_dates if entry.skip_dates is not None else self.skip_dates)
        return CabinetConfig(
            id=cab_id,
            name=entry.name if entry.name is not None else f"Cabinet {cab_id}",
            room=entry.room,
            slots=entry.slots,
            meter=entry.meter,
            window=ChargingWindow(start, end, days, skip),
            no_power_below_w=entry.no_power_below_w,
            charging_above_w=entry.charging_above_w,
            still_charging_check=entry.still_charging_check,
            max_temperature_c=entry.max_temperature_c,
        )


def _cabinet_id(entry: CabinetEntry, index: int) -> str:
    return entry.id if entry.id is not None else str(index)


def parse_cabinets(doc: Mapping[str, Any], *, source: str | None = None) -> CabinetsConfig:
    """``[cabinets]`` of a parsed agent config document (absent: no cabinets); ConfigError on refusal."""
    return parse_section(CabinetsConfig, doc.get("cabinets", {}), section="cabinets", source=source)

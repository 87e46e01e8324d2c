"""Charging windows: a daily time span (possibly across midnight) on chosen weekdays, minus holidays."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from base.errors import ConfigError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


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



def days_of(text: str | list[str] | tuple[str, ...]) -> frozenset[int]:
    """'mon-fri', 'mon,wed,fri', ['sat', 'sun'] or 'all' → weekday numbers (0 = Monday); ValueError if not."""
    parts = list(text) if isinstance(text, (list, tuple)) else [p for p in str(text).replace(" ", "").split(",") if p]
    days: set[int] = set()
    for raw in parts:
        part = raw.lower()
        if part in ("all", "daily"):
            return frozenset(range(7))
        if "-" in part:
            first, last = part.split("-", 1)
            if first not in DAYS or last not in DAYS:
                raise ValueError(f"{part!r} is not a day range like mon-fri")
            a, b = DAYS.index(first), DAYS.index(last)
            days.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)])
        elif part in DAYS:
            days.add(DAYS.index(part))
        else:
            raise ValueError(f"{part!r} is not a day (mon … sun)")
    return frozenset(days)


def span_of(text: str) -> tuple[time, time]:
    """'15:00-07:00' → (start, end); ValueError if it does not look like that."""
    try:
        first, second = str(text).split("-")
        return time.fromisoformat(first.strip()), time.fromisoformat(second.strip())
    except ValueError:
        raise ValueError(f"{text!r} must look like 15:00-07:00") from None


def dates_of(texts: list[str] | tuple[str, ...]) -> frozenset[date]:
    """['2025-12-24', ...] → dates; ValueError naming the first that is not YYYY-MM-DD."""
    result: set[date] = set()
    for text in texts:
        try:
            result.add(date.fromisoformat(text))
        except ValueError:
            raise ValueError(f"{text!r} is not a date like 2025-12-24") from None
    return frozenset(result)


def parse_days(text: str | list[str]) -> frozenset[int]:
    """Like ``days_of``, but a ConfigError for callers outside the config loader."""
    try:
        return days_of(text)
    except ValueError as exc:
        raise ConfigError(f"[cabinets] days: {exc}") from None


def parse_window(text: str, days: str | list[str] = "mon-fri", skip: list[str] | None = None) -> ChargingWindow:
    """'15:00-07:00' (crosses midnight), '00:00-00:00' (all day) → ChargingWindow; ConfigError if malformed."""
    weekdays = parse_days(days)
    try:
        start, end = span_of(text)
        skip_dates = dates_of(skip or [])
    except ValueError as exc:
        raise ConfigError(f"[cabinets] window: {exc}") from None
    return ChargingWindow(start, end, weekdays, skip_dates)

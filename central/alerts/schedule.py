"""When a message may go out: quiet hours and school holidays, in local time.

Quiet hours defer every message that is not critical to the end of the quiet period. School
holidays come from an iCalendar file (RFC 5545; the Länder publish their Schulferien this way):
each VEVENT covers the days from its DTSTART up to, not including, its DTEND (or DTSTART plus
DURATION; one day when neither is given). On those days new incidents are either not announced at
all (``silence``) or announced on the first day after (``defer``); follow-ups of threads opened
before the holiday are always deferred, never dropped, so a ticket opened on Friday is still
closed after the holidays.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from base.errors import ConfigError

log = logging.getLogger(__name__)

MAX_ICS_BYTES = 4 * 1024 * 1024
MAX_HOLIDAY_SPAN = timedelta(days=120)  # longer than any school holiday: a typo in DTEND, refused


@dataclass(frozen=True, slots=True)
class Holidays:
    """Holiday periods as half-open local date ranges [first, end)."""

    periods: tuple[tuple[date, date], ...] = ()

    def __contains__(self, day: object) -> bool:
        return isinstance(day, date) and any(first <= day < end for first, end in self.periods)

    def next_school_day(self, day: date) -> date:
        """The first day from ``day`` on that is no holiday (``day`` itself when it is none)."""
        for _ in range(len(self.periods) + 1):
            ends = [end for first, end in self.periods if first <= day < end]
            if not ends:
                return day
            day = max(ends)
        return day


def _as_date(value: date | datetime, zone: ZoneInfo) -> date:
    if isinstance(value, datetime):
        return (value.astimezone(zone) if value.tzinfo else value).date()
    return value


def parse_holidays(data: bytes, zone: ZoneInfo, *, source: str = "holidays") -> Holidays:
    """Holiday periods from the bytes of an iCalendar file (RFC 5545), parsed with the icalendar library.

    A DATE-TIME start or end counts by its local date in ``zone``; an end at local midnight is
    exclusive like a DATE end. Raises ConfigError (one line naming ``source``) for a file that is
    not iCalendar, an event without DTSTART, or one that ends before it starts or spans more than
    120 days. RRULE repetitions are not expanded: only the first occurrence counts (logged).
    """
    import icalendar  # central-only dependency: imported where it is used

    try:
        calendar = icalendar.Calendar.from_ical(data)
    except ValueError as exc:
        raise ConfigError(f"{source}: not an iCalendar file ({str(exc)[:120]})") from None
    periods: list[tuple[date, date]] = []
    for event in calendar.walk("VEVENT"):
        summary = str(event.get("SUMMARY", "?"))[:60]
        start_prop = event.get("DTSTART")
        if start_prop is None:
            raise ConfigError(f"{source}: event {summary!r} has no DTSTART")
        start = start_prop.dt
        first = _as_date(start, zone)
        if event.get("DTEND") is not None:
            end_value = event.get("DTEND").dt
        elif event.get("DURATION") is not None:
            end_value = start + event.get("DURATION").dt
        else:
            end_value = start + timedelta(days=1) if not isinstance(start, datetime) else start
        end = _as_date(end_value, zone)
        if isinstance(end_value, datetime):
            local_end = end_value.astimezone(zone) if end_value.tzinfo else end_value
            if local_end.time() != time(0, 0) or end == first:
                end += timedelta(days=1)  # a DATE-TIME end inside a day still covers that day
        if end <= first or end - first > MAX_HOLIDAY_SPAN:
            raise ConfigError(f"{source}: event {summary!r} runs from {first} to {end}: not a holiday period")
        if event.get("RRULE") is not None:
            log.warning("%s: event %r repeats (RRULE): only its first occurrence counts", source, summary)
        periods.append((first, end))
    return Holidays(tuple(sorted(periods)))


def load_holidays(path: Path, zone: ZoneInfo) -> Holidays:
    """Read and parse an ICS file; ConfigError naming the file when it cannot be read or parsed."""
    try:
        if path.stat().st_size > MAX_ICS_BYTES:
            raise ConfigError(f"holidays file {path} is larger than {MAX_ICS_BYTES} bytes")
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read holidays file {path}: {exc.strerror}") from None
    holidays = parse_holidays(data, zone, source=f"holidays file {path}")
    log.info("holidays file %s: %d periods", path, len(holidays.periods))
    return holidays


@dataclass(frozen=True, slots=True)
class Decision:
    """When to send: ``due`` (UTC) or, with ``send`` False, never (a new incident on a silent holiday)."""

    send: bool
    due: datetime
    reason: str = ""  # "", "quiet hours", "holiday"


@dataclass(frozen=True, slots=True)
class Schedule:
    """Quiet hours (local ``start`` to ``end``, may wrap midnight) and holidays, in ``zone``."""

    zone: ZoneInfo
    quiet_start: time | None = None
    quiet_end: time | None = None
    holidays: Holidays = Holidays()
    holiday_mode: str = "silence"  # or "defer"

    def _quiet_until(self, local: datetime) -> datetime | None:
        """The local end of the quiet period ``local`` falls in, or None outside quiet hours."""
        start, end = self.quiet_start, self.quiet_end
        if start is None or end is None or start == end:
            return None
        now = local.time()
        inside = (start <= now < end) if start < end else (now >= start or now < end)
        if not inside:
            return None
        day = local.date() if (start < end or now < end) else local.date() + timedelta(days=1)
        return datetime.combine(day, end, tzinfo=self.zone)

    def decide(self, now: datetime, severity: str, *, follow_up: bool) -> Decision:
        """When a message about an incident of ``severity`` may go out (``now`` aware, result in UTC).

        Holidays first (every severity: the school is closed), then quiet hours (critical ones pass).
        """
        local = now.astimezone(self.zone)
        reason = ""
        if local.date() in self.holidays:
            if not follow_up and self.holiday_mode == "silence":
                return Decision(False, now, "holiday")
            local = datetime.combine(self.holidays.next_school_day(local.date()), time(0, 0), tzinfo=self.zone)
            reason = "holiday"
        if severity != "critical":
            until = self._quiet_until(local)
            if until is not None:
                local, reason = until, reason or "quiet hours"
        return Decision(True, max(now, local.astimezone(now.tzinfo)), reason)

"""Presence rules: must-stay-present devices missing (confirmed by a probe), tablets not seen for days.

mDNS presence is a hint: a goodbye can be lost, a record can linger for an hour, a sleeping
iPad vanishes. So a receiver, printer or meter counts as missing only when it has been absent
from mDNS for ``missing_after`` and an active probe of its last address fails too; tablets are
reported once a day as one list. Where tablets go home with the pupils (1:1), a
:class:`SchoolCalendar` says when they should be there: their absence outside school hours is
normal and "not seen for N days" counts school days only.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from agent.monitors.discovery.classes import TABLET
from agent.monitors.discovery.tracker import ABSENT, MISSING, PRESENT
from agent.monitors.interface import Device, Signal

_CLASS_WORDS = {"airplay": "AirPlay receiver", "printer": "Printer", "meter": "Power meter", "tablet": "Tablet"}
MAX_LISTED = 500


_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def weekdays(texts: Iterable[str]) -> frozenset[int]:
    """['mon-fri'], ['mon', 'wed'] → weekday numbers (0 = Monday); ValueError naming a bad part.

    The same spelling as a cabinet's charging days; parsed here so that discovery does not load
    the cabinet monitor and its HTTP client.
    """
    days: set[int] = set()
    for text in texts:
        for part in (p.strip().lower() for p in str(text).split(",") if p.strip()):
            first, _, last = part.partition("-")
            if first not in _WEEKDAYS or (last and last not in _WEEKDAYS):
                raise ValueError(f"{part!r} is not a day (mon … sun) or a range like mon-fri")
            a, b = _WEEKDAYS.index(first), _WEEKDAYS.index(last or first)
            days.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(b + 1)])
    return frozenset(days)


def hours_of(text: str) -> tuple[time, time]:
    """'07:30-15:00' → (start, end) on one day; ValueError if malformed or not ending after it starts."""
    try:
        first, second = str(text).split("-")
        start, end = time.fromisoformat(first.strip()), time.fromisoformat(second.strip())
    except ValueError:
        raise ValueError(f"{text!r} must look like 07:30-15:00") from None
    if end <= start:
        raise ValueError(f"{text!r} must end after it starts, on the same day")
    return start, end


def holiday_dates(texts: Iterable[str]) -> frozenset[date]:
    """ISO dates and inclusive ranges ('2025-07-24..2025-09-03') → dates; ValueError naming a bad one."""
    result: set[date] = set()
    for text in texts:
        first, _, last = str(text).partition("..")
        try:
            begin = date.fromisoformat(first.strip())
            end = date.fromisoformat(last.strip()) if last else begin
        except ValueError:
            raise ValueError(f"{text!r} is not a date like 2025-12-24 or a range like 2025-07-24..2025-09-03") from None
        if end < begin or (end - begin).days > 366:
            raise ValueError(f"{text!r} must run forwards and span at most a year")
        result.update(begin + timedelta(days=n) for n in range((end - begin).days + 1))
    return frozenset(result)


@dataclass(frozen=True)
class SchoolCalendar:
    """When pupils are at school: ``start``-``end`` local time on ``days`` (0 = Monday), not on ``holidays``."""

    start: time
    end: time
    days: frozenset[int]
    holidays: frozenset[date]
    tz: ZoneInfo

    @classmethod
    def parse(cls, hours: str, days: Iterable[str], holidays: Iterable[str], tz: ZoneInfo) -> SchoolCalendar:
        """From config text ('07:30-15:00', ['mon-fri'], ['2025-07-24..2025-09-03']); ValueError if malformed."""
        start, end = hours_of(hours)
        return cls(start, end, weekdays(days), holiday_dates(holidays), tz)

    def is_school_day(self, day: date) -> bool:
        """A school day: one of ``days`` and not a holiday."""
        return day.weekday() in self.days and day not in self.holidays

    def in_school_hours(self, moment: datetime) -> bool:
        """Within school hours on a school day (local time)."""
        local = moment.astimezone(self.tz)
        return self.is_school_day(local.date()) and self.start <= local.time() < self.end

    def absence_counts_from(self, absent_since: datetime, now: datetime) -> datetime:
        """When an absence starts to count: not before today's school hours began (pupils bring them back)."""
        local = now.astimezone(self.tz)
        began = datetime.combine(local.date(), self.start, self.tz)
        return max(absent_since, began) if began <= local else absent_since

    def school_days_missed(self, since: datetime, now: datetime, enough: int) -> int:
        """School days after ``since``'s day whose school hours ended by ``now``; stops counting at ``enough``."""
        day = since.astimezone(self.tz).date() + timedelta(days=1)
        local = now.astimezone(self.tz)
        count = 0
        while count < enough and (day < local.date() or (day == local.date() and local.time() >= self.end)):
            count += self.is_school_day(day)
            day += timedelta(days=1)
        return count


def due_for_probe(device: Device, absent_since: datetime | None, now: datetime, missing_after: timedelta) -> bool:
    """Absent from mDNS for long enough that an active probe must decide."""
    return device.state in (ABSENT, MISSING) and absent_since is not None and now - absent_since >= missing_after


def missing_signal(device: Device, missing: bool, now: datetime, absent_since: datetime | None) -> Signal:
    """The verdict for one must-stay-present device (bad: gone from mDNS and not answering)."""
    what = _CLASS_WORDS.get(device.device_class, "Device")
    model = f" ({device.model})" if device.model else ""
    absent_s = int((now - absent_since).total_seconds()) if absent_since else 0
    return Signal(
        key=f"device-missing:{device.id}",
        bad=missing,
        category="device",
        severity="warning",
        # No device name in the title or subject: they leave the school, and the sync hashes
        # the subject (the local device id) wherever it appears in the key. The stable title
        # keeps the incident from being "updated" every round; the duration is in details.
        title=f"{what}{model} missing (gone from mDNS, not answering)" if missing else f"{what}{model} present",
        subject=device.id,
        at=now,
        details={
            "device_id": device.id, "name": device.name, "device_class": device.device_class,
            "model": device.model, "absent_s": absent_s,
        },
        open_after=1,  # the wait and the probe already happened here
        resolve_after=1,
        code="device.missing",
        params={"device_class": device.device_class, "model": device.model},
    )


def next_state(device: Device, probed: bool | None) -> str:
    """State after this round: missing when the probe failed, absent again when it answered."""
    if probed is None:
        return device.state
    return ABSENT if probed else MISSING


@dataclass
class NotSeenList:
    """The daily list of tablets not seen for N days: one signal, recomputed once a day.

    With a ``calendar`` (tablets go home) N counts school days only: weekends, holidays and the
    evenings the tablets spend at home do not make a tablet "not seen".
    """

    after: timedelta
    report_at: time
    tz: ZoneInfo
    calendar: SchoolCalendar | None = None
    _day: date | None = None
    _ids: tuple[str, ...] = ()

    def evaluate(self, devices: Iterable[Device], now: datetime) -> Signal:
        """Recompute at the first call and then daily at ``report_at`` (local time); repeat the verdict between."""
        local = now.astimezone(self.tz)
        due = self._day is None or (local.date() > self._day and local.time() >= self.report_at)
        if due:
            stale = sorted((d for d in devices if self._stale(d, now)), key=lambda d: d.last_seen)
            self._ids = tuple(d.id for d in stale[:MAX_LISTED])
            self._day = local.date()
        days = self._days()
        count = len(self._ids)
        plural = "" if count == 1 else "s"
        unit = "school days" if self.calendar else "days"
        return Signal(
            key="tablets-not-seen",
            bad=count > 0,
            category="device",
            severity="warning",
            # No names: tablet names are often pupils' names and this leaves the school.
            title=f"{count} tablet{plural} not seen for {days}+ {unit} (lost, broken or not in the cart)",
            subject=None,
            at=now,
            details={"count": count, "days": days, "school_days": self.calendar is not None,
                     "device_ids": list(self._ids), "list_date": str(self._day)},
            open_after=1,
            resolve_after=1,
            code="device.tablets_not_seen",
            params={"count": count, "days": days},
        )

    def _days(self) -> int:
        return max(1, int(self.after.total_seconds() // 86400))

    def _stale(self, device: Device, now: datetime) -> bool:
        if device.device_class != TABLET or device.state == PRESENT:
            return False
        if self.calendar is None:
            return device.last_seen < now - self.after
        return self.calendar.school_days_missed(device.last_seen, now, self._days()) >= self._days()

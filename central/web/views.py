"""What the dashboard pages show, computed from stored rows: pure functions, no I/O.

The overview's order ("worst first"), the nights of a charging cabinet, the incident
timeline and the device counts per day live here so that tests can check them exactly.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from central.aggregate import school_status
from central.storage.interface import OverviewRow, Sample
from central.timestamps import from_iso
from central.web.i18n import BERLIN

# Worst first: a broken school before one that says nothing, before a degraded one.
STATUS_ORDER = {"broken": 0, "silent": 1, "degraded": 2, "new": 3, "ok": 4}
STATUSES = tuple(STATUS_ORDER)
SORT_COLUMNS = (
    "worst", "school", "carrier", "status", "incidents", "aps", "cabinets", "tablets", "last_report", "version"
)  # fmt: skip
# A night counts as charged when the cabinet drew at least this much inside its window (the
# agent's default charging level, ``charging_above_w``).
CHARGED_W = 30.0


@dataclass(frozen=True, slots=True)
class SchoolLine:
    """One row of the overview."""

    id: str
    name: str
    carrier: str
    status: str
    critical: int
    warning: int
    info: int
    aps_down: int
    cabinets_down: int
    tablets_today: int
    tablets_usual: int
    last_report_at: str | None
    version: str | None
    clock_skewed: bool

    @property
    def open_incidents(self) -> int:
        """Open incidents of every severity."""
        return self.critical + self.warning + self.info

    def worst_key(self) -> tuple[int, int, int, str]:
        """Sort key: status, then more critical, then more warnings, then name."""
        return (STATUS_ORDER[self.status], -self.critical, -self.warning, self.name.casefold())


def school_lines(
    rows: Iterable[OverviewRow], now: datetime, silent_window: timedelta, skew_flag: timedelta
) -> list[SchoolLine]:
    """Overview rows with their status decided (see ``central.aggregate.school_status``)."""
    flag = skew_flag.total_seconds()
    return [
        SchoolLine(
            id=r.summary.school.id,
            name=r.summary.school.name,
            carrier=r.summary.school.carrier,
            status=school_status(r.summary, now, silent_window),
            critical=r.summary.open_critical,
            warning=r.summary.open_warning,
            info=r.summary.open_info,
            aps_down=r.aps_down,
            cabinets_down=r.cabinets_down,
            tablets_today=r.tablets_today,
            tablets_usual=r.tablets_usual,
            last_report_at=r.summary.last_report_at,
            version=r.agent_version,
            clock_skewed=r.max_clock_skew_s is not None and r.max_clock_skew_s > flag,
        )
        for r in rows
    ]


def filter_lines(
    lines: Iterable[SchoolLine], carrier: str | None, status: str | None, text: str | None
) -> list[SchoolLine]:
    """Lines of that carrier and status whose name or id contains ``text`` (case-insensitive)."""
    needle = (text or "").strip().casefold()
    return [
        line
        for line in lines
        if (not carrier or line.carrier == carrier)
        and (not status or line.status == status)
        and (not needle or needle in line.name.casefold() or needle in line.id.casefold())
    ]


def _sort_key(column: str) -> Any:
    keys: Mapping[str, Any] = {
        "school": lambda s: s.name.casefold(),
        "carrier": lambda s: (s.carrier.casefold(), s.worst_key()),
        "status": lambda s: s.worst_key(),
        "incidents": lambda s: (s.critical, s.warning, s.info),
        "aps": lambda s: s.aps_down,
        "cabinets": lambda s: s.cabinets_down,
        "tablets": lambda s: (s.tablets_today / s.tablets_usual) if s.tablets_usual else 2.0,
        "last_report": lambda s: s.last_report_at or "",
        "version": lambda s: s.version or "",
    }
    return keys.get(column, SchoolLine.worst_key)


def sort_lines(lines: Sequence[SchoolLine], column: str, descending: bool) -> list[SchoolLine]:
    """Lines sorted by a column of ``SORT_COLUMNS`` (``worst``: worst first); ties by name."""
    ordered = sorted(lines, key=lambda s: s.name.casefold())
    return sorted(ordered, key=_sort_key(column), reverse=descending)


def group_by_carrier(lines: Sequence[SchoolLine]) -> list[tuple[str, list[SchoolLine]]]:
    """(carrier, its lines worst first), carriers with the worst school first."""
    groups: dict[str, list[SchoolLine]] = defaultdict(list)
    for line in sorted(lines, key=SchoolLine.worst_key):
        groups[line.carrier].append(line)
    return sorted(groups.items(), key=lambda item: (item[1][0].worst_key(), item[0].casefold()))


def status_counts(lines: Iterable[SchoolLine]) -> dict[str, int]:
    """Schools per status, every status present (0 when none)."""
    counts = dict.fromkeys(STATUSES, 0)
    for line in lines:
        counts[line.status] += 1
    return counts


@dataclass(frozen=True, slots=True)
class Night:
    """One charging night of a cabinet: ``verdict`` is charged, no_power or no_data."""

    day: date
    verdict: str
    max_w: float | None


def cabinet_nights(samples: Iterable[Sample], today: date, nights: int = 7) -> list[Night]:
    """The verdict of each of the ``nights`` nights before ``today`` (Berlin dates), newest first.

    A night runs from noon to noon; only samples flagged inside the charging window count:
    none → no_data; the highest at or above ``CHARGED_W`` → charged; else no_power.
    """
    by_night: dict[date, list[float]] = defaultdict(list)
    for sample in samples:
        if sample.flag != 1:
            continue
        local = from_iso(sample.at).astimezone(BERLIN)
        night = (local - timedelta(hours=12)).date()
        by_night[night].append(sample.value if sample.value is not None else 0.0)
    out = []
    for back in range(1, nights + 1):
        day = today - timedelta(days=back)
        values = by_night.get(day)
        if not values:
            out.append(Night(day, "no_data", None))
        else:
            peak = max(values)
            out.append(Night(day, "charged" if peak >= CHARGED_W else "no_power", peak))
    return out


def daily_counts(samples: Iterable[Sample]) -> tuple[list[date], dict[str, dict[date, int]]]:
    """Devices by class per Berlin day (the day's highest count): (days, {class: {day: n}})."""
    table: dict[str, dict[date, int]] = defaultdict(dict)
    days: set[date] = set()
    for sample in samples:
        if not sample.series.startswith("devices:") or sample.value is None:
            continue
        day = from_iso(sample.at).astimezone(BERLIN).date()
        cls = sample.series.partition(":")[2]
        table[cls][day] = max(table[cls].get(day, 0), int(sample.value))
        days.add(day)
    return sorted(days), dict(sorted(table.items()))


def local_midnight(now: datetime) -> datetime:
    """The start of today in Berlin, as an aware datetime."""
    return datetime.combine(now.astimezone(BERLIN).date(), time(0), tzinfo=BERLIN)


def timeline(incident: Mapping[str, Any], log: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """An incident's steps oldest first: the recorded log, completed from the row.

    States carry an incident's opening, acknowledgement and notes without their events, so
    what the log lacks is taken from the row (``opened_at``, ``acknowledged_*``, ``notes``,
    ``resolved_at``).
    """
    steps = [dict(entry) for entry in log]
    actions = {s["action"] for s in steps}
    if "opened" not in actions and incident.get("opened_at"):
        steps.append({"at": incident["opened_at"], "action": "opened", "by": None, "text": None, "source": "agent"})
    acked_by = incident.get("acknowledged_by")
    if acked_by and not any(s["action"] in ("acknowledged", "staff-ack") and s["by"] == acked_by for s in steps):
        steps.append(
            {"at": incident.get("acknowledged_at"), "action": "acknowledged", "by": acked_by, "text": None,
             "source": "agent"}
        )  # fmt: skip
    logged_notes = {(s["by"], s["text"]) for s in steps if s["action"] in ("note", "staff-note")}
    for note in incident.get("notes") or []:
        if (note.get("by"), note.get("text")) not in logged_notes:
            source = note.get("source", "agent")
            steps.append(
                {"at": note.get("at"), "action": "staff-note" if source == "central" else "note", "by": note.get("by"),
                 "text": note.get("text"), "source": source}
            )  # fmt: skip
    if incident.get("status") == "resolved" and "resolved" not in actions and incident.get("resolved_at"):
        steps.append({"at": incident["resolved_at"], "action": "resolved", "by": None, "text": None, "source": "agent"})
    return sorted(steps, key=lambda s: s.get("at") or "")

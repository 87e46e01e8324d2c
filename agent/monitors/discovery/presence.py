"""Presence rules: must-stay-present devices missing (confirmed by a probe), tablets not seen for days.

mDNS presence is a hint: a goodbye can be lost, a record can linger for an hour, a sleeping
iPad vanishes. So a receiver, printer or meter counts as missing only when it has been absent
from mDNS for ``missing_after`` and an active probe of its last address fails too; tablets are
reported once a day as one list.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from agent.monitors.discovery.classes import TABLET
from agent.monitors.discovery.tracker import ABSENT, MISSING, PRESENT
from agent.monitors.interface import Device, Signal

_CLASS_WORDS = {"airplay": "AirPlay receiver", "printer": "Printer", "meter": "Power meter", "tablet": "Tablet"}
MAX_LISTED = 500


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
    """The daily list of tablets not seen for N days: one signal, recomputed once a day."""

    after: timedelta
    report_at: time
    tz: ZoneInfo
    _day: date | None = None
    _ids: tuple[str, ...] = ()

    def evaluate(self, devices: Iterable[Device], now: datetime) -> Signal:
        """Recompute at the first call and then daily at ``report_at`` (local time); repeat the verdict between."""
        local = now.astimezone(self.tz)
        due = self._day is None or (local.date() > self._day and local.time() >= self.report_at)
        if due:
            cutoff = now - self.after
            stale = sorted(
                (d for d in devices if d.device_class == TABLET and d.state != PRESENT and d.last_seen < cutoff),
                key=lambda d: d.last_seen,
            )
            self._ids = tuple(d.id for d in stale[:MAX_LISTED])
            self._day = local.date()
        days = max(1, int(self.after.total_seconds() // 86400))
        count = len(self._ids)
        plural = "" if count == 1 else "s"
        return Signal(
            key="tablets-not-seen",
            bad=count > 0,
            category="device",
            severity="warning",
            # No names: tablet names are often pupils' names and this leaves the school.
            title=f"{count} tablet{plural} not seen for {days}+ days (lost, broken or not in the cart)",
            subject=None,
            at=now,
            details={"count": count, "days": days, "device_ids": list(self._ids), "list_date": str(self._day)},
            open_after=1,
            resolve_after=1,
            code="device.tablets_not_seen",
            params={"count": count, "days": days},
        )


def class_counts(devices: Iterable[Device]) -> Mapping[str, Mapping[str, int]]:
    """Devices per class and state, for the snapshot."""
    counts: dict[str, dict[str, int]] = {}
    for device in devices:
        per = counts.setdefault(device.device_class, {})
        per[device.state] = per.get(device.state, 0) + 1
    return counts

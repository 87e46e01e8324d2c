"""The running agent's live state: where monitor reports and outside signals land, and what is read back.

Signals go to the incident engine, device changes to the inventory, and each monitor's latest
section is kept in memory for the health snapshot, the state payload and the technician's
status. A store failure here is logged and counted, never raised: the agent keeps running.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from agent.identity import agent_version
from agent.incidents.engine import IncidentEngine
from agent.monitors.interface import Monitor, MonitorReport, Signal
from agent.privacy import Privacy
from agent.store import Store, StoreError, StoreFullError
from agent.store.inventory import Inventory, list_devices
from agent.store.outbox import Outbox
from agent.sync.client import StateParts
from base.clock import Clock
from protocol.encoding import dumps
from protocol.errors import MalformedError
from protocol.events import HealthSnapshot
from protocol.schema import MAX_STATE_ITEMS

log = logging.getLogger("agent.runner")  # the name operators' log filters already know

Sections = Mapping[str, Mapping[str, Any]]


@dataclass(slots=True)
class Counters:
    """What went wrong without stopping the agent; shown in the health snapshot."""

    monitor_errors: dict[str, int] = field(default_factory=dict)
    task_errors: dict[str, int] = field(default_factory=dict)
    dropped_events: int = 0
    auth_failures: dict[str, int] = field(default_factory=dict)  # refused technician requests, by reason


MONITOR_FAILING_PREFIX = "agent-monitor-failing:"
# Three failed rounds in a row open "monitor X failing"; three good ones resolve it.
MONITOR_FAILING_AFTER = 3


class LiveState:
    """Observations in, snapshots out; the store's writes go through the engine, inventory and outbox.

    ``wake`` is called when an observation emitted outbox events (incidents should not wait
    for the report interval); ``school`` names the school in log lines.
    """

    def __init__(
        self,
        store: Store,
        outbox: Outbox,
        engine: IncidentEngine,
        inventory: Inventory,
        privacy: Privacy,
        clock: Clock,
        *,
        school: str,
        wake: Callable[[], None],
    ) -> None:
        self.store = store
        self.outbox = outbox
        self.engine = engine
        self.inventory = inventory
        self.privacy = privacy
        self.school = school
        self._clock = clock
        self._wake = wake
        self._started = clock.monotonic()
        self.counters = Counters()
        self.sections: dict[str, Mapping[str, Any]] = {}
        self._failing: set[str] = set()  # monitors with a failure since their incident last resolved

    def latest_sections(self) -> Sections:
        """Each monitor's latest snapshot section by name, with real names (for the technician only)."""
        return self.sections

    # ------------------------------------------------------------------ in

    def signal(self, signal: Signal) -> None:
        """A signal from outside the monitors (sync's revoked/fork alerts)."""
        self._observe([signal])

    def _observe(self, signals: list[Signal]) -> None:
        try:
            emitted = self.engine.observe(signals)
        except StoreError as exc:
            self.store_failed(exc, len(signals))
            return
        if emitted:
            self._wake()

    def store_failed(self, exc: StoreError, n: int) -> None:
        """Count and log ``n`` observations the store could not take (critical when the disk is full)."""
        self.counters.dropped_events += n
        level = logging.CRITICAL if isinstance(exc, StoreFullError) else logging.ERROR
        log.log(
            level,
            "school=%s cannot store %d observation(s): %s (the outbox keeps what it has)",
            self.school,
            n,
            exc.message,
        )

    def monitor_failed(self, name: str, now: datetime | None = None) -> None:
        """Count one failure of monitor ``name`` and feed its "monitor X failing" host incident.

        The caller logs the failure. ``now`` defaults to the clock; after
        ``MONITOR_FAILING_AFTER`` failed rounds in a row the incident opens.
        """
        self.counters.monitor_errors[name] = self.counters.monitor_errors.get(name, 0) + 1
        self._failing.add(name)
        self._observe([self._failing_signal(name, True, now or self._clock.now())])

    def monitor_ok(self, name: str, now: datetime | None = None) -> None:
        """A good round of monitor ``name``: resolves its "monitor X failing" incident in time."""
        if name not in self._failing:
            return  # nothing to resolve: no store write for the common case
        key = MONITOR_FAILING_PREFIX + name
        self._observe([self._failing_signal(name, False, now or self._clock.now())])
        if not any(i.key == key for i in self.engine.open_incidents()):
            self._failing.discard(name)

    def task_failed(self, name: str) -> None:
        """Count one unexpected error of an agent task (snapshot, sync, maintenance) that was restarted."""
        self.counters.task_errors[name] = self.counters.task_errors.get(name, 0) + 1

    @staticmethod
    def _failing_signal(name: str, bad: bool, at: datetime) -> Signal:
        return Signal(
            key=MONITOR_FAILING_PREFIX + name,
            bad=bad,
            category="host",
            severity="warning",
            title=f"Monitor {name} failing",
            subject=name,
            at=at,
            open_after=MONITOR_FAILING_AFTER,
            resolve_after=MONITOR_FAILING_AFTER,
        )

    def ingest(self, monitor: Monitor, report: MonitorReport) -> None:
        """Apply one monitor's report: snapshot section, signals, inventory changes; a good round resolves "failing".

        A section that cannot be written as JSON (a lone surrogate, infinity, a non-JSON type)
        is refused and counted as a failure of the monitor; the previous section is kept, so
        one bad value never poisons every later snapshot and state payload.
        """
        try:
            dumps(report.snapshot)
        except (MalformedError, ValueError, TypeError) as exc:
            self.monitor_failed(monitor.name)
            log.error("school=%s monitor=%s section refused: %s", self.school, monitor.name, str(exc)[:200])
        else:
            self.sections[report.section] = report.snapshot
            self.monitor_ok(monitor.name)
        if report.signals:
            self._observe(list(report.signals))
        if report.device_changes:
            try:
                self.inventory.apply(report.device_changes)
            except StoreError as exc:
                self.store_failed(exc, len(report.device_changes))
            except MalformedError as exc:
                self.monitor_failed(monitor.name)
                log.error("school=%s monitor=%s device change refused: %s", self.school, monitor.name, exc.message)

    # ------------------------------------------------------------------ out

    def snapshot_data(self) -> dict[str, Any]:
        """The health snapshot as it leaves the school: sections (privacy-filtered), outbox, counts."""
        stats = self.outbox.stats()
        data: dict[str, Any] = self.privacy.snapshot(self.sections)
        data["outbox"] = {**stats.to_json(), "last_sync_at": self.store.get_setting("last_sync_at")}
        data["counts"] = {
            "open_incidents": len(self.engine.open_incidents()),
            "devices": self.store.query("SELECT count(*) FROM inventory")[0][0],
        }
        data["agent"] = {
            "version": agent_version(),
            "uptime_s": round(self._clock.monotonic() - self._started, 1),
            "monitor_errors": dict(self.counters.monitor_errors),
            "task_errors": dict(self.counters.task_errors),
            "dropped_events": self.counters.dropped_events,
        }
        return data

    def write_snapshot(self) -> int | None:
        """Queue one health snapshot; returns its seq, or None when the store could not take it.

        A section central would refuse is left out, not the snapshot.
        """
        data = self.snapshot_data()
        try:
            return self.outbox.add_event(HealthSnapshot(sections=data))
        except MalformedError as exc:
            log.error(
                "school=%s snapshot refused (%s); sending it without the monitor sections", self.school, exc.message
            )
            slim = {k: v for k, v in data.items() if k in ("outbox", "counts", "agent")}
            try:
                return self.outbox.add_event(HealthSnapshot(sections=slim))
            except StoreError as store_exc:
                self.store_failed(store_exc, 1)
        except StoreError as exc:
            self.store_failed(exc, 1)
        return None

    def state_parts(self) -> StateParts:
        """The present for the state payload: open incidents, latest snapshot, present devices."""
        devices = [self.privacy.device(d) for d in list_devices(self.store, limit=MAX_STATE_ITEMS)]
        incidents = [self.engine.wire(i) for i in self.engine.open_incidents()[:MAX_STATE_ITEMS]]
        return StateParts(
            open_incidents=incidents,
            snapshot=self.snapshot_data(),
            devices=devices,
            dropped_events=self.counters.dropped_events,
        )

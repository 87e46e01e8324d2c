"""The running agent's live state: where monitor reports and outside signals land, and what is read back.

Signals go to the incident engine, device changes to the inventory, and each monitor's latest
section is kept in memory for the health snapshot, the state payload and the technician's
status. A store failure here is logged and counted, never raised: the agent keeps running.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from agent.identity import agent_version
from agent.incidents.engine import IncidentEngine
from agent.monitors.base import Monitor, MonitorReport, Signal
from agent.privacy import Privacy
from agent.store import Store, StoreError, StoreFullError
from agent.store.inventory import Inventory, list_devices
from agent.store.outbox import Outbox
from agent.sync.client import StateParts
from base.clock import Clock
from protocol.errors import MalformedError
from protocol.events import HealthSnapshot
from protocol.schema import MAX_STATE_ITEMS

log = logging.getLogger("agent.runner")  # the name operators' log filters already know

Sections = Mapping[str, Mapping[str, Any]]


@dataclass(slots=True)
class Counters:
    """What went wrong without stopping the agent; shown in the health snapshot."""

    monitor_errors: dict[str, int] = field(default_factory=dict)
    dropped_events: int = 0


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

    def monitor_failed(self, name: str) -> None:
        """Count one failure of monitor ``name`` (its log line is the caller's, with the traceback)."""
        self.counters.monitor_errors[name] = self.counters.monitor_errors.get(name, 0) + 1

    def ingest(self, monitor: Monitor, report: MonitorReport) -> None:
        """Apply one monitor's report: snapshot section, signals, inventory changes."""
        self.sections[report.section] = report.snapshot
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
        return StateParts(open_incidents=incidents, snapshot=self.snapshot_data(), devices=devices)

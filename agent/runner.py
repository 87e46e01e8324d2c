"""``schulwart-agent run``: monitors, the incident engine, the health snapshot, sync and the local API.

Every part is its own task; a failing monitor is logged and counted, never fatal. SQLite
writes are short and inline, so a cancellation on SIGTERM lands between transactions,
never inside one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from agent.config import AgentConfig, parse_listen
from agent.identity import Identity, agent_version, load_agent_key, load_identity, read_admin_token
from agent.incidents.engine import IncidentEngine
from agent.monitors.base import Monitor, MonitorReport, Signal
from agent.monitors.host import HostMonitor
from agent.monitors.site import build_monitors
from agent.privacy import Privacy, load_or_create_secret
from agent.store import Store, StoreError, StoreFullError
from agent.store.inventory import Inventory, list_devices
from agent.store.outbox import Outbox
from agent.sync.client import StateParts, SyncClient
from agent.sync.transport import AiohttpTransport
from agent.techapi.auth import Authenticator
from agent.techapi.metrics import agent_registry
from agent.techapi.routes import setup_technician_api
from agent.techapi.server import make_app, start_server, tls_context
from agent.techapi.store_view import AgentView
from base.clock import Clock
from base.ratelimit import FailureLimiter
from protocol.errors import MalformedError
from protocol.schema import MAX_STATE_ITEMS

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Counters:
    """What went wrong without stopping the agent; shown in the health snapshot."""

    monitor_errors: dict[str, int] = field(default_factory=dict)
    dropped_events: int = 0


class Agent:
    """One running agent: owns the store (the only writer) and every task."""

    def __init__(self, config: AgentConfig, data_dir: Path, clock: Clock, *, listen: str | None = None) -> None:
        self.config = config
        self.data_dir = data_dir
        self.clock = clock
        self.listen = parse_listen(listen or config.api.listen)
        self.store = Store.open(data_dir)
        self.identity: Identity | None = load_identity(self.store)
        self.school = self.identity.school_id if self.identity else "-"
        self.outbox = Outbox(self.store, clock)
        self.privacy = Privacy(load_or_create_secret(data_dir), share_names=config.privacy.share_names)
        self.engine = IncidentEngine(
            self.store,
            self.outbox,
            self.privacy,
            clock,
            open_after=config.incidents.open_after,
            resolve_after=config.incidents.resolve_after,
            school=self.school,
        )
        self.inventory = Inventory(self.store, self.outbox, self.privacy, school=self.school)
        self.sync: SyncClient | None = None
        if self.identity is not None:
            key = load_agent_key(data_dir, self.identity)
            self.sync = SyncClient(
                self.store,
                self.outbox,
                self.identity,
                key,
                config.sync,
                clock,
                transport=AiohttpTransport.for_agent(self.identity, config.sync, clock),
                state=self.state_parts,
                signal=self.signal,
            )
        self.monitors: list[Monitor] = [
            HostMonitor(data_dir, config.host, clock_offset=self._clock_offset),
            # The site monitors name the school in their log lines from a top-level school_id.
            *build_monitors({**config.site, "school_id": self.school} if self.identity else config.site, data_dir),
        ]
        self.counters = Counters()
        self.sections: dict[str, Mapping[str, Any]] = {}
        self._first_host = asyncio.Event()
        self._started = time.monotonic()
        self.address: tuple[str, int] | None = None

    # ------------------------------------------------------------------ observations

    def _clock_offset(self) -> float | None:
        return self.sync.clock_offset if self.sync else None

    def signal(self, signal: Signal) -> None:
        """A signal from outside the monitors (sync's revoked/fork alerts)."""
        self._observe([signal])

    def _observe(self, signals: list[Signal]) -> None:
        try:
            emitted = self.engine.observe(signals)
        except StoreError as exc:
            self._store_failed(exc, len(signals))
            return
        if emitted and self.sync is not None:
            self.sync.kick()  # incidents should not wait for the report interval

    def _store_failed(self, exc: StoreError, n: int) -> None:
        self.counters.dropped_events += n
        level = logging.CRITICAL if isinstance(exc, StoreFullError) else logging.ERROR
        log.log(
            level,
            "school=%s cannot store %d observation(s): %s (the outbox keeps what it has)",
            self.school,
            n,
            exc.message,
        )

    def ingest(self, monitor: Monitor, report: MonitorReport) -> None:
        """Apply one monitor's report: snapshot section, signals, inventory changes."""
        self.sections[report.section] = report.snapshot
        if report.signals:
            self._observe(list(report.signals))
        if report.device_changes:
            try:
                self.inventory.apply(report.device_changes)
            except StoreError as exc:
                self._store_failed(exc, len(report.device_changes))
            except MalformedError as exc:
                self.counters.monitor_errors[monitor.name] = self.counters.monitor_errors.get(monitor.name, 0) + 1
                log.error("school=%s monitor=%s device change refused: %s", self.school, monitor.name, exc.message)
        if monitor.name == "host":
            self._first_host.set()

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
            "uptime_s": round(time.monotonic() - self._started, 1),
            "monitor_errors": dict(self.counters.monitor_errors),
            "dropped_events": self.counters.dropped_events,
        }
        return data

    def write_snapshot(self) -> int | None:
        """Queue one health snapshot; a section central would refuse is left out, not the snapshot."""
        data = self.snapshot_data()
        try:
            return self.outbox.add("health.snapshot", data)
        except MalformedError as exc:
            log.error(
                "school=%s snapshot refused (%s); sending it without the monitor sections", self.school, exc.message
            )
            slim = {k: v for k, v in data.items() if k in ("outbox", "counts", "agent")}
            try:
                return self.outbox.add("health.snapshot", slim)
            except StoreError as store_exc:
                self._store_failed(store_exc, 1)
        except StoreError as exc:
            self._store_failed(exc, 1)
        return None

    def state_parts(self) -> StateParts:
        """The present for the state payload: open incidents, latest snapshot, present devices."""
        devices = [self.privacy.device(d) for d in list_devices(self.store, limit=MAX_STATE_ITEMS)]
        incidents = [self.engine.wire(i) for i in self.engine.open_incidents()[:MAX_STATE_ITEMS]]
        return StateParts(open_incidents=incidents, snapshot=self.snapshot_data(), devices=devices)

    def wake_sync(self) -> None:
        """Sync soon: a technician's ack or note should reach central without waiting."""
        if self.sync is not None:
            self.sync.kick()

    def _technician_api(self, app: web.Application) -> None:
        registry, failures = agent_registry(self)
        admin_token = read_admin_token(self.data_dir)
        limiter = FailureLimiter(self.clock.monotonic)
        auth = Authenticator(
            AgentView(self), admin_token, self.clock.now, limiter, lambda reason: failures.labels(reason).inc()
        )
        setup_technician_api(app, AgentView(self), auth, registry)

    def health(self) -> dict[str, Any]:
        """What /healthz tells anyone on the LAN: alive, nothing about the school."""
        return {"status": "ok", "version": agent_version()}

    # ------------------------------------------------------------------ tasks

    async def _monitor_loop(self, monitor: Monitor) -> None:
        while True:
            try:
                report = await monitor.collect(self.clock.now())
            except asyncio.CancelledError:
                raise
            except Exception:  # a monitor's bug must not stop the others; logged with its traceback
                self.counters.monitor_errors[monitor.name] = self.counters.monitor_errors.get(monitor.name, 0) + 1
                log.exception("school=%s monitor=%s collect failed", self.school, monitor.name)
            else:
                self.ingest(monitor, report)
            await asyncio.sleep(monitor.interval_s)

    async def _snapshot_loop(self) -> None:
        try:
            await asyncio.wait_for(self._first_host.wait(), timeout=15)
        except TimeoutError:
            log.warning("school=%s no host data after 15 s; first snapshot without it", self.school)
        while True:
            self.write_snapshot()
            await asyncio.sleep(self.config.agent.snapshot_interval)

    async def _maintenance_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.agent.maintenance_interval)
            try:
                self.outbox.thin(self.config.outbox_max_bytes)
            except StoreError as exc:
                log.error("school=%s outbox thinning failed: %s", self.school, exc.message)

    async def run(self, stop: asyncio.Event) -> bool:
        """Run until ``stop`` is set, then shut down cleanly; False when a task died on its own."""
        clean = True
        if self.identity is None:
            log.warning(
                "not enrolled: monitoring locally only (run `schulwart-agent enroll --central URL --code CODE`)"
            )
        app = make_app(self.health)
        self._technician_api(app)
        runner: web.AppRunner | None = None
        tasks: list[asyncio.Task[None]] = []
        started: list[Monitor] = []
        try:
            runner, host, port = await start_server(app, *self.listen, ssl_context=tls_context(self.config.api))
            self.address = (host, port)
            for monitor in self.monitors:
                try:
                    await monitor.start()
                except (OSError, RuntimeError, ValueError) as exc:
                    log.error("school=%s monitor=%s cannot start: %s", self.school, monitor.name, exc)
                    continue
                started.append(monitor)
                tasks.append(asyncio.create_task(self._monitor_loop(monitor), name=f"monitor-{monitor.name}"))
            tasks.append(asyncio.create_task(self._snapshot_loop(), name="snapshot"))
            tasks.append(asyncio.create_task(self._maintenance_loop(), name="maintenance"))
            if self.sync is not None:
                tasks.append(asyncio.create_task(self.sync.run(), name="sync"))
            log.info(
                "school=%s agent %s running: %d monitors, outbox last_seq %d",
                self.school,
                self.identity.agent_id if self.identity else "(not enrolled)",
                len(started),
                self.outbox.last_seq,
            )
            waiter = asyncio.create_task(stop.wait())
            done, _ = await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not waiter:
                    clean = False
                    error = None if task.cancelled() else task.exception()
                    log.critical(
                        "school=%s task %s ended unexpectedly: %r; stopping", self.school, task.get_name(), error
                    )
            waiter.cancel()
        finally:
            await self._shutdown(tasks, started, runner)
        return clean

    async def _shutdown(
        self, tasks: list[asyncio.Task[None]], monitors: list[Monitor], runner: web.AppRunner | None
    ) -> None:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for monitor in monitors:
            try:
                await asyncio.wait_for(monitor.stop(), timeout=5)
            except (OSError, RuntimeError, TimeoutError) as exc:
                log.warning("school=%s monitor=%s did not stop cleanly: %s", self.school, monitor.name, exc)
        if runner is not None:
            await runner.cleanup()
        stats = self.outbox.stats()
        self.store.close()
        log.info("school=%s agent stopped; outbox last_seq %d, depth %d", self.school, stats.last_seq, stats.depth)

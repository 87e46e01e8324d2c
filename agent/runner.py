"""``schulwart-agent run``: monitors, the incident engine, the health snapshot, sync and the local API.

Every part is its own task; a failing monitor is logged and counted, never fatal. SQLite
writes are short and inline, so a cancellation on SIGTERM lands between transactions,
never inside one. The parts are built by :func:`agent.wiring.build_agent`; this module
only runs them.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from agent.config import AgentConfig
from agent.identity import Identity
from agent.live import LiveState
from agent.memory import release_free_memory
from agent.monitors.interface import Monitor, MonitorReport
from agent.store import Store, StoreError
from agent.store.outbox import Outbox
from agent.sync.client import SyncClient
from agent.techapi.server import start_server
from base.clock import Clock

log = logging.getLogger(__name__)


class Agent:
    """One running agent: owns the store (the only writer) and every task.

    The constructor only keeps what it is given; :meth:`run` starts the local API, the
    monitors, the snapshot, maintenance and sync tasks, and closes the store when it ends.
    ``sync`` is None for an agent that is not enrolled (it then monitors locally only).
    """

    def __init__(
        self,
        config: AgentConfig,
        clock: Clock,
        *,
        store: Store,
        outbox: Outbox,
        identity: Identity | None,
        live: LiveState,
        sync: SyncClient | None,
        monitors: list[Monitor],
        app: web.Application,
        listen: tuple[str, int],
        ssl_context: ssl.SSLContext | None,
        build_monitors: Callable[[AgentConfig], list[Monitor]] | None = None,
        retune: Callable[[AgentConfig], None] = lambda config: None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.store = store
        self.outbox = outbox
        self.identity = identity
        self.school = identity.school_id if identity else "-"
        self.live = live
        self.sync = sync
        self.monitors = monitors
        self.app = app
        self.listen = listen
        self.ssl_context = ssl_context
        self._first_host = asyncio.Event()
        self.address: tuple[str, int] | None = None
        self._build_monitors = build_monitors
        self._retune = retune
        self._monitor_tasks: dict[str, tuple[Monitor, asyncio.Task[None]]] = {}
        self._running = False

    # ------------------------------------------------------------------ tasks

    async def _monitor_loop(self, monitor: Monitor) -> None:
        while True:
            try:
                report = await monitor.collect(self.clock.now())
            except asyncio.CancelledError:
                raise
            except Exception:  # a monitor's bug must not stop the others; logged (rate-limited) with its traceback
                log.exception("school=%s monitor=%s collect failed", self.school, monitor.name)
                self._contained(lambda: self.live.monitor_failed(monitor.name))
            else:
                self._contained(functools.partial(self._apply, monitor, report))
            await asyncio.sleep(monitor.interval_s)

    def _apply(self, monitor: Monitor, report: MonitorReport) -> None:
        self.live.ingest(monitor, report)
        if monitor.name == "host":
            self._first_host.set()

    def _contained(self, step: Callable[[], None]) -> None:
        """Run one step of a monitor round; an error in it is logged and counted, never fatal."""
        try:
            step()
        except Exception:
            log.exception("school=%s applying a monitor report failed", self.school)
            self.live.task_failed("ingest")

    async def _supervised(self, name: str, loop: Callable[[], Awaitable[None]]) -> None:
        """Run ``loop`` forever: an unexpected error restarts it after a capped, growing pause.

        A task's bug (the snapshot refusing a value, a disk error) is counted and logged, not
        fatal: under ``Restart=always`` a fatal one would be a crash loop that also stops every
        monitor. Cancellation (shutdown) passes through.
        """
        pause = 1.0
        while True:
            try:
                await loop()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                self.live.task_failed(name)
                log.exception("school=%s task %s failed; restarting it in %.0f s", self.school, name, pause)
            await asyncio.sleep(pause)
            pause = min(pause * 2, 60.0)

    async def _snapshot_loop(self) -> None:
        try:
            async with asyncio.timeout(15):  # never asyncio.wait_for: on 3.11 it can swallow the shutdown's cancel
                await self._first_host.wait()
        except TimeoutError:
            log.warning("school=%s no host data after 15 s; first snapshot without it", self.school)
        while True:
            self.live.write_snapshot()
            await asyncio.sleep(self.config.agent.snapshot_interval)

    async def _maintenance_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.agent.maintenance_interval)
            try:
                self.outbox.thin(self.config.outbox_max_bytes)
            except StoreError as exc:
                log.error("school=%s outbox thinning failed: %s", self.school, exc.message)
            release_free_memory()  # the start-up burst's freed heap back to the system (agent/memory.py)

    async def run(self, stop: asyncio.Event) -> bool:
        """Run until ``stop`` is set, then shut down cleanly; False when a task died on its own."""
        clean = True
        if self.identity is None:
            log.warning(
                "not enrolled: monitoring locally only (run `schulwart-agent enroll --central URL --code CODE`)"
            )
        runner: web.AppRunner | None = None
        tasks: list[asyncio.Task[None]] = []
        started: list[Monitor] = []
        try:
            runner, host, port = await start_server(self.app, *self.listen, ssl_context=self.ssl_context)
            self.address = (host, port)
            self._running = True
            for monitor in self.monitors:
                if await self._start_monitor(monitor):
                    started.append(monitor)
            tasks.append(asyncio.create_task(self._supervised("snapshot", self._snapshot_loop), name="snapshot"))
            tasks.append(
                asyncio.create_task(self._supervised("maintenance", self._maintenance_loop), name="maintenance")
            )
            if self.sync is not None:
                tasks.append(asyncio.create_task(self._supervised("sync", self.sync.run), name="sync"))
            log.info(
                "school=%s agent %s running: %d monitors, outbox last_seq %d",
                self.school,
                self.identity.agent_id if self.identity else "(not enrolled)",
                len(started),
                self.outbox.last_seq,
            )
            waiter = asyncio.create_task(stop.wait())
            done = await self._wait(waiter, tasks)
            for task in done:
                if task is not waiter:
                    clean = False
                    error = None if task.cancelled() else task.exception()
                    log.critical(
                        "school=%s task %s ended unexpectedly: %r; stopping", self.school, task.get_name(), error
                    )
            waiter.cancel()
        finally:
            self._running = False
            await self._shutdown(tasks, runner)
        return clean

    async def _wait(self, waiter: asyncio.Task[bool], tasks: list[asyncio.Task[None]]) -> set[asyncio.Task[Any]]:
        """Until stop, or a task (a monitor's included, as they are now) ends on its own."""
        while True:
            # Re-read each second: a reconfiguration replaces monitor tasks while we wait.
            monitor_tasks = [task for _, task in self._monitor_tasks.values()]
            done, _ = await asyncio.wait(
                [waiter, *tasks, *monitor_tasks], return_when=asyncio.FIRST_COMPLETED, timeout=1.0
            )
            # A monitor task cancelled by a reconfiguration is no task dying on its own.
            done = {t for t in done if not (t.cancelled() and t not in tasks)}
            if done:
                return done

    async def _start_monitor(self, monitor: Monitor) -> bool:
        try:
            await monitor.start()
        except (OSError, RuntimeError, ValueError) as exc:
            log.error("school=%s monitor=%s cannot start: %s", self.school, monitor.name, exc)
            return False
        task = asyncio.create_task(self._monitor_loop(monitor), name=f"monitor-{monitor.name}")
        self._monitor_tasks[monitor.name] = (monitor, task)
        return True

    async def _stop_monitor(self, name: str) -> None:
        monitor, task = self._monitor_tasks.pop(name)
        await _cancel_and_wait([task])
        try:
            async with asyncio.timeout(5):
                await monitor.stop()
        except (OSError, RuntimeError, TimeoutError) as exc:
            log.warning("school=%s monitor=%s did not stop cleanly: %s", self.school, monitor.name, exc)

    async def reconfigure(self, config: AgentConfig) -> None:
        """Put a new configuration in force without a restart.

        Thresholds, hysteresis and privacy are retuned in place; a monitor whose section changed
        (``[cabinets]`` for the cabinet monitor, and so on: a monitor's name is its section's) is
        stopped and started anew with the new section, one that is configured now starts, one
        that is not any more stops. Intervals of the snapshot and maintenance loops are read
        afresh at each round.
        """
        old, self.config = self.config, config
        self._retune(config)
        if self._build_monitors is None:
            return
        fresh = {m.name: m for m in self._build_monitors(config)}
        current = {m.name: m for m in self.monitors}
        changed = [name for name in current.keys() | fresh.keys()
                   if getattr(old, name, None) != getattr(config, name, None)]  # fmt: skip
        for name in sorted(changed):
            if name in self._monitor_tasks:
                await self._stop_monitor(name)
            self.monitors = [m for m in self.monitors if m.name != name]
            if name in fresh:
                self.monitors.append(fresh[name])
                if self._running:
                    await self._start_monitor(fresh[name])
            log.info("school=%s monitor=%s %s with the new configuration", self.school, name,
                     "restarted" if name in fresh and name in current else "started" if name in fresh else "stopped")

    async def _shutdown(self, tasks: list[asyncio.Task[None]], runner: web.AppRunner | None) -> None:
        await _cancel_and_wait(tasks)
        for name in list(self._monitor_tasks):
            await self._stop_monitor(name)
        if runner is not None:
            await runner.cleanup()
        stats = self.outbox.stats()
        self.store.close()
        log.info("school=%s agent stopped; outbox last_seq %d, depth %d", self.school, stats.last_seq, stats.depth)


async def _cancel_and_wait(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel ``tasks`` and wait until each has ended.

    A task still running a second after its cancel (a library that swallowed it) is cancelled
    again, so a lost cancel delays shutdown by a second instead of leaving an agent that ignores
    SIGTERM. Their errors are taken here, so none is reported as never retrieved.
    """
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=1.0)
        for task in pending:
            log.warning("task %s went on after its cancel; cancelling it again", task.get_name())
    for task in tasks:
        if not task.cancelled():
            task.exception()

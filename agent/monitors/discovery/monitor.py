"""The discovery monitor: mDNS browsing into the inventory, presence rules, and the snapshot section."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from agent.monitors.discovery.browser import BrowserSettings, MdnsBrowser
from agent.monitors.discovery.classes import CLASS_TABLE, METER, TABLET, ClassRule, browse_types
from agent.monitors.discovery.config import DiscoveryConfig
from agent.monitors.discovery.drops import socket_drops
from agent.monitors.discovery.interfaces import choose_interfaces
from agent.monitors.discovery.observation import Observation
from agent.monitors.discovery.presence import (
    NotSeenList,
    SchoolCalendar,
    due_for_probe,
    missing_signal,
    next_state,
)
from agent.monitors.discovery.tracker import ABSENT, MISSING, PRESENT, DeviceTracker
from agent.monitors.interface import Device, MonitorReport, Signal
from agent.monitors.wlan.probes import ProbeResult, tcp_probe

log = logging.getLogger(__name__)

Probe = Callable[[str, int, float], Awaitable[ProbeResult]]
MAX_CHANGE_LOG_LINES = 20
PROBE_CONCURRENCY = 16


def _utcnow() -> datetime:
    return datetime.now(UTC)


class DiscoveryMonitor:
    """Monitor protocol implementation for mDNS discovery."""

    name = "discovery"

    def __init__(
        self,
        config: DiscoveryConfig,
        *,
        school: str = "school",
        tz: ZoneInfo | None = None,
        clock: Callable[[], datetime] = _utcnow,
        probe: Probe = tcp_probe,
        table: Iterable[ClassRule] = CLASS_TABLE,
    ) -> None:
        self.interval_s = config.interval
        self._config = config
        self._school = school
        self._clock = clock
        self._probe = probe
        self._last_liveness: dict[str, datetime] = {}
        table = tuple(table)
        self.tracker = DeviceTracker(config.max_devices, table)
        self.interfaces = choose_interfaces(config.interfaces)
        if self.interfaces.note:
            log.warning("school=%s discovery: %s", school, self.interfaces.note)
        settings = BrowserSettings(
            school=school,
            interfaces=self.interfaces.addresses,
            ip_version=config.ip_version,
            question_type=config.question_type,
            rcvbuf_bytes=config.rcvbuf_bytes,
            resolve_timeout_ms=int(config.resolve_timeout * 1000),
            host_rate_per_s=config.host_rate_per_s,
            host_burst=float(config.host_burst),
        )
        self.browser = MdnsBrowser(
            settings, browse_types(table, config.service_types), self._on_observation, self._on_removed
        )
        zone = tz or ZoneInfo(config.timezone)
        # Tablets that go home: only school hours on school days say whether they should be here.
        self._calendar = (
            SchoolCalendar.parse(config.school_hours, config.school_days, config.school_holidays, zone)
            if config.tablets_go_home else None
        )  # fmt: skip
        self._not_seen = NotSeenList(config.tablet_not_seen_after, config.not_seen_report_at, zone, self._calendar)
        self._last_drops: int | None = None
        self.probes_unsent = 0  # probes that could not leave this host (counted, never held against a device)
        self._unsent_logged = False

    # -- browser sinks: stamp with the injected clock, merge at once -----------------------

    def _on_observation(self, obs: Observation) -> None:
        self.tracker.observe(obs, self._clock())

    def _on_removed(self, service_name: str) -> None:
        self.tracker.service_removed(service_name, self._clock())

    # -- Monitor protocol ---------------------------------------------------------------

    async def start(self) -> None:
        """Open zeroconf and start browsing."""
        await self.browser.start()

    async def stop(self) -> None:
        """Cancel browsers and close zeroconf."""
        await self.browser.stop()

    async def collect(self, now: datetime) -> MonitorReport:
        """Presence rules over the inventory; the device changes since the last round."""
        inv = self.tracker
        inv.touch_live(now)
        signals = await self._presence(now)
        # Exported only when the daily list is due: a round must not copy every device.
        signals.append(self._not_seen.evaluate(inv.iter_devices((TABLET,)), now))
        inv.forget_unseen_since(now - self._config.forget_after)
        changes = inv.take_changes()
        self._log_changes(changes)
        drops = await asyncio.to_thread(socket_drops, self.browser.socket_inodes())
        if drops is not None and self._last_drops is not None and drops > self._last_drops:
            log.warning(
                "discovery socket dropped packets school=%s dropped=%d total=%d",
                self._school, drops - self._last_drops, drops,
            )
        self._last_drops = drops if drops is not None else self._last_drops
        return MonitorReport(
            section="discovery",
            snapshot=self._snapshot(drops),
            signals=signals,
            device_changes=changes,
        )

    # -- rules ----------------------------------------------------------------------------

    async def _answers(self, devices: list[Device]) -> dict[str, bool | None]:
        """Probe each device's best endpoints (bounded concurrency): does it answer?

        None when no probe could even be sent (no route, no free socket on this host): that
        says nothing about the device, so it is counted and logged, never held against it.
        """
        semaphore = asyncio.Semaphore(PROBE_CONCURRENCY)
        unsent: list[str] = []

        async def probe(device: Device) -> tuple[str, bool | None]:
            async with semaphore:
                sent = False
                for host, port in self.tracker.endpoints(device.id)[:2]:
                    result = await self._probe(host, port, self._config.probe_timeout)
                    if result.ok:
                        return device.id, True
                    if result.sent:
                        sent = True
                    else:
                        unsent.append(f"{host}:{port} ({result.error})")
                return device.id, False if sent else None

        verdicts = dict(await asyncio.gather(*(probe(d) for d in devices)))
        self.probes_unsent += len(unsent)
        if unsent and not self._unsent_logged:
            log.warning("discovery probes could not be sent school=%s count=%d first=%s",
                        self._school, len(unsent), unsent[0])
        if unsent:
            self._unsent_logged = True
        elif devices:
            self._unsent_logged = False  # a clean round of probes: the next failure is news again
        return verdicts

    async def _liveness(self, watched: list[Device], now: datetime) -> None:
        """Probe present must-stay-present devices now and then: silence on mDNS proves nothing."""
        interval = self._config.liveness_interval
        if interval.total_seconds() <= 0:
            return
        due = [
            d for d in watched
            if d.state == PRESENT and self.tracker.endpoints(d.id)
            and now - self._last_liveness.get(d.id, datetime.min.replace(tzinfo=now.tzinfo)) >= interval
        ]
        for device_id, answered in (await self._answers(due)).items():
            self._last_liveness[device_id] = now
            if answered is False:
                self.tracker.mark_unanswering(device_id, now)
                device = self.tracker.get(device_id)
                log.info(
                    "device does not answer while present on mDNS school=%s device=%s class=%s",
                    self._school, device.name if device else device_id, device.device_class if device else "-",
                )

    def _absent_since(self, device: Device, now: datetime) -> datetime | None:
        """When the device's absence started to count (a take-home tablet's: not before school began)."""
        since = self.tracker.absent_since(device.id)
        if since is not None and self._calendar is not None and device.device_class == TABLET:
            return self._calendar.absence_counts_from(since, now)
        return since

    async def _presence(self, now: datetime) -> list[Signal]:
        must = set(self._config.must_stay_present)
        if self._calendar is not None and not self._calendar.in_school_hours(now):
            must.discard(TABLET)  # at home with the pupils: neither probed nor judged until school begins
        await self._liveness(self.tracker.devices(must), now)
        watched = self.tracker.devices(must)
        due = [d for d in watched if due_for_probe(d, self._absent_since(d, now), now, self._config.missing_after)]
        verdicts = await self._answers(due)
        signals: list[Signal] = []
        for device in watched:
            answered = verdicts.get(device.id)
            state = next_state(device, answered)
            if answered and self.tracker.is_live(device.id):
                state = PRESENT  # it was only its liveness probe that failed once
            if state != device.state:
                self.tracker.set_state(device.id, state)
                verdict = {
                    MISSING: "missing (probe failed)",
                    PRESENT: "answers its probe again",
                }.get(state, "answers probe while absent from mDNS")
                log.info(
                    "device %s school=%s device=%s class=%s", verdict, self._school, device.name, device.device_class
                )
            missing = state == MISSING and device.id in verdicts
            signals.append(missing_signal(device, missing, now, self.tracker.absent_since(device.id)))
        return signals

    # -- reporting ------------------------------------------------------------------------

    def _log_changes(self, changes: list[Any]) -> None:
        for change in changes[:MAX_CHANGE_LOG_LINES]:
            d = change.device
            log.info(
                "device %s school=%s device=%s class=%s model=%s state=%s",
                change.change, self._school, d.name, d.device_class, d.model, d.state,
            )
        if len(changes) > MAX_CHANGE_LOG_LINES:
            log.info("device changes school=%s more=%d", self._school, len(changes) - MAX_CHANGE_LOG_LINES)

    def _snapshot(self, drops: int | None) -> dict[str, Any]:
        stats = self.browser.stats
        candidates = [
            {"id": d.id, "model": d.model, "url": f"http://{ep[0]}:{ep[1]}", "gen": d.properties.get("gen")}
            for d in self.tracker.devices((METER,))
            for ep in self.tracker.endpoints(d.id)[:1]
        ]
        by_class = self.tracker.counts()
        return {
            "devices": len(self.tracker),
            "by_class": by_class,
            "absent": sum(per.get(ABSENT, 0) for per in by_class.values()),
            "missing": sum(per.get(MISSING, 0) for per in by_class.values()),
            "meter_candidates": candidates[:50],
            "mdns": {
                "events": stats.events,
                "dropped_events": stats.dropped_events,
                "resolved": stats.resolved,
                "unresolved": stats.unresolved,
                "resolve_queue_full": stats.resolve_queue_full,
                "malformed": stats.malformed,
                "rate_limited": stats.rate_limited,
                "pending": self.browser.pending(),
                "socket_drops": drops,
                "rcvbuf_bytes": self.browser.rcvbuf_bytes,
            },
            "probes_unsent": self.probes_unsent,
            "inventory": {
                "max_devices": self._config.max_devices,
                "rejected_full": self.tracker.rejected_full,
                "rejected_services": self.tracker.rejected_services,
                "evicted": self.tracker.evicted,
            },
        }

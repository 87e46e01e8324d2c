"""Alert routing put together: channels from the config, the router pass, the worker, the background loop.

``open_alerts`` builds everything from ``[alerts]`` (reading the secret files and the holidays
file, each refusal one ConfigError line) and owns the HTTP client session; ``AlertService.run_once``
is one routing pass and one delivery pass at the clock's "now" (tests call it with a FakeClock),
``run_forever`` repeats it every ``interval`` in `serve`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp

from base.clock import Clock
from base.errors import ConfigError
from central.alerts.channels import (
    Channel,
    DeliveryError,
    EmailSender,
    Notice,
    WebhookSender,
    ZammadSender,
    read_secret,
)
from central.alerts.config import AlertsSection
from central.alerts.delivery import DeliverySummary, DeliveryWorker
from central.alerts.router import PlanSummary, plan
from central.alerts.schedule import Holidays, Schedule, load_holidays
from central.alerts.wording import IncidentFacts, compose
from central.storage.interface import Storage
from central.timestamps import iso

log = logging.getLogger(__name__)


def build_schedule(alerts: AlertsSection, base: Path | None) -> Schedule:
    """Quiet hours and holidays of ``[alerts]``; a relative ``holidays_ics`` counts from ``base``."""
    zone = ZoneInfo(alerts.timezone)
    holidays = Holidays()
    if alerts.holidays_ics:
        path = Path(alerts.holidays_ics)
        holidays = load_holidays(path if path.is_absolute() or base is None else base / path, zone)
    return Schedule(zone, alerts.quiet_start, alerts.quiet_end, holidays, alerts.holiday_mode)


def build_channels(alerts: AlertsSection, base: Path | None, session: aiohttp.ClientSession) -> dict[str, Channel]:
    """Every configured channel by name, with its secret read from its file (ConfigError when unreadable)."""
    channels: dict[str, Channel] = {}
    for mail in alerts.email:
        password = read_secret(mail.password_file, base, "SMTP password file") if mail.password_file else None
        channels[mail.name] = EmailSender(mail, password, mail.language)
    for hook in alerts.webhook:
        secret = read_secret(hook.secret_file, base, "webhook secret file")
        channels[hook.name] = WebhookSender(hook, secret, hook.language, session)
    for desk in alerts.zammad:
        token = read_secret(desk.token_file, base, "Zammad token file")
        channels[desk.name] = ZammadSender(desk, token, desk.language, session)
    return channels


@dataclass(frozen=True, slots=True)
class PassResult:
    """One routing pass and one delivery pass."""

    planned: PlanSummary
    delivered: DeliverySummary


class AlertService:
    """Routing and delivery over one store (see the module doc)."""

    def __init__(
        self,
        store: Storage,
        alerts: AlertsSection,
        schedule: Schedule,
        channels: Mapping[str, Channel],
        clock: Clock,
        *,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.store = store
        self.alerts = alerts
        self.schedule = schedule
        self.channels = channels
        self.clock = clock
        self.worker = DeliveryWorker(store, alerts, schedule, channels, jitter)

    async def run_once(self) -> PassResult:
        """Queue what the incidents call for, then send what is due."""
        now = self.clock.now()
        planned = await plan(self.store, self.alerts, self.schedule, now)
        delivered = await self.worker.deliver_due(now)
        return PassResult(planned, delivered)

    async def deliver(self, delivery_id: int) -> DeliverySummary:
        """Try one message now (after `retry` put it back), if it is due and not waiting for an earlier one."""
        return await self.worker.deliver_due(self.clock.now(), delivery_id=delivery_id)

    async def send_test(self, channel_name: str) -> str | None:
        """Send a test message through one channel, outside the outbox; DeliveryError when it fails."""
        channel = self.channels.get(channel_name)
        if channel is None:
            known = ", ".join(self.channels) or "none configured"
            raise ConfigError(f"no alert channel named {channel_name!r} (known: {known})")
        now = iso(self.clock.now())
        language = channel.language or self.alerts.language
        title = "Testnachricht von Schulwart" if language == "de" else "Test message from Schulwart"
        facts = IncidentFacts("test", "Testschule", "Test", "test", "central", "test", "agent", "info", title,
                              None, now)  # fmt: skip
        message = compose("opened", (facts,), language=language, public_url=self.alerts.public_url,
                          zone=self.schedule.zone)  # fmt: skip
        return await channel.send(Notice(0, f"test/{now}", "test", (facts,), message, now))

    async def run_forever(self) -> None:
        """``run_once`` every ``interval``; a failed pass is logged and the next one comes."""
        while True:
            try:
                result = await self.run_once()
                done = result.delivered
                if result.planned.total or done.sent or done.failed:
                    log.debug("alert pass: queued=%s sent=%d failed=%d dead=%d", dict(result.planned.queued),
                              len(done.sent), len(done.failed), len(done.dead))  # fmt: skip
            except Exception:  # a database hiccup must not end alerting for good
                log.exception("alert pass failed; next one in %s", self.alerts.interval)
            await asyncio.sleep(self.alerts.interval.total_seconds())


@contextlib.asynccontextmanager
async def open_alerts(
    store: Storage, alerts: AlertsSection, clock: Clock, *, config_dir: Path | None = None
) -> AsyncIterator[AlertService]:
    """An AlertService with its HTTP session; relative file names in ``[alerts]`` count from ``config_dir``.

    Raises ConfigError (one line) for an unreadable secret or holidays file.
    """
    schedule = build_schedule(alerts, config_dir)
    async with aiohttp.ClientSession() as session:
        yield AlertService(store, alerts, schedule, build_channels(alerts, config_dir, session), clock)


async def run_in_background(service: AlertService) -> AsyncIterator[None]:
    """A cleanup-context body: routing and delivery run while the app does."""
    log.info("alert routing on: %d rules, channels %s", len(service.alerts.rule), ", ".join(service.channels))
    task = asyncio.create_task(service.run_forever(), name="alert-routing")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


__all__ = ["AlertService", "DeliveryError", "PassResult", "open_alerts", "run_in_background"]

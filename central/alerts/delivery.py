"""The delivery worker: sends what the router queued, with capped, jittered backoff and a dead-letter list.

``deliver_due`` leases the due messages (so a second central node or a `retry` from the CLI does
not send the same one at the same moment), words each at send time, hands it to its channel and
records the outcome. A failure is retried after ``retry_base * 2^(attempt-1)``, capped at
``retry_cap`` and scaled by a random factor in [0.5, 1) so that many failed messages do not come
back in step; after ``max_attempts`` failures, or at once for a failure a retry cannot heal (a 4xx
answer), the message is *dead*: listed by `schulwart-central alerts list` until `alerts retry ID`.
A message whose time falls in quiet hours or a holiday (see schedule.py) is held until it
ends, without counting an attempt.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from central.alerts.channels import Channel, DeliveryError, Notice
from central.alerts.config import SEVERITY_RANK, AlertsSection
from central.alerts.schedule import Schedule
from central.alerts.wording import IncidentFacts, compose
from central.storage.interface import AlertDelivery, Storage
from central.timestamps import iso

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=5)  # longer than any send may take (every channel's timeout is at most 300 s)
BATCH = 50
ROUNDS = 4


@dataclass(slots=True)
class DeliverySummary:
    """What one worker pass did, by outcome: ids sent, failed (will retry), dead, held."""

    sent: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    dead: list[int] = field(default_factory=list)
    held: list[int] = field(default_factory=list)
    errors: dict[int, str] = field(default_factory=dict)


def backoff(attempt: int, base: timedelta, cap: timedelta, jitter: float) -> timedelta:
    """The wait after failed attempt number ``attempt`` (1, 2, …): exponential, capped, times ``jitter``.

    ``jitter`` is a random number in [0, 1); the wait is scaled into [0.5, 1) of the capped value.
    """
    exponent = min(max(attempt - 1, 0), 30)
    raw = min(cap.total_seconds(), base.total_seconds() * 2**exponent)
    return timedelta(seconds=raw * (0.5 + 0.5 * min(max(jitter, 0.0), 1.0)))


def incidents_of(delivery: AlertDelivery) -> tuple[tuple[IncidentFacts, ...], str]:
    """The facts a queued message carries and, for a digest, its cause."""
    doc = json.loads(delivery.payload)
    if delivery.kind == "digest":
        return tuple(IncidentFacts.from_json(i) for i in doc["incidents"]), str(doc.get("cause", ""))
    return (IncidentFacts.from_json(doc),), ""


class DeliveryWorker:
    """Sends queued messages through the configured channels (see the module doc)."""

    def __init__(
        self,
        store: Storage,
        alerts: AlertsSection,
        schedule: Schedule,
        channels: Mapping[str, Channel],
        jitter: Callable[[], float],
    ) -> None:
        self.store = store
        self.alerts = alerts
        self.schedule = schedule
        self.channels = channels
        self.jitter = jitter

    async def deliver_due(self, now: datetime, *, delivery_id: int | None = None) -> DeliverySummary:
        """Send every due message (or only ``delivery_id``) once; the outcome of each."""
        summary = DeliverySummary()
        # A sent message may free the next one of its thread (a follow-up waits for its opening):
        # claim again while messages go out, a few rounds at most.
        for _ in range(ROUNDS):
            claimed = await self.store.claim_alert_deliveries(iso(now), iso(now + LEASE), BATCH, delivery_id)
            sent_before = len(summary.sent)
            for delivery in claimed:
                await self._one(delivery, now, summary)
            if len(summary.sent) == sent_before or delivery_id is not None:
                break
        return summary

    async def _one(self, delivery: AlertDelivery, now: datetime, summary: DeliverySummary) -> None:
        channel = self.channels.get(delivery.channel)
        if channel is None:
            await self._failed(delivery, now, DeliveryError(f"channel {delivery.channel!r} is not configured",
                                                            permanent=True), summary)  # fmt: skip
            return
        incidents, cause = incidents_of(delivery)
        worst = max((i.severity for i in incidents), key=lambda s: SEVERITY_RANK.get(s, 0))
        hold = self.schedule.decide(now, worst, follow_up=True)
        if hold.due > now:
            # Quiet hours or a holiday began after it was queued (or a retry fell into them).
            await self.store.alert_failed(delivery.id, delivery.attempts, "pending", iso(hold.due),
                                          f"held until {iso(hold.due)} ({hold.reason})")  # fmt: skip
            summary.held.append(delivery.id)
            return
        message = compose(
            delivery.kind,
            incidents,
            language=channel.language or self.alerts.language,
            public_url=self.alerts.public_url,
            zone=self.schedule.zone,
            cause=cause,
        )
        ref = None
        if delivery.kind in ("acknowledged", "resolved"):
            ref = await self.store.alert_thread_ref(delivery.channel, delivery.thread)
        notice = Notice(delivery.id, delivery.thread, delivery.kind, incidents, message, iso(now), ref, cause)
        try:
            # Each channel has its own timeout per network step; this caps the whole exchange.
            async with asyncio.timeout(LEASE.total_seconds() / 2):
                new_ref = await channel.send(notice)
        except DeliveryError as exc:
            await self._failed(delivery, now, exc, summary)
            return
        except TimeoutError:
            await self._failed(delivery, now, DeliveryError("no answer within the send deadline"), summary)
            return
        keep = new_ref if delivery.kind in ("opened", "digest") else None
        await self.store.alert_delivered(delivery.id, iso(now), keep)
        summary.sent.append(delivery.id)
        log.info("alert sent channel=%s kind=%s school=%s delivery=%d attempt=%d",
                 delivery.channel, delivery.kind, delivery.school_id or "(digest)", delivery.id,
                 delivery.attempts + 1)  # fmt: skip

    async def _failed(
        self, delivery: AlertDelivery, now: datetime, exc: DeliveryError, summary: DeliverySummary
    ) -> None:
        attempts = delivery.attempts + 1
        school = delivery.school_id or "(digest)"
        summary.errors[delivery.id] = exc.message
        if exc.permanent or attempts >= self.alerts.max_attempts:
            await self.store.alert_failed(delivery.id, attempts, "dead", iso(now), exc.message)
            summary.dead.append(delivery.id)
            log.error("alert dead channel=%s kind=%s school=%s delivery=%d attempts=%d: %s "
                      "(schulwart-central alerts retry %d)", delivery.channel, delivery.kind, school, delivery.id,
                      attempts, exc.message, delivery.id)  # fmt: skip
            return
        wait = backoff(attempts, self.alerts.retry_base, self.alerts.retry_cap, self.jitter())
        await self.store.alert_failed(delivery.id, attempts, "pending", iso(now + wait), exc.message)
        summary.failed.append(delivery.id)
        log.warning("alert failed channel=%s kind=%s school=%s delivery=%d attempt=%d/%d retry in %ds: %s",
                    delivery.channel, delivery.kind, school, delivery.id, attempts, self.alerts.max_attempts,
                    int(wait.total_seconds()), exc.message)  # fmt: skip

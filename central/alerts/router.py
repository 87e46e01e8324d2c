"""Alert routing: from the incident rows to threads and queued messages, idempotently.

One pass (``plan``) runs in one database transaction. It looks at every open incident and every
incident whose alert thread is still open, asks the rules which channels it goes to, and for each
(channel, incident episode) compares what the incident is now with what the thread has said:

- nothing said yet and the incident is open → an ``opened`` message (or, on a silent holiday, a
  ``suppressed`` thread that never speaks; or a place in a digest, see below);
- acknowledged and not yet said so → ``acknowledged``;
- resolved → ``resolved``, and the thread closes. A thread whose ``opened`` has not even been
  tried yet (deferred by quiet hours) is cancelled instead: nobody needs to hear of it any more.

The thread's primary key (channel, episode) and the outbox's unique (channel, thread, kind) make a
repeated pass, a second central node or a crash between passes harmless: each message is queued
once. An incident that opened and resolved between two passes is never announced.

Digest: new openings of one *cause* (category plus the key's family, the part before the first
``:``, e.g. ``wlan/probe-failed``) on one channel are counted over ``digest_window``; when the new
ones of this pass and those before them exceed ``digest_threshold``, the new ones join one digest
message (which gathers for ``digest_hold`` before it goes) instead of a message each. Incidents
announced in a digest get no follow-ups of their own.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from central.alerts.config import AlertsSection
from central.alerts.schedule import Schedule
from central.alerts.wording import IncidentFacts
from central.storage.interface import AlertThread, Storage, Transaction
from central.timestamps import iso

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PlanSummary:
    """What one pass queued: messages by kind, plus threads suppressed and cancelled."""

    queued: Mapping[str, int]
    suppressed: int = 0
    cancelled: int = 0
    digested: int = 0

    @property
    def total(self) -> int:
        """Messages queued, every kind."""
        return sum(self.queued.values())


def thread_of(row: Mapping[str, Any]) -> str:
    """The episode an incident row is: agent incident ids are new at each opening; central ones are reused
    (``central-silent``), so their opening time tells the episodes apart."""
    base = f"{row['school_id']}/{row['origin']}/{row['agent_id'] or '-'}/{row['incident_id']}"
    return f"{base}@{row['opened_at']}" if row["origin"] == "central" else base


def cause_of(category: str, key: str | None) -> str:
    """The digest group: the category and the key's family (before the first ':'), e.g. ``cabinet/cabinet-no-power``."""
    family = (key or "").split(":", 1)[0][:64] or "-"
    return f"{category}/{family}"


def _facts_payload(row: Mapping[str, Any]) -> str:
    return json.dumps(IncidentFacts.from_row(row).to_json(), ensure_ascii=False, separators=(",", ":"))


async def plan(store: Storage, alerts: AlertsSection, schedule: Schedule, now: datetime) -> PlanSummary:
    """One routing pass at ``now``: queue what is due to be said about the incidents (see the module doc)."""
    queued: dict[str, int] = defaultdict(int)
    suppressed = cancelled = digested = 0
    at = iso(now)
    async with store.transaction() as tx:
        fresh: dict[tuple[str, str], list[Mapping[str, Any]]] = defaultdict(list)
        for row in await tx.alert_candidates():
            thread = thread_of(row)
            channels = alerts.channels_for(row["carrier"], row["school_id"], row["category"], row["severity"])
            # A thread opened on a channel the rules no longer name still owes its follow-ups.
            channels += tuple(c for c in await tx.open_alert_channels(thread) if c not in channels)
            for channel in channels:
                existing = await tx.get_alert_thread(channel, thread)
                if existing is None:
                    if row["status"] == "open":
                        fresh[(channel, cause_of(row["category"], row["key"]))].append(row)
                    continue
                if existing.state != "open":
                    continue
                outcome = await _follow_up(tx, existing, row, schedule, now, at)
                if outcome == "cancelled":
                    cancelled += 1
                elif outcome:
                    queued[outcome] += 1
        for (channel, cause), rows in fresh.items():
            q, s, d = await _open(tx, alerts, schedule, channel, cause, rows, now, at)
            for kind, n in q.items():
                queued[kind] += n
            suppressed, digested = suppressed + s, digested + d
    return PlanSummary(dict(queued), suppressed, cancelled, digested)


async def _follow_up(
    tx: Transaction, thread: AlertThread, row: Mapping[str, Any], schedule: Schedule, now: datetime, at: str
) -> str:
    """Queue the acknowledged or resolved message an open thread owes; its kind, "cancelled" or ""."""
    payload = _facts_payload(row)
    if row["status"] != "open":
        opened = await tx.get_alert_delivery_of(thread.channel, thread.thread, "opened")
        await tx.put_alert_thread(replace(thread, state="closed"))
        if opened is not None and opened.status == "pending" and opened.attempts == 0:
            await tx.cancel_alert_deliveries(thread.channel, thread.thread, at)
            log.info("alert cancelled channel=%s school=%s thread=%s: resolved before it went out",
                     thread.channel, thread.school_id, thread.thread)  # fmt: skip
            return "cancelled"
        due = schedule.decide(now, str(row["severity"]), follow_up=True).due
        await tx.add_alert_delivery(thread.channel, thread.thread, "resolved", thread.school_id, payload, iso(due), at)
        return "resolved"
    if row["acknowledged_at"] and not thread.acked:
        await tx.put_alert_thread(replace(thread, acked=True))
        due = schedule.decide(now, str(row["severity"]), follow_up=True).due
        await tx.add_alert_delivery(
            thread.channel, thread.thread, "acknowledged", thread.school_id, payload, iso(due), at
        )
        return "acknowledged"
    return ""


async def _open(
    tx: Transaction,
    alerts: AlertsSection,
    schedule: Schedule,
    channel: str,
    cause: str,
    rows: Sequence[Mapping[str, Any]],
    now: datetime,
    at: str,
) -> tuple[dict[str, int], int, int]:
    """Open threads for new incidents of one cause on one channel: each its own message, or one digest."""
    queued: dict[str, int] = defaultdict(int)
    since = iso(now - alerts.digest_window)
    recent = await tx.count_alert_threads(channel, cause, since)
    flood = recent + len(rows) > alerts.digest_threshold
    suppressed = 0
    members: list[Mapping[str, Any]] = []
    for row in rows:
        decision = schedule.decide(now, str(row["severity"]), follow_up=False)
        thread = AlertThread(
            channel=channel,
            thread=thread_of(row),
            school_id=row["school_id"],
            origin=row["origin"],
            agent_id=row["agent_id"],
            incident_id=row["incident_id"],
            cause=cause,
            mode="single",
            state="open",
            acked=bool(row["acknowledged_at"]),
            external_ref=None,
            created_at=at,
        )
        if not decision.send:
            await tx.put_alert_thread(replace(thread, mode="suppressed", state="closed"))
            log.info("alert suppressed channel=%s school=%s incident=%s: %s",
                     channel, row["school_id"], row["incident_id"][:64], decision.reason)  # fmt: skip
            suppressed += 1
            continue
        if flood:
            await tx.put_alert_thread(replace(thread, mode="digested", state="closed"))
            members.append(row)
            continue
        await tx.put_alert_thread(thread)
        await tx.add_alert_delivery(
            channel, thread.thread, "opened", row["school_id"], _facts_payload(row), iso(decision.due), at
        )
        queued["opened"] += 1
    if members:
        queued["digest"] += await _digest(tx, alerts, schedule, channel, cause, members, now, at)
    return dict(queued), suppressed, len(members)


async def _digest(
    tx: Transaction,
    alerts: AlertsSection,
    schedule: Schedule,
    channel: str,
    cause: str,
    members: Sequence[Mapping[str, Any]],
    now: datetime,
    at: str,
) -> int:
    """Add members to the digest still gathering for this cause, or begin one; 1 when one was begun."""
    facts = [IncidentFacts.from_row(row).to_json() for row in members]
    gathering = await tx.gathering_digest(channel, cause)
    if gathering is not None:
        doc = json.loads(gathering.payload)
        doc["incidents"] = [*doc["incidents"], *facts]
        await tx.set_alert_payload(gathering.id, json.dumps(doc, ensure_ascii=False, separators=(",", ":")))
        log.info("alert digest grows channel=%s cause=%s delivery=%d members=%d",
                 channel, cause, gathering.id, len(doc["incidents"]))  # fmt: skip
        return 0
    worst = "critical" if any(m["severity"] == "critical" for m in members) else str(members[0]["severity"])
    release = schedule.decide(now + alerts.digest_hold, worst, follow_up=True).due
    thread = f"digest/{channel}/{cause}@{at}"
    await tx.put_alert_thread(
        AlertThread(channel, thread, None, None, None, None, cause, "digest", "closed", False, None, at)
    )
    payload = json.dumps({"cause": cause, "incidents": facts}, ensure_ascii=False, separators=(",", ":"))
    await tx.add_alert_delivery(channel, thread, "digest", None, payload, iso(release), at)
    log.info("alert digest begun channel=%s cause=%s members=%d", channel, cause, len(members))
    return 1

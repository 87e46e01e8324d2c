"""Agent silent: central's own incident for a school whose agents stopped reporting.

``check_silence`` is one pass at a given time (tests call it with exact times); the
background task in serve runs it every ``silent_check_interval``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

from base.clock import Clock
from central.ingest import SILENT_INCIDENT
from central.storage.interface import IncidentQuery, Storage
from central.timestamps import from_iso, iso

log = logging.getLogger(__name__)

_OPEN_LIMIT = 100_000


async def check_silence(store: Storage, now: datetime, window: timedelta) -> tuple[list[str], list[str]]:
    """Raise or resolve the silent incident of every school with agents; returns (raised, resolved)."""
    raised, resolved = [], []
    minutes = int(window.total_seconds() // 60)
    # One query for the schools that are silent already: a pass then writes only where something
    # changes, not a transaction per school (15,000 a pass at Land scale). A school beyond the
    # limit is still right: raising is idempotent, and its next report resolves it.
    already = {
        row["school_id"]
        for row in await store.list_incidents(IncidentQuery(status="open", category="agent", limit=_OPEN_LIMIT))
        if row["origin"] == "central" and row["incident_id"] == SILENT_INCIDENT
    }
    for summary in await store.school_summaries():
        school_id = summary.school.id
        if summary.agents == 0 or summary.last_contact_at is None:
            continue
        silent = now - from_iso(summary.last_contact_at) > window
        if silent == (school_id in already):
            continue
        if silent:
            title = f"Agent silent: no report for more than {minutes} min"
            if await store.raise_central_incident(
                school_id, SILENT_INCIDENT, "agent", "warning", title, None, iso(now),
                code="central.silent", params={"minutes": minutes},
            ):
                log.warning("agent silent school=%s last_contact=%s", school_id, summary.last_contact_at)
                raised.append(school_id)
        elif await store.resolve_central_incident(school_id, SILENT_INCIDENT, iso(now)):
            log.info("agent reporting again school=%s", school_id)
            resolved.append(school_id)
    return raised, resolved


async def silence_monitor(store: Storage, clock: Clock, window: timedelta, interval: timedelta) -> None:
    """Run ``check_silence`` forever, every ``interval``; a failed pass is logged, not fatal."""
    while True:
        try:
            await check_silence(store, clock.now(), window)
        except Exception:  # a database hiccup must not end monitoring for good
            log.exception("silence check failed; retrying in %s", interval)
        await asyncio.sleep(interval.total_seconds())


async def run_in_background(
    store: Storage, clock: Clock, window: timedelta, interval: timedelta
) -> AsyncIterator[None]:
    """A cleanup-context body: the monitor runs while the app does."""
    task = asyncio.create_task(silence_monitor(store, clock, window, interval), name="silence-monitor")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

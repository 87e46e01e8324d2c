"""The current state per school, kept up to date as events and state payloads arrive.

History (numbered events, applied strictly in order) and the agent's state payload (its
present, outside the sequence) both write the same current-view rows. Each incident and
device row remembers the agent sequence number that last decided it (``status_seq`` /
``seq``); whichever source is newer in sequence terms wins, so a week of history draining
after a fresh state cannot reopen what the state already showed as resolved. A state made
at ``last_seq`` L already includes event L, so it wins over history up to and including L.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from central.storage.base import AgentRow, SchoolSummary, Transaction
from central.timestamps import from_iso, normalize
from protocol.errors import MalformedError
from protocol.schema import Event, StatePayload

SNAPSHOT = "health.snapshot"
_DEVICE_KINDS = frozenset({"device.seen", "device.changed", "device.lost"})
_MAX_NOTES = 200

log = logging.getLogger(__name__)


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _new_incident(agent: AgentRow, incident_id: str, now: str) -> dict[str, Any]:
    return {
        "school_id": agent.school_id,
        "origin": "agent",
        "agent_id": agent.agent_id,
        "incident_id": incident_id,
        "key": None,
        "category": "agent",
        "severity": "info",
        "title": incident_id,
        "subject": None,
        "status": "open",
        "status_seq": -1,
        "opened_at": None,
        "resolved_at": None,
        "acknowledged_by": None,
        "acknowledged_at": None,
        "notes": [],
        "updated_at": now,
    }


def _add_note(row: dict[str, Any], note: Mapping[str, Any]) -> None:
    entry = {"by": note.get("by"), "text": note.get("text"), "at": note.get("at")}
    if entry not in row["notes"] and len(row["notes"]) < _MAX_NOTES:
        row["notes"].append(entry)


def _take_incident_fields(row: dict[str, Any], data: Mapping[str, Any]) -> None:
    for name in ("key", "category", "severity", "title", "subject"):
        if name in data:
            row[name] = data[name]


async def _apply_incident_event(tx: Transaction, agent: AgentRow, event: Event, now: str) -> None:
    data, at = event.data, normalize(event.at)
    row = await tx.get_incident(agent.school_id, "agent", agent.agent_id, str(data["id"]))
    if row is None and event.kind != "incident.opened":
        # Never opened, neither in the history nor in a state: the event stays in the stored
        # history, but the current view gets no half-record without key, title or opening.
        log.warning(
            "school=%s agent=%s seq=%d %s names unknown incident %s: not applied to the view",
            agent.school_id, agent.agent_id, event.seq, event.kind, str(data["id"])[:64],
        )  # fmt: skip
        return
    if row is None:
        row = _new_incident(agent, str(data["id"]), now)
        if event.seq <= agent.state_seq:
            # A newer state payload did not list it as open, so it is not open now.
            row["status"], row["status_seq"] = "resolved", agent.state_seq
    decides = event.seq > row["status_seq"]
    kind = event.kind
    if kind == "incident.opened":
        if decides or row["key"] is None:
            _take_incident_fields(row, data)
        row["opened_at"] = row["opened_at"] or at
        if decides:
            row["status"], row["resolved_at"] = "open", None
    elif kind == "incident.updated":
        if decides:
            _take_incident_fields(row, {k: v for k, v in data.items() if k in ("severity", "title")})
    elif kind == "incident.resolved":
        if decides:
            row["status"] = "resolved"
        if row["status"] == "resolved":
            row["resolved_at"] = at  # the event's time is more exact than a state's guess
    elif kind == "incident.acknowledged":
        row["acknowledged_by"], row["acknowledged_at"] = data.get("by"), at
    elif kind == "note.added":
        _add_note(row, {"by": data.get("by"), "text": data.get("text"), "at": at})
    if decides:
        row["status_seq"] = event.seq
    row["updated_at"] = now
    await tx.put_incident(row)


async def _apply_device_event(tx: Transaction, agent: AgentRow, event: Event, now: str) -> None:
    data, at = event.data, normalize(event.at)
    device_id = str(data["id"])
    row = await tx.get_device(agent.school_id, agent.agent_id, device_id)
    if row is not None and event.seq <= row["seq"]:
        return
    state = "lost" if event.kind == "device.lost" else str(data.get("state") or "present")
    if row is None and event.seq <= agent.devices_seq:
        state = "lost"  # a newer device list did not contain it
    await tx.put_device(
        {
            "school_id": agent.school_id,
            "agent_id": agent.agent_id,
            "device_id": device_id,
            "class": str(data.get("class") or (row or {}).get("class") or "unknown"),
            "state": state[:32],
            "data": dict(data),
            "seq": event.seq,
            "last_seen_at": (row or {}).get("last_seen_at") if event.kind == "device.lost" else at,
            "updated_at": now,
        }
    )


async def apply_events(tx: Transaction, agent: AgentRow, events: Sequence[Event], now: str) -> None:
    """Fold newly stored events (consecutive, in seq order) into the current view."""
    last_snapshot: Event | None = None
    for event in events:
        if event.kind == SNAPSHOT:
            last_snapshot = event  # only the newest snapshot of a batch matters
        elif event.kind in _DEVICE_KINDS:
            await _apply_device_event(tx, agent, event, now)
        else:
            await _apply_incident_event(tx, agent, event, now)
    if last_snapshot is not None and last_snapshot.seq > agent.snapshot_seq:
        await tx.set_snapshot(
            agent.agent_id, _dump(dict(last_snapshot.data)), last_snapshot.seq, normalize(last_snapshot.at)
        )


def state_is_newer(agent: AgentRow, state: StatePayload) -> bool:
    """Newest by last_seq; on a tie, the later made_at."""
    if state.last_seq != agent.state_seq:
        return state.last_seq > agent.state_seq
    return agent.state_made_at is None or from_iso(state.made_at) > from_iso(agent.state_made_at)


async def _state_incidents(tx: Transaction, agent: AgentRow, state: StatePayload, now: str) -> None:
    mark = state.last_seq
    listed = set()
    for incident in state.open_incidents:
        incident_id = str(incident["id"])
        listed.add(incident_id)
        row = await tx.get_incident(agent.school_id, "agent", agent.agent_id, incident_id)
        if row is not None and row["status_seq"] > mark:
            continue  # history already went past this state
        row = row or _new_incident(agent, incident_id, now)
        _take_incident_fields(row, incident)
        row.update(status="open", status_seq=mark, resolved_at=None, updated_at=now)
        for name in ("opened_at", "acknowledged_at"):
            value = incident.get(name)
            if isinstance(value, str):
                row[name] = _normalize_or_none(value)
        if isinstance(incident.get("acknowledged_by"), str):
            row["acknowledged_by"] = incident["acknowledged_by"]
        notes = incident.get("notes")
        if isinstance(notes, list):
            for note in notes:
                if isinstance(note, dict):
                    _add_note(row, note)
        await tx.put_incident(row)
    for row in await tx.open_agent_incidents(agent.agent_id):
        if row["incident_id"] not in listed and row["status_seq"] <= mark:
            row.update(status="resolved", status_seq=mark, resolved_at=normalize(state.made_at), updated_at=now)
            await tx.put_incident(row)


def _normalize_or_none(text: str) -> str | None:
    try:
        return normalize(text)
    except MalformedError:
        return None


async def _state_devices(tx: Transaction, agent: AgentRow, state: StatePayload, now: str) -> None:
    mark = state.last_seq
    listed = set()
    for device in state.devices:
        device_id = str(device["id"])
        listed.add(device_id)
        row = await tx.get_device(agent.school_id, agent.agent_id, device_id)
        if row is not None and row["seq"] > mark:
            continue
        await tx.put_device(
            {
                "school_id": agent.school_id,
                "agent_id": agent.agent_id,
                "device_id": device_id,
                "class": str(device["class"]),
                "state": str(device.get("state") or "present")[:32],
                "data": dict(device),
                "seq": mark,
                "last_seen_at": normalize(state.made_at),
                "updated_at": now,
            }
        )
    for row in await tx.agent_devices(agent.agent_id):
        if row["device_id"] not in listed and row["seq"] <= mark and row["state"] != "lost":
            row.update(state="lost", seq=mark, updated_at=now)
            await tx.put_device(row)
    await tx.set_devices_seq(agent.agent_id, mark)


async def apply_state(tx: Transaction, agent: AgentRow, state: StatePayload, now: str) -> bool:
    """Apply a state payload if it is the agent's newest; False (nothing changed) when stale.

    An empty device list means "no device information" and leaves the devices alone: an
    agent that does not send its inventory must not make every device look lost.
    """
    if not state_is_newer(agent, state):
        return False
    await tx.set_agent_state(
        agent.agent_id,
        state.last_seq,
        normalize(state.made_at),
        _dump(
            {"open_incidents": list(state.open_incidents), "snapshot": state.snapshot, "devices": list(state.devices)}
        ),
    )
    await _state_incidents(tx, agent, state, now)
    if state.devices:
        await _state_devices(tx, agent, state, now)
    if state.snapshot is not None and state.last_seq >= agent.snapshot_seq:
        await tx.set_snapshot(agent.agent_id, _dump(dict(state.snapshot)), state.last_seq, normalize(state.made_at))
    return True


def school_status(summary: SchoolSummary, now: datetime, silent_window: timedelta) -> str:
    """new (no agent), silent (no report within the window), broken, degraded or ok."""
    if summary.agents == 0 or summary.last_contact_at is None:
        return "new"
    if now - from_iso(summary.last_contact_at) > silent_window:
        return "silent"
    if summary.last_report_at is None:
        return "new"  # enrolled within the window, first report still to come
    if summary.open_critical:
        return "broken"
    if summary.open_warning:
        return "degraded"
    return "ok"


def device_summary(devices: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, int]]:
    """Counts of devices by class and state, e.g. {"ap": {"up": 10, "down": 1}}."""
    out: dict[str, dict[str, int]] = {}
    for device in devices:
        by_state = out.setdefault(str(device["class"]), {})
        by_state[str(device["state"])] = by_state.get(str(device["state"]), 0) + 1
    return out

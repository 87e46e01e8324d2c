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

from central.storage.interface import AgentRow, IncidentStep, Sample, SchoolSummary, Transaction
from central.timestamps import from_iso, normalize, stored
from protocol.errors import MalformedError
from protocol.events import (
    DeviceLost,
    DevicePayload,
    HealthSnapshot,
    IncidentAcknowledged,
    IncidentOpened,
    IncidentPayload,
    IncidentResolved,
    IncidentUpdated,
    NoteAdded,
)
from protocol.schema import Event, StatePayload

_MAX_NOTES = 200
# The incident timeline's action for each incident event kind.
_LOG_ACTIONS = {
    "incident.opened": "opened",
    "incident.updated": "updated",
    "incident.resolved": "resolved",
    "incident.acknowledged": "acknowledged",
    "note.added": "note",
}

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
        "code": None,
        "params": None,
    }


def _add_note(row: dict[str, Any], note: Mapping[str, Any]) -> None:
    entry = {"by": note.get("by"), "text": note.get("text"), "at": note.get("at")}
    if entry not in row["notes"] and len(row["notes"]) < _MAX_NOTES:
        row["notes"].append(entry)


def _take_incident_fields(row: dict[str, Any], incident: IncidentOpened) -> None:
    row.update(
        key=incident.key,
        category=incident.category,
        severity=incident.severity,
        title=incident.title,
        subject=incident.subject,
        code=incident.code,
        params=None if incident.params is None else dict(incident.params),
    )


def _fold_incident(row: dict[str, Any], event: Event, payload: IncidentPayload, at: str) -> None:
    """Fold one incident event into its row, in place; a row with a newer status keeps it."""
    decides = event.seq > row["status_seq"]
    if isinstance(payload, IncidentOpened):
        if decides or row["key"] is None:
            _take_incident_fields(row, payload)
        row["opened_at"] = row["opened_at"] or at
        if decides:
            row["status"], row["resolved_at"] = "open", None
    elif isinstance(payload, IncidentUpdated):
        if decides:
            row.update((k, v) for k, v in (("severity", payload.severity), ("title", payload.title)) if v is not None)
            if payload.code is not None:
                row["code"], row["params"] = payload.code, None if payload.params is None else dict(payload.params)
    elif isinstance(payload, IncidentResolved):
        if decides:
            row["status"] = "resolved"
        if row["status"] == "resolved":
            row["resolved_at"] = at  # the event's time is more exact than a state's guess
    elif isinstance(payload, IncidentAcknowledged):
        row["acknowledged_by"], row["acknowledged_at"] = payload.by, at
    else:
        _add_note(row, {"by": payload.by, "text": payload.text, "at": at})
    if decides:
        row["status_seq"] = event.seq


async def _apply_incident_events(
    tx: Transaction, agent: AgentRow, events: Sequence[tuple[Event, IncidentPayload]], now: str
) -> None:
    """Fold a batch's incident events, in seq order, into one write per incident and the timeline."""
    rows = await tx.get_incidents(agent.school_id, "agent", agent.agent_id, {p.id for _, p in events})
    changed: dict[str, dict[str, Any]] = {}
    steps: list[IncidentStep] = []
    for event, payload in events:
        row = rows.get(payload.id)
        if row is None and not isinstance(payload, IncidentOpened):
            # Never opened, neither in the history nor in a state: the event stays in the stored
            # history, but the current view gets no half-record without key, title or opening.
            log.warning(
                "school=%s agent=%s seq=%d %s names unknown incident %s: not applied to the view",
                agent.school_id, agent.agent_id, event.seq, event.kind, payload.id[:64],
            )  # fmt: skip
            continue
        if row is None:
            row = rows[payload.id] = _new_incident(agent, payload.id, now)
            if event.seq <= agent.state_seq:
                # A newer state payload did not list it as open, so it is not open now.
                row["status"], row["status_seq"] = "resolved", agent.state_seq
        at = stored(event.at, event.moment)
        _fold_incident(row, event, payload, at)
        row["updated_at"] = now
        changed[payload.id] = row
        by = payload.by if isinstance(payload, IncidentAcknowledged | NoteAdded) else None
        text = payload.text if isinstance(payload, NoteAdded) else None
        steps.append(IncidentStep.of(row, at, _LOG_ACTIONS[event.kind], by, text))
    if changed:
        await tx.put_incidents(list(changed.values()))
        await tx.log_incidents(steps)


async def _apply_device_events(
    tx: Transaction, agent: AgentRow, events: Sequence[tuple[Event, DevicePayload, str | None]], now: str
) -> None:
    """Fold a batch's device events, in seq order, into one write per device: the newest seq wins."""
    rows = await tx.get_devices(agent.school_id, agent.agent_id, {p.id for _, p, _ in events})
    changed: dict[str, dict[str, Any]] = {}
    recount = False  # whether the school's present devices by class may have changed
    for event, payload, data_text in events:
        row = rows.get(payload.id)
        if row is not None and event.seq <= row["seq"]:
            continue
        lost = isinstance(payload, DeviceLost)
        state = "lost" if lost else payload.state or "present"
        if row is None and event.seq <= agent.devices_seq:
            state = "lost"  # a newer device list did not contain it
        device_class, state = str(payload.device_class or (row or {}).get("class") or "unknown"), state[:32]
        if row is None or row["class"] != device_class or (row["state"] == "lost") != (state == "lost"):
            recount = True
        rows[payload.id] = changed[payload.id] = {
            "school_id": agent.school_id,
            "agent_id": agent.agent_id,
            "device_id": payload.id,
            "class": device_class,
            "state": state,
            # As received, unknown fields included; its JSON text when the caller has it already.
            "data": dict(event.data) if data_text is None else data_text,
            "seq": event.seq,
            "last_seen_at": (row or {}).get("last_seen_at") if lost else stored(event.at, event.moment),
            "updated_at": now,
        }
    if changed:
        await tx.put_devices(list(changed.values()))
    if recount:
        await tx.devices_changed(agent.school_id)


async def apply_events(
    tx: Transaction,
    agent: AgentRow,
    events: Sequence[Event],
    now: str,
    data_texts: Sequence[str] | None = None,
) -> None:
    """Fold newly stored events (consecutive, in seq order) into the current view, a batch at a time.

    Each device and incident is read once and written once per batch, in its state after the
    batch's last event for it: the same rows as applying the events one by one. ``data_texts``,
    when given, holds each event's ``data`` as JSON text (``Event.canonical_parts``), one per
    event: device rows store it as it is instead of encoding the data again.
    """
    last_snapshot: Event | None = None
    power: list[Sample] = []
    devices: list[tuple[Event, DevicePayload, str | None]] = []
    incidents: list[tuple[Event, IncidentPayload]] = []
    for index, event in enumerate(events):
        payload = event.payload
        if isinstance(payload, HealthSnapshot):
            last_snapshot = event  # only the newest snapshot of a batch is the current one
            power.extend(cabinet_samples(payload.sections, stored(event.at, event.moment)))
        elif isinstance(payload, DevicePayload):
            devices.append((event, payload, None if data_texts is None else data_texts[index]))
        else:
            incidents.append((event, payload))
    if devices:
        await _apply_device_events(tx, agent, devices, now)
    if incidents:
        await _apply_incident_events(tx, agent, incidents, now)
    if last_snapshot is not None:
        at = stored(last_snapshot.at, last_snapshot.moment)
        if last_snapshot.seq > agent.snapshot_seq:
            await tx.set_snapshot(agent.agent_id, _dump(dict(last_snapshot.data)), last_snapshot.seq, at)
        power.extend(await _count_samples(tx, agent.school_id, at))
    if power:
        await tx.add_samples(agent.school_id, agent.agent_id, power)


def cabinet_samples(sections: Mapping[str, Any], at: str) -> list[Sample]:
    """The cabinets' power in one snapshot as samples ``cabinet:<id>`` (W; flag 1 inside the window).

    The snapshot's ``cabinets`` section is ``{"cabinets": {id: {"power_w", "in_window", ...}}}``;
    anything of another shape is skipped (a snapshot is free form within its caps).
    """
    section = sections.get("cabinets")
    cabinets = section.get("cabinets") if isinstance(section, Mapping) else None
    if not isinstance(cabinets, Mapping):
        return []
    out = []
    for cabinet_id, values in cabinets.items():
        if not isinstance(values, Mapping):
            continue
        power = values.get("power_w")
        value = float(power) if isinstance(power, int | float) and not isinstance(power, bool) else None
        flag = values.get("in_window")
        out.append(Sample(f"cabinet:{str(cabinet_id)[:128]}", at, value, int(flag) if isinstance(flag, bool) else None))
    return out


async def _count_samples(tx: Transaction, school_id: str, at: str) -> list[Sample]:
    """Devices present by class, one point per hour (the hour's last snapshot wins).

    The counts are made again only when the school's devices may have changed since they were
    last made (its device generation moved on): counting every device of a school on every
    batch with a snapshot was a twelfth of ingest's time.
    """
    hour = at[:13] + ":00:00.000000Z"
    # The generation first: counts made after it may only be newer, and a newer generation then
    # only makes the next snapshot count again.
    generation, counts = await tx.kept_device_counts(school_id)
    if counts is None:
        counts = await tx.present_device_counts(school_id)
        await tx.keep_device_counts(school_id, generation, counts)
    return [Sample(f"devices:{cls[:32]}", hour, float(n), None) for cls, n in counts.items()]


def state_is_newer(agent: AgentRow, state: StatePayload) -> bool:
    """Newest by last_seq; on a tie, the later made_at."""
    if state.last_seq != agent.state_seq:
        return state.last_seq > agent.state_seq
    return agent.state_made_at is None or from_iso(state.made_at) > from_iso(agent.state_made_at)


async def _state_incidents(tx: Transaction, agent: AgentRow, state: StatePayload, now: str) -> None:
    mark = state.last_seq
    listed = {incident.id for incident in state.incidents}
    rows = await tx.get_incidents(agent.school_id, "agent", agent.agent_id, listed)
    changed: dict[str, dict[str, Any]] = {}
    for incident in state.incidents:
        row = rows.get(incident.id)
        if row is not None and row["status_seq"] > mark:
            continue  # history already went past this state
        row = rows[incident.id] = row or _new_incident(agent, incident.id, now)
        _take_incident_fields(row, incident)
        row.update(status="open", status_seq=mark, resolved_at=None, updated_at=now)
        if incident.opened_at is not None:
            row["opened_at"] = _normalize_or_none(incident.opened_at)
        # Beyond the incident.opened shape: a state may carry acknowledgement and notes.
        acknowledged_at, acknowledged_by = incident.extra.get("acknowledged_at"), incident.extra.get("acknowledged_by")
        if isinstance(acknowledged_at, str):
            row["acknowledged_at"] = _normalize_or_none(acknowledged_at)
        if isinstance(acknowledged_by, str):
            row["acknowledged_by"] = acknowledged_by
        notes = incident.extra.get("notes")
        if isinstance(notes, list):
            for note in notes:
                if isinstance(note, dict):
                    _add_note(row, note)
        changed[incident.id] = row
    for row in await tx.open_agent_incidents(agent.agent_id):
        if row["incident_id"] not in listed and row["status_seq"] <= mark:
            row.update(status="resolved", status_seq=mark, resolved_at=normalize(state.made_at), updated_at=now)
            changed[row["incident_id"]] = row
    if changed:
        await tx.put_incidents(list(changed.values()))


def _normalize_or_none(text: str) -> str | None:
    try:
        return normalize(text)
    except MalformedError:
        return None


async def _state_devices(tx: Transaction, agent: AgentRow, state: StatePayload, now: str) -> None:
    mark, seen_at = state.last_seq, normalize(state.made_at)
    listed = {device.id for device in state.device_payloads}
    rows = await tx.get_devices(agent.school_id, agent.agent_id, listed)
    changed: dict[str, dict[str, Any]] = {}
    for device, raw in zip(state.device_payloads, state.devices, strict=True):
        row = rows.get(device.id)
        if row is not None and row["seq"] > mark:
            continue
        changed[device.id] = {
            "school_id": agent.school_id,
            "agent_id": agent.agent_id,
            "device_id": device.id,
            "class": device.device_class,
            "state": (device.state or "present")[:32],
            "data": dict(raw),
            "seq": mark,
            "last_seen_at": seen_at,
            "updated_at": now,
        }
    for row in await tx.agent_devices(agent.agent_id):
        if row["device_id"] not in listed and row["seq"] <= mark and row["state"] != "lost":
            row.update(state="lost", seq=mark, updated_at=now)
            changed[row["device_id"]] = row
    if changed:
        await tx.put_devices(list(changed.values()))
        await tx.devices_changed(agent.school_id)
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
            {
                "open_incidents": list(state.open_incidents),
                "snapshot": state.snapshot,
                "devices": list(state.devices),
                "dropped_events": state.dropped_events,
            }
        ),
    )
    if state.config is not None:
        await tx.set_agent_config_report(agent.agent_id, state.config.version, state.config.overrides)
    if state.dropped_events:
        log.warning(
            "school=%s agent=%s dropped %d event(s) its outbox could not hold (full disk)",
            agent.school_id,
            agent.agent_id,
            state.dropped_events,
        )
    await _state_incidents(tx, agent, state, now)
    if state.devices:
        await _state_devices(tx, agent, state, now)
    if state.snapshot is not None and state.last_seq >= agent.snapshot_seq:
        await tx.set_snapshot(agent.agent_id, _dump(dict(state.snapshot)), state.last_seq, normalize(state.made_at))
    return True


def school_status(summary: SchoolSummary, now: datetime, silent_window: timedelta) -> str:
    """new (never had an agent), silent (no report within the window), broken, degraded or ok.

    A school whose every agent was revoked is ``silent``, not ``new``: nothing it sends is
    accepted any more, and it has a history (the API says which agent was revoked, when and by whom).
    """
    if summary.agents == 0 and summary.revoked_agents:
        return "silent"
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

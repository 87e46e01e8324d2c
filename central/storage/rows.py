"""Rows as both backends read and write them: the stored JSON columns and the dataclass rows.

A row here is any mapping from column name to value (``sqlite3.Row`` and psycopg's
``dict_row`` both are). JSON columns (incident ``notes`` and ``params``, device ``data``)
are stored as compact UTF-8 JSON text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from central.storage.interface import (
    DEVICE_FIELDS,
    INCIDENT_FIELDS,
    AgentRow,
    AlertDelivery,
    AlertThread,
    ConfigLayer,
    IncidentStep,
)

THREAD_FIELDS = tuple(AlertThread.__dataclass_fields__)
DELIVERY_FIELDS = tuple(AlertDelivery.__dataclass_fields__)
AGENT_FIELDS = tuple(AgentRow.__dataclass_fields__)
LAYER_FIELDS = tuple(ConfigLayer.__dataclass_fields__)
DEVICE_MARK_FIELDS = tuple(f for f in DEVICE_FIELDS if f != "data")  # what folding a batch reads

INCIDENT_KEY = ("school_id", "origin", "agent_id", "incident_id")
DEVICE_KEY = ("school_id", "agent_id", "device_id")
_DATA_AT = DEVICE_FIELDS.index("data")


def upsert(table: str, fields: Sequence[str], key: Sequence[str], mark: str) -> str:
    """INSERT … ON CONFLICT (key) DO UPDATE of every other field, with ``mark`` as the placeholder.

    Both backends speak this form (SQLite since 3.24). Unlike SQLite's INSERT OR REPLACE, which
    deletes the row and inserts it again with every index entry, it updates the row in place and
    touches only the indexes of changed columns.
    """
    cols = ", ".join(fields)
    marks = ", ".join([mark] * len(fields))
    updates = ", ".join(f"{name}=excluded.{name}" for name in fields if name not in key)
    return f"INSERT INTO {table} ({cols}) VALUES ({marks}) ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}"  # noqa: S608 - literal names


# Built once: json.dumps() with options builds a new encoder on every call (a row per device).
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def dump(value: Any) -> str:
    """Compact JSON text as stored; ValueError for NaN or infinity."""
    return _JSON.encode(value)


def thread_of(row: Mapping[str, Any] | None) -> AlertThread | None:
    """An alert thread from its row, or None."""
    if row is None:
        return None
    values = {key: row[key] for key in THREAD_FIELDS}
    values["acked"] = bool(values["acked"])
    return AlertThread(**values)


def delivery_of(row: Mapping[str, Any] | None) -> AlertDelivery | None:
    """An outbox message from its row, or None."""
    return None if row is None else AlertDelivery(*(row[key] for key in DELIVERY_FIELDS))


def agent_of(row: Mapping[str, Any] | None) -> AgentRow | None:
    """An agent from its row, or None."""
    if row is None:
        return None
    values = {key: row[key] for key in AGENT_FIELDS}
    values["public_key"] = bytes(values["public_key"])
    values["config_overrides"] = tuple(json.loads(values["config_overrides"] or "[]"))
    return AgentRow(**values)


def layer_of(row: Mapping[str, Any]) -> ConfigLayer:
    """A configuration layer version from its row."""
    return ConfigLayer(*(row[key] for key in LAYER_FIELDS))


def step_values(step: IncidentStep) -> tuple[Any, ...]:
    """An incident timeline step's ``incident_log`` values: school_id, origin, agent_id, incident_id, at,
    action, by, text, source (``central`` for staff steps, else the origin), severity, title."""
    source = "central" if step.action.startswith("staff-") else step.origin
    return (
        step.school_id, step.origin, step.agent_id, step.incident_id, step.at, step.action, step.by, step.text,
        source, step.severity, step.title,
    )  # fmt: skip


def incident_of(row: Mapping[str, Any]) -> dict[str, Any]:
    """An incident dict (keys ``INCIDENT_FIELDS``, JSON columns decoded) from its row."""
    out = {key: row[key] for key in INCIDENT_FIELDS}
    out["notes"] = json.loads(row["notes"])
    out["params"] = json.loads(row["params"]) if row["params"] else None
    return out


def incident_values(row: Mapping[str, Any]) -> list[Any]:
    """An incident dict's column values in ``INCIDENT_FIELDS`` order, JSON columns encoded."""
    values: list[Any] = []
    for key in INCIDENT_FIELDS:
        if key == "notes":
            values.append(dump(row["notes"]))
        elif key in ("code", "params"):  # rows built before codes existed may lack them
            value = row.get(key)
            values.append(dump(value) if key == "params" and value is not None else value)
        else:
            values.append(row[key])
    return values


def kept_counts(row: Mapping[str, Any] | None) -> tuple[int, dict[str, int] | None]:
    """``Transaction.kept_device_counts`` from a school's ``devices_gen, counts_gen, counts_json`` row."""
    if row is None:
        return -1, None  # no such school: nothing is kept, every snapshot counts
    generation = int(row["devices_gen"])
    if row["counts_gen"] != generation or row["counts_json"] is None:
        return generation, None
    return generation, {str(cls): int(n) for cls, n in json.loads(row["counts_json"]).items()}


def device_of(row: Mapping[str, Any]) -> dict[str, Any]:
    """A device dict (keys ``DEVICE_FIELDS``, ``data`` decoded) from its row."""
    out = {key: row[key] for key in DEVICE_FIELDS}
    out["data"] = json.loads(row["data"])
    return out


def device_values(row: Mapping[str, Any]) -> list[Any]:
    """A device dict's column values in ``DEVICE_FIELDS`` order, ``data`` encoded (a str is its JSON text already)."""
    values = [row[key] for key in DEVICE_FIELDS]
    data = values[_DATA_AT]
    if type(data) is not str:
        values[_DATA_AT] = dump(data)
    return values


def central_incident(
    school_id: str,
    incident_id: str,
    category: str,
    severity: str,
    title: str,
    subject: str | None,
    at: str,
    code: str | None,
    params: dict[str, Any] | None,
) -> dict[str, Any]:
    """A new open school-wide incident raised by central itself (``origin`` central, no agent)."""
    return {
        "school_id": school_id,
        "origin": "central",
        "agent_id": "",
        "incident_id": incident_id,
        "key": incident_id,
        "category": category,
        "severity": severity,
        "title": title,
        "subject": subject,
        "status": "open",
        "status_seq": 0,
        "opened_at": at,
        "resolved_at": None,
        "acknowledged_by": None,
        "acknowledged_at": None,
        "notes": [],
        "updated_at": at,
        "code": code,
        "params": params,
    }


def staff_step(row: dict[str, Any], at: str, action: str, by: str, text: str | None) -> None:
    """Apply a staff acknowledgement (``staff-ack``) or note (``staff-note``) to an incident row in place."""
    if action == "staff-ack":
        row["acknowledged_by"], row["acknowledged_at"] = by, at
    else:
        row["notes"].append({"by": by, "text": text, "at": at, "source": "central"})
    row["updated_at"] = at

"""The incident engine: signals in, incidents out, with hysteresis.

A key opens an incident after ``open_after`` bad signals in a row and resolves it after
``resolve_after`` good ones; a bad signal while an open incident is recovering counts as
a flap and keeps it open, so a flapping AP gives one incident with a flap count, not fifty.
Opening, updating (severity or title changed), resolving and acknowledging each write the
incident row and exactly one outbox event in the same transaction. A round that only refreshes
an open incident (last_seen, details) updates memory, which the state payload reads; the row
follows every ``REFRESH_STORED_AFTER`` (5 min), and at once with a flap, update or resolution.
"""

from __future__ import annotations

import json
import logging
import secrets
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from agent.monitors.interface import Signal
from agent.privacy import Privacy
from agent.store import Store
from agent.store.outbox import Outbox
from base.clock import Clock
from protocol.events import (
    Category,
    EventKind,
    IncidentAcknowledged,
    IncidentOpened,
    IncidentResolved,
    IncidentUpdated,
    NoteAdded,
    Severity,
)
from protocol.messages import LANGUAGES, render_title
from protocol.schema import format_time, parse_time

log = logging.getLogger(__name__)

# An open incident that stays bad only refreshes last_seen and details each round; its row is
# rewritten (a transaction with an fsync) when that refresh is this old, not every round.
REFRESH_STORED_AFTER = timedelta(minutes=5)

_COLUMNS = (
    "id, key, category, severity, title, subject, opened_at, last_seen, resolved_at, flap_count,"
    " acknowledged_at, acknowledged_by, details, code, params"
)


class UnknownIncidentError(LookupError):
    """No incident with that id."""


@dataclass(frozen=True, slots=True)
class Incident:
    """One incident as the agent keeps it locally (real subjects included)."""

    id: str
    key: str
    category: Category
    severity: Severity
    title: str
    subject: str | None
    opened_at: datetime
    last_seen: datetime
    resolved_at: datetime | None = None
    flap_count: int = 0
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    code: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_open(self) -> bool:
        """Not resolved yet."""
        return self.resolved_at is None

    def to_json(self) -> dict[str, Any]:
        """The local view (CLI, technician API)."""
        return {
            "id": self.id,
            "key": self.key,
            "category": self.category,
            "severity": self.severity,
            "title": self.title,
            "subject": self.subject,
            "opened_at": format_time(self.opened_at),
            "last_seen": format_time(self.last_seen),
            "resolved_at": format_time(self.resolved_at) if self.resolved_at else None,
            "flap_count": self.flap_count,
            "acknowledged_at": format_time(self.acknowledged_at) if self.acknowledged_at else None,
            "acknowledged_by": self.acknowledged_by,
            "details": dict(self.details),
            "code": self.code,
            "params": dict(self.params),
            # The title in each reader language, from the shared catalogue (falls back to title).
            "titles": {lang: render_title(self.code, self.params, lang, self.title) for lang in LANGUAGES},
        }

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> Incident:
        """From a row selected with _COLUMNS."""
        (iid, key, category, severity, title, subject, opened, last, resolved, flaps, acked, acked_by, details) = row[:13]  # noqa: E501
        code, params = row[13:15]

        def t(text: str | None) -> datetime | None:
            return parse_time(text) if text else None

        return cls(
            id=iid,
            key=key,
            category=category,
            severity=severity,
            title=title,
            subject=subject,
            opened_at=parse_time(opened),
            last_seen=parse_time(last),
            resolved_at=t(resolved),
            flap_count=int(flaps),
            acknowledged_at=t(acked),
            acknowledged_by=acked_by,
            details=json.loads(details) if details else {},
            code=code,
            params=json.loads(params) if params else {},
        )


@dataclass(slots=True)
class _Track:
    bad: int = 0
    good: int = 0


def new_incident_id() -> str:
    """A stable random id (it names the incident in every later event)."""
    return f"inc-{secrets.token_hex(10)}"


def notes_for(store: Store, incident_ids: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
    """The notes of these incidents, oldest first, keyed by incident id."""
    ids = list(incident_ids)
    notes: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
    for start in range(0, len(ids), 500):  # SQLite caps the number of bound parameters
        chunk = ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        rows = store.query(
            f"SELECT incident_id, at, by, text FROM incident_notes WHERE incident_id IN ({marks}) ORDER BY id",  # noqa: S608
            tuple(chunk),
        )
        for incident_id, at, by, text in rows:
            notes[incident_id].append({"at": at, "by": by, "text": text})
    return notes


def list_incidents(store: Store, *, open_only: bool = False, limit: int = 500) -> list[Incident]:
    """Incidents from the store, newest first (for the CLI and the API)."""
    where = "WHERE resolved_at IS NULL" if open_only else ""
    rows = store.query(f"SELECT {_COLUMNS} FROM incidents {where} ORDER BY opened_at DESC LIMIT ?", (limit,))  # noqa: S608
    return [Incident.from_row(tuple(r)) for r in rows]


class IncidentEngine:
    """Turns signals into incidents and incident events."""

    def __init__(
        self,
        store: Store,
        outbox: Outbox,
        privacy: Privacy,
        clock: Clock,
        *,
        open_after: int = 3,
        resolve_after: int = 3,
        school: str = "-",
    ) -> None:
        self.store = store
        self.outbox = outbox
        self.privacy = privacy
        self.clock = clock
        self.open_after = open_after
        self.resolve_after = resolve_after
        self.school = school
        self._tracks: dict[str, _Track] = {}
        self._open: dict[str, Incident] = {i.key: i for i in list_incidents(store, open_only=True, limit=100_000)}
        # last_seen as the row holds it, per open incident id (the row lags memory by a refresh)
        self._stored_seen: dict[str, datetime] = {i.id: i.last_seen for i in self._open.values()}

    def open_incidents(self) -> list[Incident]:
        """The incidents open right now."""
        return sorted(self._open.values(), key=lambda i: i.opened_at)

    def opened(self, incident: Incident) -> IncidentOpened:
        """An incident as it leaves the school: key, subject and details privacy-filtered."""
        return IncidentOpened(
            id=incident.id,
            key=self.privacy.key(incident.category, incident.key, incident.subject),
            category=incident.category,
            severity=incident.severity,
            title=self.privacy.title(incident.category, incident.title, incident.subject, incident.details),
            subject=self.privacy.subject(incident.category, incident.subject),
            opened_at=format_time(incident.opened_at),
            last_seen=format_time(incident.last_seen),
            flap_count=incident.flap_count,
            acknowledged=incident.acknowledged_at is not None,
            details=self.privacy.details(incident.details),
            code=incident.code,
            params=self.privacy.params(incident.category, incident.params, incident.subject, incident.details)
            if incident.code
            else None,
        )

    def wire(self, incident: Incident) -> dict[str, Any]:
        """An incident as incident.opened data (and the state payload) carry it."""
        return self.opened(incident).to_data()

    def observe(self, signals: Iterable[Signal]) -> list[tuple[EventKind, Incident]]:
        """Apply signals in one transaction; returns the (event kind, incident) pairs emitted."""
        signals = list(signals)
        if not signals:
            return []
        if not any(signal.bad or signal.key in self._open for signal in signals):
            # The usual round: all good, nothing open to resolve. Only the counters move, so no
            # transaction: taking the write lock every round for nothing is most of a quiet round.
            for signal in signals:
                track = self._tracks.setdefault(signal.key, _Track())
                track.good += 1
                track.bad = 0
            return []
        emitted: list[tuple[EventKind, Incident]] = []
        changed: dict[str, Incident] = {}
        with self.store.transaction() as conn:
            for signal in signals:
                self._apply(conn, signal, emitted, changed)
        # Memory follows the database only once the transaction is committed.
        for key, incident in changed.items():
            if incident.is_open:
                self._open[key] = incident
            else:
                self._open.pop(key, None)
        for kind, incident in emitted:
            log.info(
                "school=%s incident=%s %s key=%s severity=%s subject=%s flaps=%d",
                self.school,
                incident.id,
                kind.action,
                incident.key,
                incident.severity,
                incident.subject,
                incident.flap_count,
            )
        return emitted

    def _apply(
        self,
        conn: sqlite3.Connection,
        signal: Signal,
        emitted: list[tuple[EventKind, Incident]],
        changed: dict[str, Incident],
    ) -> None:
        track = self._tracks.setdefault(signal.key, _Track())
        current = changed.get(signal.key, self._open.get(signal.key))
        if current is not None and not current.is_open:
            current = None
        open_after = signal.open_after or self.open_after
        resolve_after = signal.resolve_after or self.resolve_after
        if signal.bad:
            recovering = track.good > 0
            track.bad += 1
            track.good = 0
            if current is None:
                if track.bad >= open_after:
                    incident = self._open_incident(conn, signal)
                    emitted.append((EventKind.INCIDENT_OPENED, incident))
                    changed[signal.key] = incident
                return
            updated = replace(
                current,
                last_seen=signal.at,
                flap_count=current.flap_count + (1 if recovering else 0),
                details=dict(signal.details),
            )
            if signal.severity != current.severity or signal.title != current.title:
                updated = replace(
                    updated, severity=signal.severity, title=signal.title, code=signal.code, params=dict(signal.params)
                )
                self._write(conn, updated)
                update = IncidentUpdated(
                    id=updated.id,
                    severity=updated.severity,
                    title=self.privacy.title(updated.category, updated.title, updated.subject, updated.details),
                    last_seen=format_time(updated.last_seen),
                    flap_count=updated.flap_count,
                    code=updated.code,
                    params=self.privacy.params(updated.category, updated.params, updated.subject, updated.details)
                    if updated.code
                    else None,
                )
                self.outbox.append_event(conn, update, signal.at)
                emitted.append((update.kind, updated))
            elif (
                updated.flap_count != current.flap_count
                or updated.last_seen - self._stored_seen.get(updated.id, current.last_seen) >= REFRESH_STORED_AFTER
            ):
                self._write(conn, updated)
            changed[signal.key] = updated
            return
        track.good += 1
        track.bad = 0
        if current is not None and track.good >= resolve_after:
            resolved = replace(current, resolved_at=signal.at)
            self._write(conn, resolved)
            resolution = IncidentResolved(
                id=resolved.id,
                resolved_at=format_time(signal.at),
                opened_at=format_time(resolved.opened_at),
                flap_count=resolved.flap_count,
            )
            self.outbox.append_event(conn, resolution, signal.at)
            emitted.append((resolution.kind, resolved))
            changed[signal.key] = resolved
            track.good = 0

    def _open_incident(self, conn: sqlite3.Connection, signal: Signal) -> Incident:
        incident = Incident(
            id=new_incident_id(),
            key=signal.key,
            category=signal.category,
            severity=signal.severity,
            title=signal.title,
            subject=signal.subject,
            opened_at=signal.at,
            last_seen=signal.at,
            details=dict(signal.details),
            code=signal.code,
            params=dict(signal.params),
        )
        self._write(conn, incident)
        self.outbox.append_event(conn, self.opened(incident), signal.at)
        return incident

    def _write(self, conn: sqlite3.Connection, incident: Incident) -> None:
        def t(moment: datetime | None) -> str | None:
            return format_time(moment) if moment else None

        if incident.is_open:
            self._stored_seen[incident.id] = incident.last_seen
        else:
            self._stored_seen.pop(incident.id, None)

        conn.execute(
            f"INSERT OR REPLACE INTO incidents ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
            (
                incident.id,
                incident.key,
                incident.category,
                incident.severity,
                incident.title,
                incident.subject,
                format_time(incident.opened_at),
                format_time(incident.last_seen),
                t(incident.resolved_at),
                incident.flap_count,
                t(incident.acknowledged_at),
                incident.acknowledged_by,
                json.dumps(dict(incident.details), default=str),
                incident.code,
                json.dumps(dict(incident.params), default=str) if incident.code else None,
            ),
        )

    def acknowledge(
        self, incident_id: str, by: str | None, at: datetime | None = None, *, note: str | None = None
    ) -> Incident:
        """A technician acknowledges an incident: one incident.acknowledged event (and a note.added).

        With ``note`` the acknowledgement and the note are one transaction: both are stored and
        queued, or neither (StoreFullError on a full disk, UnknownIncidentError for no such id).
        """
        moment = at or self.clock.now()
        row = self.store.conn.execute(f"SELECT {_COLUMNS} FROM incidents WHERE id = ?", (incident_id,)).fetchone()  # noqa: S608
        if row is None:
            raise UnknownIncidentError(incident_id)
        stored = Incident.from_row(tuple(row))
        # An open incident's row may lag its last refresh (REFRESH_STORED_AFTER): memory is newer.
        fresh = self._open.get(stored.key)
        current = fresh if fresh is not None and fresh.id == stored.id else stored
        acked = replace(current, acknowledged_at=moment, acknowledged_by=by)
        with self.store.transaction() as conn:
            self._write(conn, acked)
            self.outbox.append_event(conn, IncidentAcknowledged(id=acked.id, by=by, at=format_time(moment)), moment)
            if note:
                self._note(conn, incident_id, by, note, moment)
        if acked.is_open:
            self._open[acked.key] = acked
        log.info("school=%s incident=%s acknowledged by=%s note=%s", self.school, acked.id, by, bool(note))
        return acked

    def _note(self, conn: sqlite3.Connection, incident_id: str, by: str | None, text: str, moment: datetime) -> None:
        conn.execute(
            "INSERT INTO incident_notes (incident_id, at, by, text) VALUES (?, ?, ?, ?)",
            (incident_id, format_time(moment), by, text),
        )
        self.outbox.append_event(conn, NoteAdded(id=incident_id, by=by, text=text, at=format_time(moment)), moment)

    def add_note(self, incident_id: str, by: str | None, text: str, at: datetime | None = None) -> Incident:
        """A technician's note on an incident: one note.added event."""
        moment = at or self.clock.now()
        row = self.store.conn.execute(f"SELECT {_COLUMNS} FROM incidents WHERE id = ?", (incident_id,)).fetchone()  # noqa: S608
        if row is None:
            raise UnknownIncidentError(incident_id)
        with self.store.transaction() as conn:
            self._note(conn, incident_id, by, text, moment)
        log.info("school=%s incident=%s note added by=%s", self.school, incident_id, by)
        return Incident.from_row(tuple(row))

"""The durable, numbered queue of events waiting for central.

Every event gets the next sequence number in the same transaction that stores it, so a
crash can neither hand a number out twice nor skip one. Acknowledged events are pruned.

Thinning (over the size cap) never deletes a row: a thinned event keeps its seq, kind
and time, and its data is replaced by a small tombstone (``{"thinned": true}``, or the
device's id and class for device.seen), so the numbering stays contiguous and central
never sees a gap. Only events that have never been put on the wire are thinned
(``seq > max(acked_seq, sent_seq)``): central may already hold a sent event, and a
different body under the same seq would be a conflict there. Incident events and notes
are never touched.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from agent.store import Store
from base.clock import Clock
from protocol.encoding import dumps
from protocol.events import EventKind, EventPayload
from protocol.schema import format_time, make_event

log = logging.getLogger(__name__)

HOUR = 3600.0
DAY = 86400.0
_THIN_CHUNK = 5000


@dataclass(frozen=True, slots=True)
class OutboxStats:
    """Counters for the status command and the health snapshot."""

    last_seq: int
    acked_seq: int
    sent_seq: int
    depth: int
    unsent_bytes: int
    thinned: int
    oldest_unsent_at: str | None
    oldest_unsent_age_s: float | None

    def to_json(self) -> dict[str, Any]:
        """The outbox section of the health snapshot (ages in seconds, sizes in bytes)."""
        return {
            "last_seq": self.last_seq,
            "acked_seq": self.acked_seq,
            "depth": self.depth,
            "oldest_unsent_age_s": self.oldest_unsent_age_s,
            "unsent_bytes": self.unsent_bytes,
            "thinned": self.thinned,
        }


@dataclass(frozen=True, slots=True)
class QueuedEvent:
    """One stored event, its data kept as the JSON text it was stored as."""

    seq: int
    at: str
    kind: str
    data_json: str
    size: int

    def to_wire(self) -> dict[str, Any]:
        """The event as a report carries it."""
        return {"seq": self.seq, "at": self.at, "kind": self.kind, "data": json.loads(self.data_json)}


@dataclass(frozen=True, slots=True)
class ThinResult:
    """What one thinning pass did."""

    before_bytes: int
    after_bytes: int
    thinned: int
    still_over: bool


class Outbox:
    """The outbox table and its counters; every write is one transaction on the store."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    # ------------------------------------------------------------------ writing

    def append(self, conn: sqlite3.Connection, kind: str, data: Mapping[str, Any], at: datetime | None = None) -> int:
        """Store one event inside the caller's transaction and return its seq."""
        moment = at or self.clock.now()
        row = conn.execute("SELECT last_seq FROM outbox_state WHERE id = 1").fetchone()
        seq = int(row[0]) + 1
        event = make_event(seq, format_time(moment), kind, data)  # refuse what central would refuse
        data_json = dumps(event["data"]).decode("utf-8")
        size = len(data_json) + len(event["at"]) + len(kind) + 40
        conn.execute(
            "INSERT INTO outbox (seq, at, kind, data, size, created, thinned) VALUES (?, ?, ?, ?, ?, ?, 0)",
            (seq, event["at"], kind, data_json, size, moment.timestamp()),
        )
        conn.execute("UPDATE outbox_state SET last_seq = ? WHERE id = 1", (seq,))
        return seq

    def append_event(self, conn: sqlite3.Connection, payload: EventPayload, at: datetime | None = None) -> int:
        """Store one typed event inside the caller's transaction and return its seq.

        The payload is written with ``to_data()`` and checked as ``append`` checks raw data
        (MalformedError or TooLargeError when central would refuse it).
        """
        return self.append(conn, payload.kind.value, payload.to_data(), at)

    def add(self, kind: str, data: Mapping[str, Any], at: datetime | None = None) -> int:
        """Store one event in a transaction of its own."""
        with self.store.transaction() as conn:
            return self.append(conn, kind, data, at)

    def add_event(self, payload: EventPayload, at: datetime | None = None) -> int:
        """Store one typed event in a transaction of its own; raises as ``append_event``."""
        with self.store.transaction() as conn:
            return self.append_event(conn, payload, at)

    def add_many(self, items: Iterable[tuple[str, Mapping[str, Any]]], at: datetime | None = None) -> list[int]:
        """Store several events in one transaction (one fsync for a burst)."""
        with self.store.transaction() as conn:
            return [self.append(conn, kind, data, at) for kind, data in items]

    def ack(self, through: int) -> int:
        """Central holds everything up to ``through``: record it and prune; returns the new acked_seq."""
        with self.store.transaction() as conn:
            last_seq, acked_seq, _sent = self._counters(conn)
            new_acked = max(acked_seq, min(through, last_seq))
            if new_acked > acked_seq:
                conn.execute("DELETE FROM outbox WHERE seq <= ?", (new_acked,))
                conn.execute(
                    "UPDATE outbox_state SET acked_seq = ?, sent_seq = max(sent_seq, ?) WHERE id = 1",
                    (new_acked, new_acked),
                )
        return new_acked

    def mark_sent(self, through: int) -> None:
        """Record that events up to ``through`` went on the wire (before sending them)."""
        with self.store.transaction() as conn:
            conn.execute("UPDATE outbox_state SET sent_seq = max(sent_seq, ?) WHERE id = 1", (through,))

    def renumber_for_new_identity(self) -> int:
        """After a forced re-enrollment: the unsent events become 1..n of the new agent's history."""
        with self.store.transaction() as conn:
            rows = conn.execute("SELECT seq FROM outbox ORDER BY seq").fetchall()
            # Two steps through negative numbers, so no new seq collides with an old one.
            conn.execute("UPDATE outbox SET seq = -seq")
            for new, (old,) in enumerate(rows, start=1):
                conn.execute("UPDATE outbox SET seq = ? WHERE seq = ?", (new, -old))
            conn.execute("UPDATE outbox_state SET last_seq = ?, acked_seq = 0, sent_seq = 0 WHERE id = 1", (len(rows),))
        return len(rows)

    # ------------------------------------------------------------------ reading

    def _counters(self, conn: sqlite3.Connection | None = None) -> tuple[int, int, int]:
        row = (
            (conn or self.store.conn)
            .execute("SELECT last_seq, acked_seq, sent_seq FROM outbox_state WHERE id = 1")
            .fetchone()
        )
        return int(row[0]), int(row[1]), int(row[2])

    @property
    def last_seq(self) -> int:
        """The last sequence number handed out."""
        return self._counters()[0]

    @property
    def acked_seq(self) -> int:
        """The highest sequence number central acknowledged."""
        return self._counters()[1]

    def batch(self, from_seq: int, max_events: int, max_bytes: int) -> list[QueuedEvent]:
        """Consecutive events from ``from_seq`` on, within the count and byte limits (at least one)."""
        rows = self.store.conn.execute(
            "SELECT seq, at, kind, data, size FROM outbox WHERE seq >= ? ORDER BY seq LIMIT ?",
            (from_seq, max_events),
        ).fetchall()
        out: list[QueuedEvent] = []
        total = 0
        for seq, at, kind, data, size in rows:
            if out and (total + size > max_bytes or seq != out[-1].seq + 1):
                break
            out.append(QueuedEvent(seq, at, kind, data, size))
            total += size
        return out

    def unsent(self, batch_events: int, batch_bytes: int) -> Iterator[list[QueuedEvent]]:
        """Every unacknowledged event, in batches, oldest first."""
        next_seq = self.acked_seq + 1
        while True:
            events = self.batch(next_seq, batch_events, batch_bytes)
            if not events:
                return
            yield events
            next_seq = events[-1].seq + 1

    def stats(self) -> OutboxStats:
        """Depth, bytes and the age of the oldest unsent event."""
        last_seq, acked_seq, sent_seq = self._counters()
        row = self.store.conn.execute(
            "SELECT coalesce(sum(size), 0), coalesce(sum(thinned), 0) FROM outbox WHERE seq > ?", (acked_seq,)
        ).fetchone()
        oldest = self.store.conn.execute(
            "SELECT at, created FROM outbox WHERE seq > ? ORDER BY seq LIMIT 1", (acked_seq,)
        ).fetchone()
        age = None if oldest is None else max(0.0, round(self.clock.now().timestamp() - float(oldest[1]), 3))
        return OutboxStats(
            last_seq=last_seq,
            acked_seq=acked_seq,
            sent_seq=sent_seq,
            depth=last_seq - acked_seq,
            unsent_bytes=int(row[0]),
            thinned=int(row[1]),
            oldest_unsent_at=None if oldest is None else str(oldest[0]),
            oldest_unsent_age_s=age,
        )

    def unsent_bytes(self) -> int:
        """The logical size of what waits (the cap is measured on this)."""
        acked = self.acked_seq
        row = self.store.conn.execute("SELECT coalesce(sum(size), 0) FROM outbox WHERE seq > ?", (acked,)).fetchone()
        return int(row[0])

    # ------------------------------------------------------------------ thinning

    def thin(self, max_bytes: int) -> ThinResult:
        """Over the cap: snapshots to one per hour, then one per day, then compact device.seen."""
        before = self.unsent_bytes()
        if before <= max_bytes:
            return ThinResult(before, before, 0, False)
        now = self.clock.now().timestamp()
        count = 0
        current = before
        for stage in (self._hourly, self._daily, self._device_chatter):
            count += self._tombstone(stage(now))
            current = self.unsent_bytes()
            if current <= max_bytes:
                break
        still_over = current > max_bytes
        log.warning(
            "outbox over its cap of %d bytes: thinned %d events, %d -> %d bytes%s",
            max_bytes,
            count,
            before,
            current,
            "; still over the cap, keeping everything (incidents are never dropped)" if still_over else "",
        )
        return ThinResult(before, current, count, still_over)

    def _thinnable(self, kind: EventKind) -> list[tuple[int, float, str | None, str | None]]:
        _last, acked, sent = self._counters()
        return self.store.conn.execute(
            "SELECT seq, created, json_extract(data, '$.id'), json_extract(data, '$.class') FROM outbox"
            " WHERE kind = ? AND seq > ? AND thinned = 0 ORDER BY seq",
            (kind.value, max(acked, sent)),
        ).fetchall()

    def _bucketed(self, older_than: float, bucket: float) -> list[tuple[int, str]]:
        kept: set[int] = set()
        out = []
        for seq, created, _id, _cls in self._thinnable(EventKind.HEALTH_SNAPSHOT):
            if created >= older_than:
                continue
            slot = int(created // bucket)
            if slot in kept:
                out.append((seq, '{"thinned":true}'))
            else:
                kept.add(slot)
        return out

    def _hourly(self, now: float) -> list[tuple[int, str]]:
        return self._bucketed(now - HOUR, HOUR)

    def _daily(self, now: float) -> list[tuple[int, str]]:
        return self._bucketed(now - DAY, DAY)

    def _device_chatter(self, now: float) -> list[tuple[int, str]]:
        del now
        rows = self._thinnable(EventKind.DEVICE_SEEN)
        newest: dict[str | None, int] = {}
        for seq, _created, dev, _cls in rows:
            newest[dev] = seq
        return [
            (seq, dumps({"id": dev, "class": cls, "thinned": True}).decode("utf-8"))
            for seq, _created, dev, cls in rows
            if newest[dev] != seq and dev is not None and cls is not None
        ]

    def _tombstone(self, plan: Sequence[tuple[int, str]]) -> int:
        """Apply a plan in short transactions; each re-checks that the row is still unsent."""
        done = 0
        for start in range(0, len(plan), _THIN_CHUNK):
            chunk = plan[start : start + _THIN_CHUNK]
            with self.store.transaction() as conn:
                _last, acked, sent = self._counters(conn)
                floor = max(acked, sent)
                for seq, data in chunk:
                    cur = conn.execute(
                        "UPDATE outbox SET data = ?, size = length(?) + length(at) + length(kind) + 40, thinned = 1"
                        " WHERE seq = ? AND seq > ? AND thinned = 0",
                        (data, data, seq, floor),
                    )
                    done += cur.rowcount
        return done

"""The SQLite store: one connection, WAL, synchronous=FULL, one writer at a time.

The calls are short and run inline on the event loop (datasette keeps a writer thread;
our transactions are a few milliseconds, so the loop only waits that long). An
``asyncio.Lock`` makes this process's writers take turns; ``BEGIN IMMEDIATE`` with a
busy timeout does the same against the CLI writing from another process. FULL makes
every commit durable before central acknowledges it.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Collection, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from base.errors import DatabaseError
from base.sqlite import connect, is_disk_full
from central.errors import AlreadyExistsError, StorageFullError
from central.storage.interface import (
    DEVICE_FIELDS,
    INCIDENT_FIELDS,
    SAMPLES_KEPT,
    AgentRow,
    AlertDelivery,
    AlertThread,
    ApiTokenInfo,
    ApiTokenRow,
    CodeRow,
    ConfigLayer,
    EventRow,
    IncidentQuery,
    IncidentStep,
    IssuedToken,
    OverviewRow,
    Revocation,
    Sample,
    SchoolRow,
    SchoolSummary,
    SessionRow,
    UserRow,
)
from central.storage.migrations import run_migrations
from central.storage.rows import (
    DELIVERY_FIELDS,
    DEVICE_KEY,
    DEVICE_MARK_FIELDS,
    INCIDENT_KEY,
    THREAD_FIELDS,
    agent_of,
    delivery_of,
    device_of,
    device_values,
    dump,
    incident_of,
    incident_values,
    kept_counts,
    layer_of,
    step_values,
    thread_of,
    upsert,
)
from central.storage.shared import IncidentSteps, TransactionalMethods
from central.timestamps import from_iso, iso

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5000
# WAL checkpoints run beside the writer, at most one at a time and one per CHECKPOINT_EVERY_S after
# a COMMIT (``SqliteStore._after_commit``). Left to SQLite, a checkpoint runs inside the COMMIT that
# crosses 1,000 WAL pages and holds the writer while it copies them and syncs the file: at 15,000
# agents that was the slowest one percent of batches. SQLite's own is kept as a backstop, later.
CHECKPOINT_EVERY_S = 1.0
WAL_AUTOCHECKPOINT_PAGES = 10_000
# Keys per "IN (...)" lookup: far below SQLite's limit on bound parameters (32766 since 3.32).
_KEYS_PER_QUERY = 500

_AGENT_COLUMNS = (
    "agent_id, school_id, keyid, public_key, hostname, version, enrolled_at, revoked_at, acked_seq,"
    " last_report_at, clock_skew_s, state_seq, state_made_at, devices_seq, snapshot_seq, revoked_by,"
    " config_version, config_overrides"
)
_LAYER_COLUMNS = "version, scope, toml, settings, created_at, created_by"
# Built once from literal column lists, never from input.
_AGENT_BY_ID = f"SELECT {_AGENT_COLUMNS} FROM agents WHERE agent_id=?"  # noqa: S608
_AGENT_BY_KEYID = f"SELECT {_AGENT_COLUMNS} FROM agents WHERE keyid=?"  # noqa: S608
_AGENTS_OF = f"SELECT {_AGENT_COLUMNS} FROM agents WHERE ? IS NULL OR school_id=? ORDER BY school_id, agent_id"  # noqa: S608
_PUT_INCIDENT = upsert("incidents", INCIDENT_FIELDS, INCIDENT_KEY, "?")
_DEVICE_MARK_COLS = ", ".join(DEVICE_MARK_FIELDS)
_PUT_DEVICE = upsert("devices", DEVICE_FIELDS, DEVICE_KEY, "?")


_DELIVERY_COLS = ", ".join(DELIVERY_FIELDS)
_DELIVERY_COLS_D = ", ".join(f"d.{name}" for name in DELIVERY_FIELDS)
_PUT_THREAD = (
    f"INSERT OR REPLACE INTO alert_threads ({', '.join(THREAD_FIELDS)})"  # noqa: S608 - literal column list
    f" VALUES ({', '.join('?' * len(THREAD_FIELDS))})"
)


_USER_COLUMNS = "name, role, carrier, password_hash, created_at"
# The three cabinet rules that mean "did not charge"; the cabinet id follows the colon.
_CABINET_DOWN = "('cabinet-no-power', 'cabinet-switched-off', 'cabinet-meter-unreachable')"
_OVERVIEW = f"""
WITH a AS (
  SELECT school_id, count(*) AS n, max(last_report_at) AS last_report, max(coalesce(last_report_at, enrolled_at))
    AS last_contact, max(version) AS version, max(abs(clock_skew_s)) AS skew
  FROM agents WHERE revoked_at IS NULL GROUP BY school_id),
i AS (
  SELECT school_id, sum(severity='critical') AS crit, sum(severity='warning') AS warn, sum(severity='info') AS info,
    sum(key LIKE 'ap-down:%') AS aps,
    count(DISTINCT CASE WHEN substr(key, 1, instr(key, ':') - 1) IN {_CABINET_DOWN}
                   THEN substr(key, instr(key, ':') + 1) END) AS cabs
  FROM incidents WHERE status='open' GROUP BY school_id),
d AS (
  SELECT school_id, sum(last_seen_at >= :today) AS today, sum(last_seen_at >= :usual) AS usual
  FROM devices WHERE class='tablet' GROUP BY school_id)
SELECT s.id, s.name, s.carrier, s.created_at, coalesce(a.n, 0), a.last_report, a.last_contact,
  coalesce(i.crit, 0), coalesce(i.warn, 0), coalesce(i.info, 0), coalesce(i.aps, 0), coalesce(i.cabs, 0),
  coalesce(d.today, 0), coalesce(d.usual, 0), a.version, a.skew
FROM schools s LEFT JOIN a ON a.school_id=s.id LEFT JOIN i ON i.school_id=s.id LEFT JOIN d ON d.school_id=s.id
WHERE :carrier IS NULL OR s.carrier=:carrier
ORDER BY s.id
"""  # noqa: S608 - built from literals only


def _chunks(keys: Collection[str]) -> Iterator[list[str]]:
    ordered = sorted(set(keys))
    for start in range(0, len(ordered), _KEYS_PER_QUERY):
        yield ordered[start : start + _KEYS_PER_QUERY]


_LOG_STEP = (
    "INSERT INTO incident_log (school_id, origin, agent_id, incident_id, at, action, by, text, source,"
    " severity, title) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def open_migrated(path: Path) -> sqlite3.Connection:
    """Open (creating) the database file in autocommit mode with our pragmas, migrated.

    Raises DatabaseError (SchemaTooNewError for a newer central's file) with one line.
    """
    conn = connect(path, busy_timeout_ms=BUSY_TIMEOUT_MS)
    try:
        conn.row_factory = sqlite3.Row
        run_migrations(conn, str(path))
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise DatabaseError(f"cannot use database {path}: {exc}") from None
    except BaseException:
        conn.close()
        raise
    return conn


class SqliteTransaction(IncidentSteps):
    """The Transaction methods over a connection inside BEGIN IMMEDIATE."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    async def get_agent(self, agent_id: str) -> AgentRow | None:
        """The agent as of now, inside the lock."""
        return agent_of(self._conn.execute(_AGENT_BY_ID, (agent_id,)).fetchone())

    async def event_digests(self, agent_id: str, seq_from: int, seq_to: int) -> dict[int, str]:
        """Digests of the held events of that range."""
        rows = self._conn.execute(
            "SELECT seq, digest FROM events WHERE agent_id=? AND seq BETWEEN ? AND ?", (agent_id, seq_from, seq_to)
        )
        return {int(r[0]): str(r[1]) for r in rows}

    async def insert_events(self, rows: Sequence[EventRow], received_at: str) -> None:
        """Store events; a duplicate (agent_id, seq) raises IntegrityError."""
        self._conn.executemany(
            "INSERT INTO events (agent_id, seq, school_id, kind, at, digest, body, received_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(r.agent_id, r.seq, r.school_id, r.kind, r.at, r.digest, r.body, received_at) for r in rows],
        )

    async def record_contact(
        self, agent_id: str, acked_seq: int, at: str, clock_skew_s: float | None, version: str | None
    ) -> None:
        """Set the agent's ack and last report time (and skew and version, when given)."""
        self._conn.execute(
            "UPDATE agents SET acked_seq=?, last_report_at=?, clock_skew_s=coalesce(?, clock_skew_s),"
            " version=coalesce(?, version) WHERE agent_id=?",
            (acked_seq, at, clock_skew_s, version, agent_id),
        )

    async def set_agent_state(self, agent_id: str, last_seq: int, made_at: str, state_json: str) -> None:
        """Keep this state payload as the agent's newest."""
        self._conn.execute(
            "UPDATE agents SET state_seq=?, state_made_at=?, state_json=? WHERE agent_id=?",
            (last_seq, made_at, state_json, agent_id),
        )

    async def set_devices_seq(self, agent_id: str, seq: int) -> None:
        """Remember the sequence of the newest state that listed devices."""
        self._conn.execute("UPDATE agents SET devices_seq=? WHERE agent_id=?", (seq, agent_id))

    async def set_agent_config_report(self, agent_id: str, version: int, overrides: Sequence[str]) -> None:
        """Keep the configuration version the agent's newest state runs and the keys its own file overrides."""
        self._conn.execute(
            "UPDATE agents SET config_version=?, config_overrides=? WHERE agent_id=?",
            (version, dump(list(overrides)), agent_id),
        )

    async def set_snapshot(self, agent_id: str, snapshot_json: str, seq: int, at: str) -> None:
        """Keep the agent's newest health snapshot."""
        self._conn.execute(
            "UPDATE agents SET snapshot_json=?, snapshot_seq=?, snapshot_at=? WHERE agent_id=?",
            (snapshot_json, seq, at, agent_id),
        )

    async def get_incident(self, school_id: str, origin: str, agent_id: str, incident_id: str) -> dict[str, Any] | None:
        """One incident row, or None."""
        row = self._conn.execute(
            "SELECT * FROM incidents WHERE school_id=? AND origin=? AND agent_id=? AND incident_id=?",
            (school_id, origin, agent_id, incident_id),
        ).fetchone()
        return None if row is None else incident_of(row)

    async def put_incident(self, row: dict[str, Any]) -> None:
        """Insert or replace one incident row."""
        self._conn.execute(_PUT_INCIDENT, incident_values(row))

    async def get_incidents(
        self, school_id: str, origin: str, agent_id: str, incident_ids: Collection[str]
    ) -> dict[str, dict[str, Any]]:
        """The incident rows among ``incident_ids`` that exist, by incident_id."""
        out: dict[str, dict[str, Any]] = {}
        for chunk in _chunks(incident_ids):
            rows = self._conn.execute(
                "SELECT * FROM incidents WHERE school_id=? AND origin=? AND agent_id=?"  # noqa: S608 - only ?s
                f" AND incident_id IN ({', '.join('?' * len(chunk))})",
                (school_id, origin, agent_id, *chunk),
            )
            for row in rows:
                out[row["incident_id"]] = incident_of(row)
        return out

    async def put_incidents(self, rows: Sequence[dict[str, Any]]) -> None:
        """Insert or replace incident rows in one statement."""
        self._conn.executemany(_PUT_INCIDENT, [incident_values(row) for row in rows])

    async def open_agent_incidents(self, agent_id: str) -> list[dict[str, Any]]:
        """The open incidents an agent reported."""
        rows = self._conn.execute(
            "SELECT * FROM incidents WHERE agent_id=? AND origin='agent' AND status='open'", (agent_id,)
        )
        return [incident_of(r) for r in rows]

    async def get_devices(
        self, school_id: str, agent_id: str, device_ids: Collection[str]
    ) -> dict[str, dict[str, Any]]:
        """The device rows among ``device_ids`` that exist, by device_id; without ``data``."""
        out: dict[str, dict[str, Any]] = {}
        for chunk in _chunks(device_ids):
            rows = self._conn.execute(
                f"SELECT {_DEVICE_MARK_COLS} FROM devices WHERE school_id=? AND agent_id=?"  # noqa: S608 - only ?s
                f" AND device_id IN ({', '.join('?' * len(chunk))})",
                (school_id, agent_id, *chunk),
            )
            for row in rows:
                out[row["device_id"]] = dict(zip(DEVICE_MARK_FIELDS, row, strict=True))
        return out

    async def put_devices(self, rows: Sequence[dict[str, Any]]) -> None:
        """Insert or replace device rows in one statement."""
        self._conn.executemany(_PUT_DEVICE, [device_values(row) for row in rows])

    async def agent_devices(self, agent_id: str) -> list[dict[str, Any]]:
        """Every device row of one agent."""
        return [device_of(r) for r in self._conn.execute("SELECT * FROM devices WHERE agent_id=?", (agent_id,))]

    async def resolve_central_incident(self, school_id: str, incident_id: str, at: str) -> bool:
        """Resolve a central incident if open; True when it was open."""
        cur = self._conn.execute(
            "UPDATE incidents SET status='resolved', resolved_at=?, updated_at=?"
            " WHERE school_id=? AND origin='central' AND agent_id='' AND incident_id=? AND status='open'",
            (at, at, school_id, incident_id),
        )
        if cur.rowcount > 0:
            row = await self.get_incident(school_id, "central", "", incident_id)
            if row is not None:
                await self.log_incident(row, at, "resolved", None, None)
        return cur.rowcount > 0

    async def log_incident(
        self, incident: dict[str, Any], at: str, action: str, by: str | None, text: str | None
    ) -> None:
        """Append one step to an incident's timeline."""
        await self.log_incidents([IncidentStep.of(incident, at, action, by, text)])

    async def log_incidents(self, steps: Sequence[IncidentStep]) -> None:
        """Append timeline steps in the given order, in one statement."""
        self._conn.executemany(_LOG_STEP, [step_values(step) for step in steps])

    async def add_samples(self, school_id: str, agent_id: str, samples: Sequence[Sample]) -> None:
        """Keep time-series points; points older than eight days are dropped at the same time."""
        self._conn.executemany(
            "INSERT OR REPLACE INTO samples (school_id, series, at, agent_id, value, flag) VALUES (?, ?, ?, ?, ?, ?)",
            [(school_id, p.series, p.at, agent_id, p.value, p.flag) for p in samples],
        )
        if samples:
            cutoff = iso(from_iso(max(p.at for p in samples)) - SAMPLES_KEPT)
            self._conn.execute("DELETE FROM samples WHERE school_id=? AND at < ?", (school_id, cutoff))

    async def present_device_counts(self, school_id: str) -> dict[str, int]:
        """Devices of a school that are not lost, by class."""
        rows = self._conn.execute(
            "SELECT class, count(*) FROM devices WHERE school_id=? AND state != 'lost' GROUP BY class", (school_id,)
        )
        return {str(r[0]): int(r[1]) for r in rows}

    async def devices_changed(self, school_id: str) -> None:
        """Move the school's device generation on: kept counts are stale."""
        self._conn.execute("UPDATE schools SET devices_gen=devices_gen+1 WHERE id=?", (school_id,))

    async def kept_device_counts(self, school_id: str) -> tuple[int, dict[str, int] | None]:
        """The school's device generation and the counts kept at it (None when older or none)."""
        return kept_counts(
            self._conn.execute(
                "SELECT devices_gen, counts_gen, counts_json FROM schools WHERE id=?", (school_id,)
            ).fetchone()
        )

    async def keep_device_counts(self, school_id: str, generation: int, counts: Mapping[str, int]) -> None:
        """Keep the present-device counts made at ``generation``."""
        self._conn.execute(
            "UPDATE schools SET counts_gen=?, counts_json=? WHERE id=?", (generation, dump(dict(counts)), school_id)
        )

    async def alert_candidates(self) -> list[dict[str, Any]]:
        """Every open incident and every incident with an open alert thread, with carrier and school name."""
        rows = self._conn.execute(
            """SELECT i.*, s.carrier AS carrier, s.name AS school_name FROM incidents i
                 JOIN schools s ON s.id=i.school_id WHERE i.status='open'
               UNION
               SELECT i.*, s.carrier AS carrier, s.name AS school_name FROM alert_threads t
                 JOIN incidents i ON i.school_id=t.school_id AND i.origin=t.origin AND i.agent_id=t.agent_id
                   AND i.incident_id=t.incident_id
                 JOIN schools s ON s.id=i.school_id WHERE t.state='open'
               ORDER BY opened_at, school_id, incident_id"""
        )
        out = []
        for row in rows:
            item = incident_of(row)
            item["carrier"], item["school_name"] = row["carrier"], row["school_name"]
            out.append(item)
        return out

    async def get_alert_thread(self, channel: str, thread: str) -> AlertThread | None:
        """One alert thread, or None."""
        return thread_of(
            self._conn.execute("SELECT * FROM alert_threads WHERE channel=? AND thread=?", (channel, thread)).fetchone()
        )

    async def put_alert_thread(self, row: AlertThread) -> None:
        """Insert or replace one alert thread."""
        self._conn.execute(_PUT_THREAD, [getattr(row, key) for key in THREAD_FIELDS])

    async def open_alert_channels(self, thread: str) -> list[str]:
        """The channels on which this thread is still open."""
        rows = self._conn.execute(
            "SELECT channel FROM alert_threads WHERE thread=? AND state='open' ORDER BY channel", (thread,)
        )
        return [str(r[0]) for r in rows]

    async def add_alert_delivery(
        self, channel: str, thread: str, kind: str, school_id: str | None, payload: str, due: str, at: str
    ) -> int:
        """Queue a message; its id, or 0 when that (channel, thread, kind) is queued already."""
        cur = self._conn.execute(
            "INSERT OR IGNORE INTO alert_deliveries (channel, thread, kind, school_id, payload, status,"
            " next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?)",
            (channel, thread, kind, school_id, payload, due, at),
        )
        return int(cur.lastrowid or 0) if cur.rowcount else 0

    async def get_alert_delivery_of(self, channel: str, thread: str, kind: str) -> AlertDelivery | None:
        """The message of that kind in that thread, or None."""
        return delivery_of(
            self._conn.execute(
                f"SELECT {_DELIVERY_COLS} FROM alert_deliveries WHERE channel=? AND thread=? AND kind=?",  # noqa: S608
                (channel, thread, kind),
            ).fetchone()
        )

    async def cancel_alert_deliveries(self, channel: str, thread: str, at: str) -> int:
        """Mark the thread's pending messages cancelled; how many were."""
        cur = self._conn.execute(
            "UPDATE alert_deliveries SET status='cancelled', lease_until=NULL, sent_at=?"
            " WHERE channel=? AND thread=? AND status='pending'",
            (at, channel, thread),
        )
        return cur.rowcount

    async def count_alert_threads(self, channel: str, cause: str, since: str) -> int:
        """Incident threads of one cause on one channel begun at or after ``since`` (digests excluded)."""
        row = self._conn.execute(
            "SELECT count(*) FROM alert_threads WHERE channel=? AND cause=? AND created_at>=?"
            " AND mode IN ('single', 'digested')",
            (channel, cause, since),
        ).fetchone()
        return int(row[0])

    async def gathering_digest(self, channel: str, cause: str) -> AlertDelivery | None:
        """A digest of this cause on this channel not yet attempted (more members may join), or None."""
        return delivery_of(
            self._conn.execute(
                f"SELECT {_DELIVERY_COLS_D} FROM alert_deliveries d JOIN alert_threads t"  # noqa: S608
                " ON t.channel=d.channel AND t.thread=d.thread"
                " WHERE t.channel=? AND t.cause=? AND t.mode='digest' AND d.kind='digest' AND d.status='pending'"
                " AND d.attempts=0 AND d.lease_until IS NULL ORDER BY d.id DESC LIMIT 1",
                (channel, cause),
            ).fetchone()
        )

    async def set_alert_payload(self, delivery_id: int, payload: str) -> None:
        """Replace a queued message's facts (a digest that gained members)."""
        self._conn.execute("UPDATE alert_deliveries SET payload=? WHERE id=?", (payload, delivery_id))

    async def find_code(self, code_hash: str) -> CodeRow | None:
        """An enrollment code by its hash."""
        row = self._conn.execute(
            "SELECT code_hash, school_id, expires_at, used_at FROM enroll_codes WHERE code_hash=?", (code_hash,)
        ).fetchone()
        return None if row is None else CodeRow(**dict(zip(row.keys(), tuple(row), strict=True)))

    async def use_code(self, code_hash: str, at: str, agent_id: str) -> None:
        """Mark a code used."""
        self._conn.execute("UPDATE enroll_codes SET used_at=?, used_by=? WHERE code_hash=?", (at, agent_id, code_hash))

    async def keyid_enrolled(self, keyid: str) -> bool:
        """Whether any agent (revoked or not) has this key, or had it before a key rotation."""
        found = self._conn.execute(
            "SELECT 1 FROM agents WHERE keyid=? UNION ALL SELECT 1 FROM retired_keys WHERE keyid=?", (keyid, keyid)
        ).fetchone()
        return found is not None

    async def retired_keys(self, agent_id: str) -> list[tuple[str, bytes, str]]:
        """The keys an agent rotated away from: (keyid, raw public key, successor keyid), oldest first."""
        rows = self._conn.execute(
            "SELECT keyid, public_key, successor_keyid FROM retired_keys WHERE agent_id=? ORDER BY retired_at",
            (agent_id,),
        )
        return [(str(r[0]), bytes(r[1]), str(r[2])) for r in rows]

    async def rotate_agent_key(self, agent_id: str, new_keyid: str, new_public_key: bytes, at: str) -> None:
        """Replace the agent's key with the new one and retire the old (recorded with its successor)."""
        self._conn.execute(
            "INSERT INTO retired_keys (keyid, agent_id, public_key, successor_keyid, retired_at)"
            " SELECT keyid, agent_id, public_key, ?, ? FROM agents WHERE agent_id=?",
            (new_keyid, at, agent_id),
        )
        self._conn.execute(
            "UPDATE agents SET keyid=?, public_key=? WHERE agent_id=?", (new_keyid, new_public_key, agent_id)
        )

    async def add_agent(
        self, agent_id: str, school_id: str, keyid: str, public_key: bytes, hostname: str, version: str, at: str
    ) -> None:
        """Create an agent."""
        self._conn.execute(
            "INSERT INTO agents (agent_id, school_id, keyid, public_key, hostname, version, enrolled_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (agent_id, school_id, keyid, public_key, hostname, version, at),
        )


class SqliteStore(TransactionalMethods):
    """Central's database in one SQLite file, with group commit.

    Writes go through one connection, one ``transaction()`` at a time. Transactions that
    arrive while a COMMIT is being made durable are gathered into the next group: each is its
    own SAVEPOINT inside one ``BEGIN IMMEDIATE``, and the group is made durable by one COMMIT
    (one fsync) that runs in a worker thread, so the event loop parses and verifies the next
    reports meanwhile instead of waiting for the disk. A caller's ``transaction()`` returns
    only once its group is durable, and raises when that group could not be committed
    (StorageFullError on a full disk): nothing is acknowledged that is not on disk.

    Reads outside a transaction use a second, read-only connection: WAL gives them the last
    committed state, never a group's writes before its COMMIT.
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        path: Path,
        reader: sqlite3.Connection | None = None,
        checkpointer: sqlite3.Connection | None = None,
    ) -> None:
        self._conn = conn
        self._reader = reader if reader is not None else conn
        self.path = path
        # Its own connection: a checkpoint runs in a worker thread while the writer goes on.
        self._checkpointer = checkpointer
        self._checkpoint: asyncio.Future[None] | None = None
        self._checkpoint_at = float("-inf")  # time.monotonic() of the last one started
        self._checkpoint_failed_at = float("-inf")
        # Held by a transaction's body and by the COMMIT: the writer connection has one user at a time.
        self._lock = asyncio.Lock()
        self._group: asyncio.Future[None] | None = None  # the open group's COMMIT outcome
        self._commit_pending = False
        self._kept_in_group = 0  # units of the open group released, waiting for its COMMIT
        self._committer: asyncio.Task[None] | None = None

    @classmethod
    def open(cls, path: Path) -> SqliteStore:
        """Open and migrate; DatabaseError with one line when that is impossible."""
        conn = open_migrated(path)
        opened = [conn]
        try:
            reader = connect(path, busy_timeout_ms=BUSY_TIMEOUT_MS)
            opened.append(reader)
            reader.row_factory = sqlite3.Row
            reader.execute("PRAGMA query_only = ON")
            checkpointer = connect(path, busy_timeout_ms=BUSY_TIMEOUT_MS)
            opened.append(checkpointer)
            conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES}")
        except BaseException:
            for each in opened:
                each.close()
            raise
        return cls(conn, path, reader, checkpointer)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[SqliteTransaction]:
        """One atomic unit: kept on leaving once its group is durable, rolled back on an exception.

        Raises StorageFullError when the disk is full (this unit's writes or its group's COMMIT).
        """
        async with self._lock:
            if self._group is None:
                self._open_group()
            group = self._group
            assert group is not None
            try:
                self._conn.execute("SAVEPOINT unit")
                try:
                    yield SqliteTransaction(self._conn)
                    self._conn.execute("RELEASE unit")
                    self._kept_in_group += 1
                except BaseException as exc:
                    self._undo_unit(exc)
                    if isinstance(exc, sqlite3.Error) and is_disk_full(exc):
                        raise StorageFullError(f"disk full writing {self.path}: write rolled back") from None
                    raise
            finally:
                # Even after a failed unit: an open group holds the file's write lock until its COMMIT.
                if self._group is not None and not self._commit_pending:
                    self._commit_pending = True
                    self._committer = asyncio.get_running_loop().create_task(self._commit_group())
        # Shielded: a caller that goes away does not cancel the COMMIT the others wait for.
        await asyncio.shield(group)

    def _open_group(self) -> None:
        self._conn.execute("BEGIN IMMEDIATE")
        self._kept_in_group = 0
        self._group = asyncio.get_running_loop().create_future()

    def _undo_unit(self, exc: BaseException) -> None:
        """Roll back one unit; when SQLite already rolled back the whole group (SQLITE_FULL), fail the group."""
        if self._kept_in_group == 0 and self._conn.in_transaction:
            # Nothing else in the group: end it now rather than hold the write lock until a COMMIT.
            self._conn.execute("ROLLBACK")
            group, self._group = self._group, None
            if group is not None:
                group.set_result(None)
            return
        if self._conn.in_transaction:
            try:
                self._conn.execute("ROLLBACK TO unit")
                self._conn.execute("RELEASE unit")
                return
            except sqlite3.Error as undo:
                exc = undo
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
        self._fail_group(exc)

    def _fail_group(self, exc: BaseException) -> None:
        group, self._group = self._group, None
        if group is not None and not group.done():
            full = isinstance(exc, sqlite3.Error) and is_disk_full(exc)
            group.set_exception(
                StorageFullError(f"disk full writing {self.path}: write rolled back")
                if full
                else DatabaseError(f"database {self.path}: transaction rolled back: {exc}")
            )
            group.exception()  # retrieved here: a group whose callers all went away logs no warning

    async def _commit_group(self) -> None:
        async with self._lock:
            self._commit_pending = False
            group, self._group = self._group, None
            if group is None:  # failed and rolled back already
                return
            # The fsync of a durable COMMIT takes milliseconds: off the event loop. Shielded and
            # awaited to its end even when this task is cancelled (at shutdown): the thread runs on.
            commit = asyncio.ensure_future(asyncio.to_thread(self._conn.execute, "COMMIT"))
            cancelled = False
            while not commit.done():
                try:
                    await asyncio.shield(commit)
                except asyncio.CancelledError:
                    cancelled = True
                except Exception:  # noqa: S110 - read from the future below
                    pass
            error = commit.exception()
            if error is None:
                group.set_result(None)
                self._after_commit()
            else:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                self._group = group
                self._fail_group(error)
            if cancelled:
                raise asyncio.CancelledError

    def _after_commit(self) -> None:
        """Start a WAL checkpoint in a worker thread, unless one runs or one started less than
        CHECKPOINT_EVERY_S ago.

        PASSIVE: it copies what it can without waiting for the writer or the readers, and the
        writer appends to the WAL meanwhile. Once it has copied everything, SQLite starts the WAL
        over at the next write, so the file stays at about a second's worth of writes.
        """
        if self._checkpointer is None or (self._checkpoint is not None and not self._checkpoint.done()):
            return
        now = time.monotonic()
        if now - self._checkpoint_at < CHECKPOINT_EVERY_S:
            return
        self._checkpoint_at = now
        self._checkpoint = asyncio.ensure_future(asyncio.to_thread(self._run_checkpoint, self._checkpointer))

    def _run_checkpoint(self, conn: sqlite3.Connection) -> None:
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as exc:
            # Nothing is lost: SQLite's own checkpoint in a COMMIT takes over past its threshold.
            now = time.monotonic()
            if now - self._checkpoint_failed_at >= 3600.0:  # once an hour at most
                self._checkpoint_failed_at = now
                log.warning("WAL checkpoint of %s failed: %s", self.path, exc)

    async def close(self) -> None:
        """Wait for a pending COMMIT and checkpoint, then release the connections."""
        if self._committer is not None:
            await asyncio.gather(self._committer, return_exceptions=True)
        if self._checkpoint is not None:
            await asyncio.gather(self._checkpoint, return_exceptions=True)
        if self._checkpointer is not None:
            self._checkpointer.close()
        if self._reader is not self._conn:
            self._reader.close()
        self._conn.close()

    async def add_school(self, school_id: str, name: str, carrier: str, at: str) -> None:
        """Create a school; AlreadyExistsError if the id is taken."""
        async with self.transaction():
            try:
                self._conn.execute(
                    "INSERT INTO schools (id, name, carrier, created_at) VALUES (?, ?, ?, ?)",
                    (school_id, name, carrier, at),
                )
            except sqlite3.IntegrityError:
                raise AlreadyExistsError(f"school {school_id!r} exists already") from None

    async def get_school(self, school_id: str) -> SchoolRow | None:
        """One school, or None."""
        row = self._reader.execute(
            "SELECT id, name, carrier, created_at FROM schools WHERE id=?", (school_id,)
        ).fetchone()
        return None if row is None else SchoolRow(*row)

    async def list_schools(self, carrier: str | None = None) -> list[SchoolRow]:
        """Schools, optionally of one carrier, by id."""
        rows = self._reader.execute(
            "SELECT id, name, carrier, created_at FROM schools WHERE ? IS NULL OR carrier=? ORDER BY id",
            (carrier, carrier),
        )
        return [SchoolRow(*r) for r in rows]

    async def carrier_exists(self, carrier: str) -> bool:
        """Whether any school belongs to this carrier."""
        return self._reader.execute("SELECT 1 FROM schools WHERE carrier=? LIMIT 1", (carrier,)).fetchone() is not None

    async def school_summaries(self, carrier: str | None = None, school_id: str | None = None) -> list[SchoolSummary]:
        """Per-school counts for the status list."""
        rows = self._reader.execute(
            """
            SELECT s.id, s.name, s.carrier, s.created_at,
              (SELECT count(*) FROM agents a WHERE a.school_id=s.id AND a.revoked_at IS NULL),
              (SELECT max(a.last_report_at) FROM agents a WHERE a.school_id=s.id AND a.revoked_at IS NULL),
              (SELECT max(coalesce(a.last_report_at, a.enrolled_at)) FROM agents a
                 WHERE a.school_id=s.id AND a.revoked_at IS NULL),
              (SELECT count(*) FROM incidents i WHERE i.school_id=s.id AND i.status='open' AND i.severity='critical'),
              (SELECT count(*) FROM incidents i WHERE i.school_id=s.id AND i.status='open' AND i.severity='warning'),
              (SELECT count(*) FROM incidents i WHERE i.school_id=s.id AND i.status='open' AND i.severity='info'),
              (SELECT count(*) FROM agents a WHERE a.school_id=s.id AND a.revoked_at IS NOT NULL),
              (SELECT max(a.last_report_at) FROM agents a WHERE a.school_id=s.id)
            FROM schools s
            WHERE (? IS NULL OR s.carrier=?) AND (? IS NULL OR s.id=?)
            ORDER BY s.id
            """,
            (carrier, carrier, school_id, school_id),
        )
        return [
            SchoolSummary(
                school=SchoolRow(r[0], r[1], r[2], r[3]),
                agents=r[4],
                last_report_at=r[5],
                last_contact_at=r[6],
                open_critical=r[7],
                open_warning=r[8],
                open_info=r[9],
                revoked_agents=r[10],
                last_revoked=self._last_revoked(r[0]) if r[10] else None,
                history_last_report_at=r[11],
            )
            for r in rows.fetchall()
        ]

    def _last_revoked(self, school_id: str) -> Revocation | None:
        row = self._reader.execute(
            "SELECT agent_id, revoked_at, revoked_by FROM agents WHERE school_id=? AND revoked_at IS NOT NULL"
            " ORDER BY revoked_at DESC, agent_id LIMIT 1",
            (school_id,),
        ).fetchone()
        return None if row is None else Revocation(row[0], row[1], row[2])

    async def add_enroll_code(self, code_hash: str, school_id: str, expires_at: str, at: str) -> None:
        """Store a new enrollment code hash."""
        async with self.transaction():
            self._conn.execute(
                "INSERT INTO enroll_codes (code_hash, school_id, created_at, expires_at) VALUES (?, ?, ?, ?)",
                (code_hash, school_id, at, expires_at),
            )

    async def agent_by_keyid(self, keyid: str) -> AgentRow | None:
        """The agent enrolled with this key (revoked ones too)."""
        return agent_of(self._reader.execute(_AGENT_BY_KEYID, (keyid,)).fetchone())

    async def get_agent(self, agent_id: str) -> AgentRow | None:
        """One agent, or None."""
        return agent_of(self._reader.execute(_AGENT_BY_ID, (agent_id,)).fetchone())

    async def list_agents(self, school_id: str | None = None) -> list[AgentRow]:
        """Agents, optionally of one school."""
        rows = self._reader.execute(
            _AGENTS_OF,
            (school_id, school_id),
        )
        return [a for a in map(agent_of, rows) if a is not None]

    async def revoke_agent(self, agent_id: str, at: str, by: str | None = None) -> bool:
        """Revoke (recording when and by whom; a second revoke keeps the first); False when no such agent."""
        async with self.transaction():
            cur = self._conn.execute(
                "UPDATE agents SET revoked_by=CASE WHEN revoked_at IS NULL THEN ? ELSE revoked_by END,"
                " revoked_at=coalesce(revoked_at, ?) WHERE agent_id=?",
                (by, at, agent_id),
            )
            return cur.rowcount > 0

    async def agent_snapshot(self, agent_id: str) -> tuple[str | None, str | None]:
        """(snapshot JSON, its time) of one agent."""
        row = self._reader.execute(
            "SELECT snapshot_json, snapshot_at FROM agents WHERE agent_id=?", (agent_id,)
        ).fetchone()
        return (None, None) if row is None else (row[0], row[1])

    async def add_api_token(self, token_hash: str, name: str, carrier: str | None, at: str) -> None:
        """Store a read-API token hash."""
        async with self.transaction():
            self._conn.execute(
                "INSERT INTO api_tokens (token_hash, name, carrier, created_at) VALUES (?, ?, ?, ?)",
                (token_hash, name, carrier, at),
            )

    async def find_api_token(self, token_hash: str) -> ApiTokenRow | None:
        """A read-API token by its hash; None when unknown or revoked."""
        row = self._reader.execute(
            "SELECT name, carrier FROM api_tokens WHERE token_hash=? AND revoked_at IS NULL", (token_hash,)
        ).fetchone()
        return None if row is None else ApiTokenRow(row[0], row[1])

    async def api_token_name_active(self, name: str) -> bool:
        """Whether an unrevoked read-API token has this name."""
        row = self._reader.execute("SELECT 1 FROM api_tokens WHERE name=? AND revoked_at IS NULL", (name,)).fetchone()
        return row is not None

    async def list_api_tokens(self) -> list[ApiTokenInfo]:
        """Every read-API token, revoked ones too, oldest first."""
        rows = self._reader.execute(
            "SELECT name, carrier, created_at, revoked_at, revoked_by FROM api_tokens ORDER BY created_at, name"
        )
        return [ApiTokenInfo(*r) for r in rows]

    async def revoke_api_token(self, name: str, at: str, by: str) -> int:
        """Revoke the unrevoked read-API tokens of this name; how many were revoked."""
        async with self.transaction():
            cur = self._conn.execute(
                "UPDATE api_tokens SET revoked_at=?, revoked_by=? WHERE name=? AND revoked_at IS NULL", (at, by, name)
            )
            return cur.rowcount

    async def add_issued_token(self, token: IssuedToken) -> None:
        """Log an issued technician token (never the token itself)."""
        async with self.transaction():
            self._conn.execute(
                "INSERT INTO issued_tokens (jti, technician, scope, issued_at, expires_at, issued_by, revoked_at,"
                " revoked_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (token.jti, token.technician, token.scope, token.issued_at, token.expires_at, token.issued_by,
                 token.revoked_at, token.revoked_by),
            )  # fmt: skip

    async def list_issued_tokens(self, expired_before: str | None = None) -> list[IssuedToken]:
        """The issued-token log, newest first; with ``expired_before`` only tokens expiring after it."""
        rows = self._reader.execute(
            "SELECT jti, technician, scope, issued_at, expires_at, issued_by, revoked_at, revoked_by"
            " FROM issued_tokens WHERE ? IS NULL OR expires_at > ? ORDER BY issued_at DESC, jti",
            (expired_before, expired_before),
        )
        return [IssuedToken(*r) for r in rows]

    async def revoke_issued_token(self, jti: str, at: str, by: str) -> bool:
        """Mark a technician token revoked (a second revoke keeps the first); False when no such jti."""
        async with self.transaction():
            cur = self._conn.execute(
                "UPDATE issued_tokens SET revoked_by=CASE WHEN revoked_at IS NULL THEN ? ELSE revoked_by END,"
                " revoked_at=coalesce(revoked_at, ?) WHERE jti=?",
                (by, at, jti),
            )
            return cur.rowcount > 0

    async def revoked_token_ids(self, now: str) -> list[str]:
        """The jtis of revoked technician tokens that have not expired yet."""
        rows = self._reader.execute(
            "SELECT jti FROM issued_tokens WHERE revoked_at IS NOT NULL AND expires_at > ? ORDER BY jti", (now,)
        )
        return [str(r[0]) for r in rows]

    # ------------------------------------------------------------------ agent configuration

    async def add_config_layer(self, scope: str, toml: str, settings: str, at: str, by: str) -> int:
        """Store a new version of the ``scope`` layer (``carrier:NAME``/``school:ID``); its version number."""
        async with self.transaction():
            cur = self._conn.execute(
                "INSERT INTO config_layers (scope, toml, settings, created_at, created_by) VALUES (?, ?, ?, ?, ?)",
                (scope, toml, settings, at, by),
            )
            return int(cur.lastrowid or 0)

    async def config_layers(self, scopes: Sequence[str]) -> list[ConfigLayer]:
        """The newest version of each of these scopes' layers (a scope never set is left out), in ``scopes`` order."""
        found: list[ConfigLayer] = []
        for scope in scopes:
            row = self._reader.execute(
                f"SELECT {_LAYER_COLUMNS} FROM config_layers WHERE scope=? ORDER BY version DESC LIMIT 1",  # noqa: S608
                (scope,),
            ).fetchone()
            if row is not None:
                found.append(layer_of(row))
        return found

    async def config_history(self, scope: str | None, limit: int = 100) -> list[ConfigLayer]:
        """Versions of one scope's layer (None: of every scope), newest first."""
        rows = self._reader.execute(
            f"SELECT {_LAYER_COLUMNS} FROM config_layers WHERE ? IS NULL OR scope=?"  # noqa: S608
            " ORDER BY version DESC LIMIT ?",
            (scope, scope, limit),
        )
        return [layer_of(r) for r in rows]

    async def list_incidents(self, query: IncidentQuery) -> list[dict[str, Any]]:
        """Incidents matching the filters, newest change first."""
        clauses, params = [], []
        if query.status is not None:
            clauses.append("i.status=?")
            params.append(query.status)
        if query.school_id is not None:
            clauses.append("i.school_id=?")
            params.append(query.school_id)
        if query.carrier is not None:
            clauses.append("s.carrier=?")
            params.append(query.carrier)
        if query.severity is not None:
            clauses.append("i.severity=?")
            params.append(query.severity)
        if query.since is not None:
            clauses.append("i.updated_at>=?")
            params.append(query.since)
        if query.category is not None:
            clauses.append("i.category=?")
            params.append(query.category)
        where = " AND ".join(clauses) or "1"
        rows = self._reader.execute(
            f"SELECT i.*, s.carrier AS carrier FROM incidents i JOIN schools s ON s.id=i.school_id"  # noqa: S608 - clauses are literals
            f" WHERE {where} ORDER BY i.updated_at DESC LIMIT ?",
            (*params, query.limit),
        )
        out = []
        for row in rows:
            item = incident_of(row)
            item["carrier"] = row["carrier"]
            out.append(item)
        return out

    async def list_devices(self, school_id: str) -> list[dict[str, Any]]:
        """The current devices of one school."""
        rows = self._reader.execute("SELECT * FROM devices WHERE school_id=? ORDER BY class, device_id", (school_id,))
        return [device_of(r) for r in rows]

    async def count_events(self, agent_id: str) -> int:
        """How many events of an agent are held."""
        return int(self._reader.execute("SELECT count(*) FROM events WHERE agent_id=?", (agent_id,)).fetchone()[0])

    async def get_events(self, agent_id: str) -> list[EventRow]:
        """Every held event of an agent, by seq."""
        rows = self._reader.execute(
            "SELECT agent_id, seq, school_id, kind, at, digest, body FROM events WHERE agent_id=? ORDER BY seq",
            (agent_id,),
        )
        return [EventRow(*r) for r in rows]

    # ------------------------------------------------------------------ dashboard

    async def add_user(self, name: str, role: str, carrier: str | None, password_hash: str, at: str) -> None:
        """Create a staff user; AlreadyExistsError if the name is taken."""
        async with self.transaction():
            try:
                self._conn.execute(
                    "INSERT INTO users (name, role, carrier, password_hash, created_at, updated_at)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (name, role, carrier, password_hash, at, at),
                )
            except sqlite3.IntegrityError:
                raise AlreadyExistsError(f"user {name!r} exists already") from None

    async def get_user(self, name: str) -> UserRow | None:
        """One user, or None."""
        row = self._reader.execute(f"SELECT {_USER_COLUMNS} FROM users WHERE name=?", (name,)).fetchone()  # noqa: S608
        return None if row is None else UserRow(*row)

    async def list_users(self) -> list[UserRow]:
        """Every user, by name."""
        return [UserRow(*r) for r in self._reader.execute(f"SELECT {_USER_COLUMNS} FROM users ORDER BY name")]  # noqa: S608

    async def remove_user(self, name: str) -> bool:
        """Delete a user and end its sessions; False when there is no such user."""
        async with self.transaction():
            self._conn.execute("DELETE FROM sessions WHERE user_name=?", (name,))
            return self._conn.execute("DELETE FROM users WHERE name=?", (name,)).rowcount > 0

    async def set_password(self, name: str, password_hash: str, at: str) -> bool:
        """Replace a user's password hash and end its sessions; False when there is no such user."""
        async with self.transaction():
            self._conn.execute("DELETE FROM sessions WHERE user_name=?", (name,))
            cur = self._conn.execute(
                "UPDATE users SET password_hash=?, updated_at=? WHERE name=?", (password_hash, at, name)
            )
            return cur.rowcount > 0

    async def add_session(self, id_hash: str, user_name: str, csrf: str, at: str, expires_at: str) -> None:
        """Store a new session (only the SHA-256 of its id)."""
        async with self.transaction():
            self._conn.execute(
                "INSERT INTO sessions (id_hash, user_name, csrf, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
                (id_hash, user_name, csrf, at, expires_at),
            )

    async def get_session(self, id_hash: str, now: str) -> SessionRow | None:
        """The session with this id hash if it has not expired and its user still exists."""
        row = self._reader.execute(
            "SELECT u.name, u.role, u.carrier, u.password_hash, u.created_at, s.csrf, s.expires_at"
            " FROM sessions s JOIN users u ON u.name=s.user_name WHERE s.id_hash=? AND s.expires_at > ?",
            (id_hash, now),
        ).fetchone()
        return None if row is None else SessionRow(UserRow(*row[:5]), row[5], row[6])

    async def delete_session(self, id_hash: str) -> None:
        """End one session (logout); expired sessions of anyone are removed too."""
        async with self.transaction():
            self._conn.execute("DELETE FROM sessions WHERE id_hash=?", (id_hash,))
            self._conn.execute("DELETE FROM sessions WHERE expires_at < strftime('%Y-%m-%dT%H:%M:%fZ', 'now')")

    async def overview(self, carrier: str | None, today_since: str, usual_since: str) -> list[OverviewRow]:
        """Every school's overview row (optionally one carrier's); times are stored-format UTC."""
        rows = self._reader.execute(_OVERVIEW, {"carrier": carrier, "today": today_since, "usual": usual_since})
        return [
            OverviewRow(
                summary=SchoolSummary(SchoolRow(r[0], r[1], r[2], r[3]), r[4], r[5], r[6], r[7], r[8], r[9]),
                aps_down=r[10],
                cabinets_down=r[11],
                tablets_today=r[12],
                tablets_usual=r[13],
                agent_version=r[14],
                max_clock_skew_s=r[15],
            )
            for r in rows
        ]

    async def get_incident(self, school_id: str, origin: str, agent_id: str, incident_id: str) -> dict[str, Any] | None:
        """One incident row (with its school's ``carrier``), or None."""
        row = self._reader.execute(
            "SELECT i.*, s.carrier AS carrier FROM incidents i JOIN schools s ON s.id=i.school_id"
            " WHERE i.school_id=? AND i.origin=? AND i.agent_id=? AND i.incident_id=?",
            (school_id, origin, agent_id, incident_id),
        ).fetchone()
        if row is None:
            return None
        out = incident_of(row)
        out["carrier"] = row["carrier"]
        return out

    async def incident_log(self, school_id: str) -> list[dict[str, Any]]:
        """Every recorded step of a school's incidents, oldest first."""
        rows = self._reader.execute(
            "SELECT school_id, origin, agent_id, incident_id, at, action, by, text, source, severity, title"
            " FROM incident_log WHERE school_id=? ORDER BY at, rowid",
            (school_id,),
        )
        return [dict(zip(r.keys(), tuple(r), strict=True)) for r in rows]

    async def samples(self, school_id: str, since: str) -> list[Sample]:
        """A school's time-series points since ``since``, by series and time."""
        rows = self._reader.execute(
            "SELECT series, at, value, flag FROM samples WHERE school_id=? AND at >= ? ORDER BY series, at",
            (school_id, since),
        )
        return [Sample(*r) for r in rows]

    async def staff_steps(self, school_id: str, agent_id: str, since: str, limit: int = 200) -> list[dict[str, Any]]:
        """Central staff's acks and notes on one agent's incidents that are open or resolved at/after ``since``."""
        rows = self._reader.execute(
            "SELECT l.incident_id, l.action, l.by, l.text, l.at FROM incident_log l JOIN incidents i"
            " ON i.school_id=l.school_id AND i.origin=l.origin AND i.agent_id=l.agent_id"
            " AND i.incident_id=l.incident_id"
            " WHERE l.school_id=? AND l.origin='agent' AND l.agent_id=? AND l.source='central'"
            " AND l.action IN ('staff-ack', 'staff-note') AND (i.status='open' OR i.resolved_at >= ?)"
            " ORDER BY l.at DESC, l.rowid DESC LIMIT ?",  # the same minute: the order they were made in
            (school_id, agent_id, since, limit),
        ).fetchall()
        keys = ("incident_id", "action", "by", "text", "at")
        return [dict(zip(keys, tuple(r), strict=True)) for r in reversed(rows)]

    async def claim_alert_deliveries(
        self, now: str, lease_until: str, limit: int, delivery_id: int | None = None
    ) -> list[AlertDelivery]:
        """Lease due messages, oldest first; one waits while an earlier one of its thread is pending or dead."""
        async with self.transaction():
            rows = self._conn.execute(
                f"SELECT {_DELIVERY_COLS_D} FROM alert_deliveries d"  # noqa: S608 - literal column list
                " WHERE d.status='pending' AND d.next_attempt_at<=? AND (d.lease_until IS NULL OR d.lease_until<=?)"
                " AND (? IS NULL OR d.id=?)"
                " AND NOT EXISTS (SELECT 1 FROM alert_deliveries e WHERE e.channel=d.channel AND e.thread=d.thread"
                "   AND e.id<d.id AND e.status IN ('pending', 'dead'))"
                " ORDER BY d.next_attempt_at, d.id LIMIT ?",
                (now, now, delivery_id, delivery_id, limit),
            ).fetchall()
            claimed = [d for d in map(delivery_of, rows) if d is not None]
            self._conn.executemany(
                "UPDATE alert_deliveries SET lease_until=? WHERE id=?", [(lease_until, d.id) for d in claimed]
            )
        return claimed

    async def alert_delivered(self, delivery_id: int, at: str, external_ref: str | None) -> None:
        """Mark a message sent; a non-None ``external_ref`` is kept on its thread for the follow-ups."""
        async with self.transaction():
            self._conn.execute(
                "UPDATE alert_deliveries SET status='sent', sent_at=?, lease_until=NULL, attempts=attempts+1"
                " WHERE id=?",
                (at, delivery_id),
            )
            if external_ref is not None:
                self._conn.execute(
                    "UPDATE alert_threads SET external_ref=? WHERE (channel, thread) IN"
                    " (SELECT channel, thread FROM alert_deliveries WHERE id=?)",
                    (external_ref, delivery_id),
                )

    async def alert_failed(
        self, delivery_id: int, attempts: int, status: str, next_attempt_at: str, error: str
    ) -> None:
        """Record a failed attempt: back to ``pending`` at ``next_attempt_at``, or ``dead``."""
        async with self.transaction():
            self._conn.execute(
                "UPDATE alert_deliveries SET attempts=?, status=?, next_attempt_at=?, last_error=?, lease_until=NULL"
                " WHERE id=?",
                (attempts, status, next_attempt_at, error[:500], delivery_id),
            )

    async def alert_thread_ref(self, channel: str, thread: str) -> str | None:
        """The channel's reference for the thread's first message (a Zammad ticket id), or None."""
        row = self._reader.execute(
            "SELECT external_ref FROM alert_threads WHERE channel=? AND thread=?", (channel, thread)
        ).fetchone()
        return None if row is None else row[0]

    async def list_alert_deliveries(self, status: str | None, limit: int = 200) -> list[AlertDelivery]:
        """Messages of one status (None: every status), newest first."""
        rows = self._reader.execute(
            f"SELECT {_DELIVERY_COLS} FROM alert_deliveries WHERE ? IS NULL OR status=?"  # noqa: S608
            " ORDER BY id DESC LIMIT ?",
            (status, status, limit),
        )
        return [d for d in map(delivery_of, rows) if d is not None]

    async def requeue_alert_delivery(self, delivery_id: int, at: str) -> AlertDelivery | None:
        """A dead message back to pending with no attempts, due at ``at``; None when it is not dead."""
        async with self.transaction():
            cur = self._conn.execute(
                "UPDATE alert_deliveries SET status='pending', attempts=0, next_attempt_at=?, lease_until=NULL"
                " WHERE id=? AND status='dead'",
                (at, delivery_id),
            )
            if not cur.rowcount:
                return None
            return delivery_of(
                self._conn.execute(
                    f"SELECT {_DELIVERY_COLS} FROM alert_deliveries WHERE id=?", (delivery_id,)  # noqa: S608
                ).fetchone()
            )

    # ------------------------------------------------------------------ shared failure limits

    async def count_failures(self, scope: str, source: str, since: str) -> int:
        """Failed attempts of one source in one scope at or after ``since``."""
        row = self._reader.execute(
            "SELECT count(*) FROM failures WHERE scope=? AND source=? AND at>=?", (scope, source, since)
        ).fetchone()
        return int(row[0])

    async def add_failure(self, scope: str, source: str, at: str, forget_before: str) -> None:
        """Record a failed attempt; the scope's attempts before ``forget_before`` are deleted."""
        async with self.transaction():
            self._conn.execute("DELETE FROM failures WHERE scope=? AND at<?", (scope, forget_before))
            self._conn.execute("INSERT INTO failures (scope, source, at) VALUES (?, ?, ?)", (scope, source, at))

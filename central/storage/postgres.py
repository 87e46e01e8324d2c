"""The PostgreSQL store: several central nodes share one database, the database decides.

psycopg 3 in async mode over a ``psycopg_pool.AsyncConnectionPool``; every connection is in
autocommit mode and ``transaction()`` opens one explicit transaction on one connection. No
process-local lock exists here: two nodes ingesting the same agent's batches take turns on
the agent's row (``SELECT … FOR UPDATE`` in ``Transaction.get_agent``), and the primary key
on (agent_id, seq) refuses a second copy of an event whatever happens. Alert senders lease
outbox rows with ``FOR UPDATE SKIP LOCKED``; alert planning runs under a transaction-level
advisory lock, so two nodes never plan the same incident at once.

Methods mirror ``sqlite.py`` one for one (same names, same order, the same SQL where the
dialects agree): a method added there is ported by copying it and changing ``?`` to ``%s``,
``INSERT OR REPLACE`` to ``ON CONFLICT … DO UPDATE`` and ``INSERT OR IGNORE`` to
``ON CONFLICT DO NOTHING``. A ``%s`` compared with NULL needs a cast (``%s::text``), as
PostgreSQL infers no type for a bare parameter there.

Every wait is bounded: connecting (``CONNECT_TIMEOUT_S``), taking a pooled connection
(``POOL_TIMEOUT_S``) and each statement (``STATEMENT_TIMEOUT_MS``, row locks included).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg import AsyncConnection, AsyncPipeline
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from base.errors import DatabaseError
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
from central.storage.postgres_migrations import run_migrations
from central.storage.rows import (
    AGENT_FIELDS,
    DELIVERY_FIELDS,
    DEVICE_KEY,
    DEVICE_MARK_FIELDS,
    INCIDENT_KEY,
    LAYER_FIELDS,
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

CONNECT_TIMEOUT_S = 10
POOL_TIMEOUT_S = 30.0
STATEMENT_TIMEOUT_MS = 30_000
POOL_MIN, POOL_MAX = 1, 10
# Serialises alert planning across nodes (any constant all nodes share).
_ALERT_PLAN_LOCK = 0x5C4017_0002

Conn = AsyncConnection[DictRow]

_AGENT_COLS = ", ".join(AGENT_FIELDS)
_AGENT_BY_ID = f"SELECT {_AGENT_COLS} FROM agents WHERE agent_id=%s"  # noqa: S608 - literal column list
_AGENT_BY_KEYID = f"SELECT {_AGENT_COLS} FROM agents WHERE keyid=%s"  # noqa: S608
_AGENTS_OF = (
    f"SELECT {_AGENT_COLS} FROM agents WHERE %s::text IS NULL OR school_id=%s"  # noqa: S608
    " ORDER BY school_id, agent_id"
)


def _upsert(table: str, fields: Sequence[str], key: Sequence[str]) -> str:
    return upsert(table, fields, key, "%s")


_PUT_INCIDENT = _upsert("incidents", INCIDENT_FIELDS, INCIDENT_KEY)
_PUT_DEVICE = _upsert("devices", DEVICE_FIELDS, DEVICE_KEY)
_PUT_THREAD = _upsert("alert_threads", THREAD_FIELDS, ("channel", "thread"))
_PUT_SAMPLE = _upsert(
    "samples", ("school_id", "series", "at", "agent_id", "value", "flag"), ("school_id", "series", "at", "agent_id")
)
_INSERT_EVENT = (
    "INSERT INTO events (agent_id, seq, school_id, kind, at, digest, body, received_at)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
)
# Column positions of each upsert's conflict key in its value rows.
_INCIDENT_KEY_AT = tuple(INCIDENT_FIELDS.index(name) for name in INCIDENT_KEY)
_DEVICE_KEY_AT = tuple(DEVICE_FIELDS.index(name) for name in DEVICE_KEY)
_SAMPLE_KEY = (0, 1, 2, 3)
_DEVICE_MARK_COLS = ", ".join(DEVICE_MARK_FIELDS)
_LAYER_COLS = ", ".join(LAYER_FIELDS)
_LOG_STEP = (
    'INSERT INTO incident_log (school_id, origin, agent_id, incident_id, at, action, "by", text, source,'
    " severity, title) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
_DELIVERY_COLS = ", ".join(DELIVERY_FIELDS)
_DELIVERY_COLS_D = ", ".join(f"d.{name}" for name in DELIVERY_FIELDS)
_USER_COLUMNS = "name, role, carrier, password_hash, created_at"
_NOW_TEXT = "to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
_CABINET_DOWN = "('cabinet-no-power', 'cabinet-switched-off', 'cabinet-meter-unreachable')"
_OVERVIEW = f"""
WITH a AS (
  SELECT school_id, count(*) AS n, max(last_report_at) AS last_report, max(coalesce(last_report_at, enrolled_at))
    AS last_contact, max(version) AS version, max(abs(clock_skew_s)) AS skew
  FROM agents WHERE revoked_at IS NULL GROUP BY school_id),
i AS (
  SELECT school_id, count(*) FILTER (WHERE severity='critical') AS crit,
    count(*) FILTER (WHERE severity='warning') AS warn, count(*) FILTER (WHERE severity='info') AS info,
    count(*) FILTER (WHERE key LIKE 'ap-down:%%') AS aps,
    count(DISTINCT CASE WHEN strpos(key, ':') > 0 AND split_part(key, ':', 1) IN {_CABINET_DOWN}
                   THEN substr(key, strpos(key, ':') + 1) END) AS cabs
  FROM incidents WHERE status='open' GROUP BY school_id),
d AS (
  SELECT school_id, count(*) FILTER (WHERE last_seen_at >= %(today)s) AS today,
    count(*) FILTER (WHERE last_seen_at >= %(usual)s) AS usual
  FROM devices WHERE class='tablet' GROUP BY school_id)
SELECT s.id, s.name, s.carrier, s.created_at, coalesce(a.n, 0) AS n, a.last_report, a.last_contact,
  coalesce(i.crit, 0) AS crit, coalesce(i.warn, 0) AS warn, coalesce(i.info, 0) AS info,
  coalesce(i.aps, 0) AS aps, coalesce(i.cabs, 0) AS cabs,
  coalesce(d.today, 0) AS today, coalesce(d.usual, 0) AS usual, a.version, a.skew
FROM schools s LEFT JOIN a ON a.school_id=s.id LEFT JOIN i ON i.school_id=s.id LEFT JOIN d ON d.school_id=s.id
WHERE %(carrier)s::text IS NULL OR s.carrier=%(carrier)s
ORDER BY s.id
"""  # noqa: S608 - built from literals only


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def with_options(url: str, extra: str) -> str:
    """The URL's own libpq ``options`` (a search_path, say) with ``extra`` added: passing ``options``
    to connect replaces the URL's, it does not add to them. DatabaseError for an unparsable URL."""
    try:
        given = conninfo_to_dict(url).get("options") or ""
    except psycopg.ProgrammingError as exc:
        raise DatabaseError(f"cannot use database {describe(url)}: {_first_line(exc)}") from None
    return f"{given} {extra}".strip()


def describe(url: str) -> str:
    """A PostgreSQL URL as logs and errors may show it: host, port and database, never a password."""
    try:
        parts = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "postgresql://(unparsable URL)"
    host = parts.get("host") or "localhost"
    port = parts.get("port") or "5432"
    return f"postgresql://{host}:{port}/{parts.get('dbname') or ''}"


async def _one(conn: Conn, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> DictRow | None:
    cur = await conn.execute(sql, params)
    return await cur.fetchone()


async def _all(conn: Conn, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[DictRow]:
    cur = await conn.execute(sql, params)
    return await cur.fetchall()


async def _run(conn: Conn, sql: str, params: Sequence[Any] = ()) -> int:
    """Run a write; the number of rows it touched."""
    cur = await conn.execute(sql, params)
    return cur.rowcount


# Parameters per multi-row statement. psycopg keeps its parse of a statement's text only for
# statements of at most 50 parameters (psycopg._queries.MAX_CACHED_STATEMENT_PARAMS); above that
# it parses the text again on every execute, which made 20 event rows in 16 + 4 rows cost 264 us
# against 25 us in statements of 6 rows (and 68 us row by row; one unnest() of arrays 907 us).
_PARAMS_PER_STATEMENT = 50


@functools.cache
def _rows_statement(sql: str, rows: int) -> str:
    """``sql``, a one-row ``INSERT … VALUES (%s, …) [ON CONFLICT …]``, with ``rows`` value groups."""
    head, rest = sql.split(" VALUES ", 1)
    close = rest.index(")") + 1
    return f"{head} VALUES {', '.join([rest[:close]] * rows)}{rest[close:]}"


async def _run_many(conn: Conn, sql: str, params: Sequence[Sequence[Any]], key: Sequence[int] = ()) -> None:
    """Write every parameter row in multi-row statements of up to ``_PARAMS_PER_STATEMENT`` parameters.

    Not ``executemany``: in pipeline mode psycopg sends and flushes each row as its own statement,
    one ``send()`` and one event-loop wait per row (``send()`` alone was 28 % of a node's CPU samples).
    ``key`` (column positions) names an upsert's conflict key: rows with the same key are folded
    to the last one first, as PostgreSQL refuses to update one row twice in one statement (and
    ``executemany`` would have left the last row's values).
    """
    if key:
        params = list({tuple(row[i] for i in key): row for row in params}.values())
    step = max(1, _PARAMS_PER_STATEMENT // sql.count("%s"))
    for start in range(0, len(params), step):
        chunk = params[start : start + step]
        await conn.execute(_rows_statement(sql, len(chunk)), [value for row in chunk for value in row])


class PostgresTransaction(IncidentSteps):
    """The Transaction methods over one connection inside one PostgreSQL transaction."""

    def __init__(self, conn: Conn, pipeline: AsyncPipeline | None = None) -> None:
        self._conn = conn
        self._pipeline = pipeline

    async def _run(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run a write and wait for it: the number of rows it touched (in pipeline mode, after a sync)."""
        cur = await self._conn.execute(sql, params)
        if self._pipeline is not None:
            await self._pipeline.sync()
        return cur.rowcount

    async def _send(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Run a write whose result nobody reads, without waiting for it.

        In pipeline mode (ingest's transactions) it travels with the next statement that reads, or
        with the COMMIT, instead of costing a round trip of its own; the server runs statements in
        order, so every later read sees it. Should it fail, the error is raised at that next read
        or the COMMIT, still inside this transaction, which then rolls back whole.
        """
        await self._conn.execute(sql, params)

    async def get_agent(self, agent_id: str) -> AgentRow | None:
        """The agent as of now, its row locked until the transaction ends (``FOR UPDATE``).

        A second node ingesting the same agent waits here and then reads the first one's ack.
        """
        return agent_of(await _one(self._conn, _AGENT_BY_ID + " FOR UPDATE", (agent_id,)))

    async def event_digests(self, agent_id: str, seq_from: int, seq_to: int) -> dict[int, str]:
        """Digests of the held events of that range."""
        rows = await _all(
            self._conn,
            "SELECT seq, digest FROM events WHERE agent_id=%s AND seq BETWEEN %s AND %s",
            (agent_id, seq_from, seq_to),
        )
        return {int(r["seq"]): str(r["digest"]) for r in rows}

    async def insert_events(self, rows: Sequence[EventRow], received_at: str) -> None:
        """Store events; a duplicate (agent_id, seq) raises psycopg's UniqueViolation."""
        await _run_many(
            self._conn,
            _INSERT_EVENT,
            [(r.agent_id, r.seq, r.school_id, r.kind, r.at, r.digest, r.body, received_at) for r in rows],
        )

    async def record_contact(
        self, agent_id: str, acked_seq: int, at: str, clock_skew_s: float | None, version: str | None
    ) -> None:
        """Set the agent's ack and last report time (and skew and version, when given)."""
        await self._send(
            "UPDATE agents SET acked_seq=%s, last_report_at=%s, clock_skew_s=coalesce(%s, clock_skew_s),"
            " version=coalesce(%s, version) WHERE agent_id=%s",
            (acked_seq, at, clock_skew_s, version, agent_id),
        )

    async def set_agent_state(self, agent_id: str, last_seq: int, made_at: str, state_json: str) -> None:
        """Keep this state payload as the agent's newest."""
        await self._send(
            "UPDATE agents SET state_seq=%s, state_made_at=%s, state_json=%s WHERE agent_id=%s",
            (last_seq, made_at, state_json, agent_id),
        )

    async def set_devices_seq(self, agent_id: str, seq: int) -> None:
        """Remember the sequence of the newest state that listed devices."""
        await self._send("UPDATE agents SET devices_seq=%s WHERE agent_id=%s", (seq, agent_id))

    async def set_agent_config_report(self, agent_id: str, version: int, overrides: Sequence[str]) -> None:
        """Keep the configuration version the agent's newest state runs and the keys its own file overrides."""
        await self._send(
            "UPDATE agents SET config_version=%s, config_overrides=%s WHERE agent_id=%s",
            (version, dump(list(overrides)), agent_id),
        )

    async def set_snapshot(self, agent_id: str, snapshot_json: str, seq: int, at: str) -> None:
        """Keep the agent's newest health snapshot."""
        await self._send(
            "UPDATE agents SET snapshot_json=%s, snapshot_seq=%s, snapshot_at=%s WHERE agent_id=%s",
            (snapshot_json, seq, at, agent_id),
        )

    async def get_incident(self, school_id: str, origin: str, agent_id: str, incident_id: str) -> dict[str, Any] | None:
        """One incident row, or None."""
        row = await _one(
            self._conn,
            "SELECT * FROM incidents WHERE school_id=%s AND origin=%s AND agent_id=%s AND incident_id=%s",
            (school_id, origin, agent_id, incident_id),
        )
        return None if row is None else incident_of(row)

    async def put_incident(self, row: dict[str, Any]) -> None:
        """Insert or replace one incident row."""
        await self._send(_PUT_INCIDENT, incident_values(row))

    async def get_incidents(
        self, school_id: str, origin: str, agent_id: str, incident_ids: Collection[str]
    ) -> dict[str, dict[str, Any]]:
        """The incident rows among ``incident_ids`` that exist, by incident_id."""
        if not incident_ids:
            return {}
        rows = await _all(
            self._conn,
            "SELECT * FROM incidents WHERE school_id=%s AND origin=%s AND agent_id=%s AND incident_id = ANY(%s)",
            (school_id, origin, agent_id, sorted(set(incident_ids))),
        )
        return {str(r["incident_id"]): incident_of(r) for r in rows}

    async def put_incidents(self, rows: Sequence[dict[str, Any]]) -> None:
        """Insert or replace incident rows in one statement."""
        await _run_many(self._conn, _PUT_INCIDENT, [incident_values(row) for row in rows], _INCIDENT_KEY_AT)

    async def open_agent_incidents(self, agent_id: str) -> list[dict[str, Any]]:
        """The open incidents an agent reported."""
        rows = await _all(
            self._conn, "SELECT * FROM incidents WHERE agent_id=%s AND origin='agent' AND status='open'", (agent_id,)
        )
        return [incident_of(r) for r in rows]

    async def get_devices(
        self, school_id: str, agent_id: str, device_ids: Collection[str]
    ) -> dict[str, dict[str, Any]]:
        """The device rows among ``device_ids`` that exist, by device_id; without ``data``."""
        if not device_ids:
            return {}
        rows = await _all(
            self._conn,
            f"SELECT {_DEVICE_MARK_COLS} FROM devices WHERE school_id=%s AND agent_id=%s"  # noqa: S608 - literal list
            " AND device_id = ANY(%s)",
            (school_id, agent_id, sorted(set(device_ids))),
        )
        return {str(r["device_id"]): dict(r) for r in rows}

    async def put_devices(self, rows: Sequence[dict[str, Any]]) -> None:
        """Insert or replace device rows in one statement."""
        await _run_many(self._conn, _PUT_DEVICE, [device_values(row) for row in rows], _DEVICE_KEY_AT)

    async def agent_devices(self, agent_id: str) -> list[dict[str, Any]]:
        """Every device row of one agent."""
        return [device_of(r) for r in await _all(self._conn, "SELECT * FROM devices WHERE agent_id=%s", (agent_id,))]

    async def resolve_central_incident(self, school_id: str, incident_id: str, at: str) -> bool:
        """Resolve a central incident if open; True when it was open."""
        changed = await self._run(
            "UPDATE incidents SET status='resolved', resolved_at=%s, updated_at=%s"
            " WHERE school_id=%s AND origin='central' AND agent_id='' AND incident_id=%s AND status='open'",
            (at, at, school_id, incident_id),
        )
        if changed > 0:
            row = await self.get_incident(school_id, "central", "", incident_id)
            if row is not None:
                await self.log_incident(row, at, "resolved", None, None)
        return changed > 0

    async def log_incident(
        self, incident: dict[str, Any], at: str, action: str, by: str | None, text: str | None
    ) -> None:
        """Append one step to an incident's timeline."""
        await self.log_incidents([IncidentStep.of(incident, at, action, by, text)])

    async def log_incidents(self, steps: Sequence[IncidentStep]) -> None:
        """Append timeline steps in the given order, in one statement."""
        await _run_many(self._conn, _LOG_STEP, [step_values(step) for step in steps])

    async def add_samples(self, school_id: str, agent_id: str, samples: Sequence[Sample]) -> None:
        """Keep time-series points; points older than eight days are dropped at the same time."""
        if not samples:
            return
        points = [(school_id, p.series, p.at, agent_id, p.value, p.flag) for p in samples]
        await _run_many(self._conn, _PUT_SAMPLE, points, _SAMPLE_KEY)
        cutoff = iso(from_iso(max(p.at for p in samples)) - SAMPLES_KEPT)
        await self._send("DELETE FROM samples WHERE school_id=%s AND at < %s", (school_id, cutoff))

    async def present_device_counts(self, school_id: str) -> dict[str, int]:
        """Devices of a school that are not lost, by class."""
        rows = await _all(
            self._conn,
            "SELECT class, count(*) AS n FROM devices WHERE school_id=%s AND state != 'lost' GROUP BY class",
            (school_id,),
        )
        return {str(r["class"]): int(r["n"]) for r in rows}

    async def devices_changed(self, school_id: str) -> None:
        """Move the school's device generation on: kept counts are stale."""
        await _run(self._conn, "UPDATE schools SET devices_gen=devices_gen+1 WHERE id=%s", (school_id,))

    async def kept_device_counts(self, school_id: str) -> tuple[int, dict[str, int] | None]:
        """The school's device generation and the counts kept at it (None when older or none)."""
        return kept_counts(
            await _one(self._conn, "SELECT devices_gen, counts_gen, counts_json FROM schools WHERE id=%s", (school_id,))
        )

    async def keep_device_counts(self, school_id: str, generation: int, counts: Mapping[str, int]) -> None:
        """Keep the present-device counts made at ``generation``."""
        await _run(
            self._conn,
            "UPDATE schools SET counts_gen=%s, counts_json=%s WHERE id=%s",
            (generation, dump(dict(counts)), school_id),
        )

    async def alert_candidates(self) -> list[dict[str, Any]]:
        """Every open incident and every incident with an open alert thread, with carrier and school name.

        Takes the alert-planning lock first: it is the first read of a plan, and two nodes
        planning at once would otherwise both decide to open the same thread or digest.
        """
        await self._run("SELECT pg_advisory_xact_lock(%s)", (_ALERT_PLAN_LOCK,))
        rows = await _all(
            self._conn,
            """SELECT i.*, s.carrier AS carrier, s.name AS school_name FROM incidents i
                 JOIN schools s ON s.id=i.school_id WHERE i.status='open'
               UNION
               SELECT i.*, s.carrier AS carrier, s.name AS school_name FROM alert_threads t
                 JOIN incidents i ON i.school_id=t.school_id AND i.origin=t.origin AND i.agent_id=t.agent_id
                   AND i.incident_id=t.incident_id
                 JOIN schools s ON s.id=i.school_id WHERE t.state='open'
               ORDER BY opened_at, school_id, incident_id""",
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
            await _one(self._conn, "SELECT * FROM alert_threads WHERE channel=%s AND thread=%s", (channel, thread))
        )

    async def put_alert_thread(self, row: AlertThread) -> None:
        """Insert or replace one alert thread."""
        await self._run(_PUT_THREAD, [getattr(row, key) for key in THREAD_FIELDS])

    async def open_alert_channels(self, thread: str) -> list[str]:
        """The channels on which this thread is still open."""
        rows = await _all(
            self._conn,
            "SELECT channel FROM alert_threads WHERE thread=%s AND state='open' ORDER BY channel",
            (thread,),
        )
        return [str(r["channel"]) for r in rows]

    async def add_alert_delivery(
        self, channel: str, thread: str, kind: str, school_id: str | None, payload: str, due: str, at: str
    ) -> int:
        """Queue a message; its id, or 0 when that (channel, thread, kind) is queued already."""
        row = await _one(
            self._conn,
            "INSERT INTO alert_deliveries (channel, thread, kind, school_id, payload, status,"
            " next_attempt_at, created_at) VALUES (%s, %s, %s, %s, %s, 'pending', %s, %s)"
            " ON CONFLICT (channel, thread, kind) DO NOTHING RETURNING id",
            (channel, thread, kind, school_id, payload, due, at),
        )
        return 0 if row is None else int(row["id"])

    async def get_alert_delivery_of(self, channel: str, thread: str, kind: str) -> AlertDelivery | None:
        """The message of that kind in that thread, or None."""
        return delivery_of(
            await _one(
                self._conn,
                f"SELECT {_DELIVERY_COLS} FROM alert_deliveries WHERE channel=%s AND thread=%s AND kind=%s",  # noqa: S608
                (channel, thread, kind),
            )
        )

    async def cancel_alert_deliveries(self, channel: str, thread: str, at: str) -> int:
        """Mark the thread's pending messages cancelled; how many were."""
        return await self._run(
            "UPDATE alert_deliveries SET status='cancelled', lease_until=NULL, sent_at=%s"
            " WHERE channel=%s AND thread=%s AND status='pending'",
            (at, channel, thread),
        )

    async def count_alert_threads(self, channel: str, cause: str, since: str) -> int:
        """Incident threads of one cause on one channel begun at or after ``since`` (digests excluded)."""
        row = await _one(
            self._conn,
            "SELECT count(*) AS n FROM alert_threads WHERE channel=%s AND cause=%s AND created_at>=%s"
            " AND mode IN ('single', 'digested')",
            (channel, cause, since),
        )
        return 0 if row is None else int(row["n"])

    async def gathering_digest(self, channel: str, cause: str) -> AlertDelivery | None:
        """A digest of this cause on this channel not yet attempted (more members may join), or None."""
        return delivery_of(
            await _one(
                self._conn,
                f"SELECT {_DELIVERY_COLS_D} FROM alert_deliveries d JOIN alert_threads t"  # noqa: S608
                " ON t.channel=d.channel AND t.thread=d.thread"
                " WHERE t.channel=%s AND t.cause=%s AND t.mode='digest' AND d.kind='digest' AND d.status='pending'"
                " AND d.attempts=0 AND d.lease_until IS NULL ORDER BY d.id DESC LIMIT 1",
                (channel, cause),
            )
        )

    async def set_alert_payload(self, delivery_id: int, payload: str) -> None:
        """Replace a queued message's facts (a digest that gained members)."""
        await self._run("UPDATE alert_deliveries SET payload=%s WHERE id=%s", (payload, delivery_id))

    async def find_code(self, code_hash: str) -> CodeRow | None:
        """An enrollment code by its hash, locked until the transaction ends (one agent per code)."""
        row = await _one(
            self._conn,
            "SELECT code_hash, school_id, expires_at, used_at FROM enroll_codes WHERE code_hash=%s FOR UPDATE",
            (code_hash,),
        )
        return None if row is None else CodeRow(**row)

    async def use_code(self, code_hash: str, at: str, agent_id: str) -> None:
        """Mark a code used."""
        await self._run(
            "UPDATE enroll_codes SET used_at=%s, used_by=%s WHERE code_hash=%s", (at, agent_id, code_hash)
        )

    async def keyid_enrolled(self, keyid: str) -> bool:
        """Whether any agent (revoked or not) has this key, or had it before a key rotation."""
        found = await _one(
            self._conn,
            "SELECT 1 AS one FROM agents WHERE keyid=%s UNION ALL SELECT 1 FROM retired_keys WHERE keyid=%s",
            (keyid, keyid),
        )
        return found is not None

    async def retired_keys(self, agent_id: str) -> list[tuple[str, bytes, str]]:
        """The keys an agent rotated away from: (keyid, raw public key, successor keyid), oldest first."""
        rows = await _all(
            self._conn,
            "SELECT keyid, public_key, successor_keyid FROM retired_keys WHERE agent_id=%s ORDER BY retired_at",
            (agent_id,),
        )
        return [(str(r["keyid"]), bytes(r["public_key"]), str(r["successor_keyid"])) for r in rows]

    async def rotate_agent_key(self, agent_id: str, new_keyid: str, new_public_key: bytes, at: str) -> None:
        """Replace the agent's key with the new one and retire the old (recorded with its successor)."""
        await self._run(
            "INSERT INTO retired_keys (keyid, agent_id, public_key, successor_keyid, retired_at)"
            " SELECT keyid, agent_id, public_key, %s, %s FROM agents WHERE agent_id=%s",
            (new_keyid, at, agent_id),
        )
        await self._run(
            "UPDATE agents SET keyid=%s, public_key=%s WHERE agent_id=%s",
            (new_keyid, new_public_key, agent_id),
        )

    async def add_agent(
        self, agent_id: str, school_id: str, keyid: str, public_key: bytes, hostname: str, version: str, at: str
    ) -> None:
        """Create an agent."""
        await self._run(
            "INSERT INTO agents (agent_id, school_id, keyid, public_key, hostname, version, enrolled_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (agent_id, school_id, keyid, public_key, hostname, version, at),
        )


def _summary(r: DictRow, last_revoked: Revocation | None) -> SchoolSummary:
    return SchoolSummary(
        school=SchoolRow(r["id"], r["name"], r["carrier"], r["created_at"]),
        agents=int(r["agents"]),
        last_report_at=r["last_report"],
        last_contact_at=r["last_contact"],
        open_critical=int(r["crit"]),
        open_warning=int(r["warn"]),
        open_info=int(r["info"]),
        revoked_agents=int(r["revoked"]),
        last_revoked=last_revoked,
        history_last_report_at=r["history_last_report"],
    )


class PostgresStore(TransactionalMethods):
    """Central's database on a PostgreSQL server, shared by every central node."""

    def __init__(self, pool: AsyncConnectionPool[Conn], where: str) -> None:
        self._pool = pool
        self.where = where

    @classmethod
    async def open(cls, url: str) -> PostgresStore:
        """Connect, migrate, and keep a pool; DatabaseError with one line (no password) when impossible."""
        where = describe(url)
        settings: dict[str, Any] = {
            "autocommit": True,
            "row_factory": dict_row,
            "connect_timeout": CONNECT_TIMEOUT_S,
            "options": with_options(url, f"-c statement_timeout={STATEMENT_TIMEOUT_MS}"),
            "application_name": "schulwart-central",
        }
        try:
            # One plain connection first: an unreachable server is named at once (the pool would
            # retry until its timeout), and the schema is migrated before any request is served.
            async with await AsyncConnection.connect(url, **settings) as conn:
                await run_migrations(conn, where)
        except psycopg.Error as exc:
            raise DatabaseError(f"cannot use database {where}: {_first_line(exc)}") from None
        pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
            url,
            connection_class=AsyncConnection[DictRow],
            kwargs=settings,
            min_size=POOL_MIN,
            max_size=POOL_MAX,
            timeout=POOL_TIMEOUT_S,
            open=False,
            name="central",
        )
        try:
            await pool.open(wait=True, timeout=CONNECT_TIMEOUT_S + 5)
        except PoolTimeout as exc:
            await pool.close()
            raise DatabaseError(f"cannot use database {where}: {_first_line(exc)}") from None
        return cls(pool, where)

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[Conn]:
        try:
            async with self._pool.connection() as conn, conn.transaction():
                yield conn
        except psycopg.errors.DiskFull:
            # SQLSTATE 53100: the server rolled the transaction back; the same answer as SQLite's SQLITE_FULL.
            raise StorageFullError(f"disk full on database {self.where}: write rolled back") from None

    @asynccontextmanager
    async def _conn(self) -> AsyncIterator[Conn]:
        try:
            async with self._pool.connection() as conn:
                yield conn
        except psycopg.errors.DiskFull:
            raise StorageFullError(f"disk full on database {self.where}: write rolled back") from None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[PostgresTransaction]:
        """One atomic unit on one connection: commit on leaving, roll back on an exception.

        The connection is in pipeline mode: BEGIN, the writes nobody waits for and the next read
        go to the server together. The event loop waited for the server 11-16 times per ingested
        batch, now 7-10 (counted with ``loop.add_reader``); that shortens a batch's wall time, but
        the node's CPU per batch did not measurably change (``python -m bench.pg_batch_cpu``).
        """
        try:
            async with self._pool.connection() as conn, conn.pipeline() as pipeline, conn.transaction():
                yield PostgresTransaction(conn, pipeline)
        except psycopg.errors.DiskFull:
            raise StorageFullError(f"disk full on database {self.where}: write rolled back") from None

    async def close(self) -> None:
        """Close every pooled connection."""
        await self._pool.close()

    async def _fetch_one(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> DictRow | None:
        async with self._conn() as conn:
            return await _one(conn, sql, params)

    async def _fetch_all(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[DictRow]:
        async with self._conn() as conn:
            return await _all(conn, sql, params)

    async def _write(self, sql: str, params: Sequence[Any] = ()) -> int:
        async with self._conn() as conn:
            return await _run(conn, sql, params)

    async def add_school(self, school_id: str, name: str, carrier: str, at: str) -> None:
        """Create a school; AlreadyExistsError if the id is taken."""
        try:
            await self._write(
                "INSERT INTO schools (id, name, carrier, created_at) VALUES (%s, %s, %s, %s)",
                (school_id, name, carrier, at),
            )
        except psycopg.errors.UniqueViolation:
            raise AlreadyExistsError(f"school {school_id!r} exists already") from None

    async def get_school(self, school_id: str) -> SchoolRow | None:
        """One school, or None."""
        row = await self._fetch_one("SELECT id, name, carrier, created_at FROM schools WHERE id=%s", (school_id,))
        return None if row is None else SchoolRow(**row)

    async def list_schools(self, carrier: str | None = None) -> list[SchoolRow]:
        """Schools, optionally of one carrier, by id."""
        rows = await self._fetch_all(
            "SELECT id, name, carrier, created_at FROM schools WHERE %s::text IS NULL OR carrier=%s ORDER BY id",
            (carrier, carrier),
        )
        return [SchoolRow(**r) for r in rows]

    async def carrier_exists(self, carrier: str) -> bool:
        """Whether any school belongs to this carrier."""
        return await self._fetch_one("SELECT 1 AS one FROM schools WHERE carrier=%s LIMIT 1", (carrier,)) is not None

    async def school_summaries(self, carrier: str | None = None, school_id: str | None = None) -> list[SchoolSummary]:
        """Per-school counts for the status list."""
        rows = await self._fetch_all(
            """
            SELECT s.id, s.name, s.carrier, s.created_at,
              (SELECT count(*) FROM agents a WHERE a.school_id=s.id AND a.revoked_at IS NULL) AS agents,
              (SELECT max(a.last_report_at) FROM agents a WHERE a.school_id=s.id AND a.revoked_at IS NULL)
                AS last_report,
              (SELECT max(coalesce(a.last_report_at, a.enrolled_at)) FROM agents a
                 WHERE a.school_id=s.id AND a.revoked_at IS NULL) AS last_contact,
              (SELECT count(*) FROM incidents i WHERE i.school_id=s.id AND i.status='open' AND i.severity='critical')
                AS crit,
              (SELECT count(*) FROM incidents i WHERE i.school_id=s.id AND i.status='open' AND i.severity='warning')
                AS warn,
              (SELECT count(*) FROM incidents i WHERE i.school_id=s.id AND i.status='open' AND i.severity='info')
                AS info,
              (SELECT count(*) FROM agents a WHERE a.school_id=s.id AND a.revoked_at IS NOT NULL) AS revoked,
              (SELECT max(a.last_report_at) FROM agents a WHERE a.school_id=s.id) AS history_last_report
            FROM schools s
            WHERE (%s::text IS NULL OR s.carrier=%s) AND (%s::text IS NULL OR s.id=%s)
            ORDER BY s.id
            """,
            (carrier, carrier, school_id, school_id),
        )
        return [_summary(r, await self._last_revoked(r["id"]) if r["revoked"] else None) for r in rows]

    async def _last_revoked(self, school_id: str) -> Revocation | None:
        row = await self._fetch_one(
            "SELECT agent_id, revoked_at, revoked_by FROM agents WHERE school_id=%s AND revoked_at IS NOT NULL"
            " ORDER BY revoked_at DESC, agent_id LIMIT 1",
            (school_id,),
        )
        return None if row is None else Revocation(row["agent_id"], row["revoked_at"], row["revoked_by"])

    async def add_enroll_code(self, code_hash: str, school_id: str, expires_at: str, at: str) -> None:
        """Store a new enrollment code hash."""
        await self._write(
            "INSERT INTO enroll_codes (code_hash, school_id, created_at, expires_at) VALUES (%s, %s, %s, %s)",
            (code_hash, school_id, at, expires_at),
        )

    async def agent_by_keyid(self, keyid: str) -> AgentRow | None:
        """The agent enrolled with this key (revoked ones too)."""
        return agent_of(await self._fetch_one(_AGENT_BY_KEYID, (keyid,)))

    async def get_agent(self, agent_id: str) -> AgentRow | None:
        """One agent, or None."""
        return agent_of(await self._fetch_one(_AGENT_BY_ID, (agent_id,)))

    async def list_agents(self, school_id: str | None = None) -> list[AgentRow]:
        """Agents, optionally of one school."""
        rows = await self._fetch_all(_AGENTS_OF, (school_id, school_id))
        return [a for a in map(agent_of, rows) if a is not None]

    async def revoke_agent(self, agent_id: str, at: str, by: str | None = None) -> bool:
        """Revoke (recording when and by whom; a second revoke keeps the first); False when no such agent."""
        changed = await self._write(
            "UPDATE agents SET revoked_by=CASE WHEN revoked_at IS NULL THEN %s ELSE revoked_by END,"
            " revoked_at=coalesce(revoked_at, %s) WHERE agent_id=%s",
            (by, at, agent_id),
        )
        return changed > 0

    async def agent_snapshot(self, agent_id: str) -> tuple[str | None, str | None]:
        """(snapshot JSON, its time) of one agent."""
        row = await self._fetch_one("SELECT snapshot_json, snapshot_at FROM agents WHERE agent_id=%s", (agent_id,))
        return (None, None) if row is None else (row["snapshot_json"], row["snapshot_at"])

    async def add_api_token(self, token_hash: str, name: str, carrier: str | None, at: str) -> None:
        """Store a read-API token hash."""
        await self._write(
            "INSERT INTO api_tokens (token_hash, name, carrier, created_at) VALUES (%s, %s, %s, %s)",
            (token_hash, name, carrier, at),
        )

    async def find_api_token(self, token_hash: str) -> ApiTokenRow | None:
        """A read-API token by its hash; None when unknown or revoked."""
        row = await self._fetch_one(
            "SELECT name, carrier FROM api_tokens WHERE token_hash=%s AND revoked_at IS NULL", (token_hash,)
        )
        return None if row is None else ApiTokenRow(**row)

    async def api_token_name_active(self, name: str) -> bool:
        """Whether an unrevoked read-API token has this name."""
        row = await self._fetch_one("SELECT 1 AS one FROM api_tokens WHERE name=%s AND revoked_at IS NULL", (name,))
        return row is not None

    async def list_api_tokens(self) -> list[ApiTokenInfo]:
        """Every read-API token, revoked ones too, oldest first."""
        rows = await self._fetch_all(
            "SELECT name, carrier, created_at, revoked_at, revoked_by FROM api_tokens ORDER BY created_at, name"
        )
        return [ApiTokenInfo(**r) for r in rows]

    async def revoke_api_token(self, name: str, at: str, by: str) -> int:
        """Revoke the unrevoked read-API tokens of this name; how many were revoked."""
        return await self._write(
            "UPDATE api_tokens SET revoked_at=%s, revoked_by=%s WHERE name=%s AND revoked_at IS NULL", (at, by, name)
        )

    async def add_issued_token(self, token: IssuedToken) -> None:
        """Log an issued technician token (never the token itself)."""
        await self._write(
            "INSERT INTO issued_tokens (jti, technician, scope, issued_at, expires_at, issued_by, revoked_at,"
            " revoked_by) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            (token.jti, token.technician, token.scope, token.issued_at, token.expires_at, token.issued_by,
             token.revoked_at, token.revoked_by),
        )  # fmt: skip

    async def list_issued_tokens(self, expired_before: str | None = None) -> list[IssuedToken]:
        """The issued-token log, newest first; with ``expired_before`` only tokens expiring after it."""
        rows = await self._fetch_all(
            "SELECT jti, technician, scope, issued_at, expires_at, issued_by, revoked_at, revoked_by"
            " FROM issued_tokens WHERE %s::text IS NULL OR expires_at > %s ORDER BY issued_at DESC, jti",
            (expired_before, expired_before),
        )
        return [IssuedToken(**r) for r in rows]

    async def revoke_issued_token(self, jti: str, at: str, by: str) -> bool:
        """Mark a technician token revoked (a second revoke keeps the first); False when no such jti."""
        changed = await self._write(
            "UPDATE issued_tokens SET revoked_by=CASE WHEN revoked_at IS NULL THEN %s ELSE revoked_by END,"
            " revoked_at=coalesce(revoked_at, %s) WHERE jti=%s",
            (by, at, jti),
        )
        return changed > 0

    async def revoked_token_ids(self, now: str) -> list[str]:
        """The jtis of revoked technician tokens that have not expired yet."""
        rows = await self._fetch_all(
            "SELECT jti FROM issued_tokens WHERE revoked_at IS NOT NULL AND expires_at > %s ORDER BY jti", (now,)
        )
        return [str(r["jti"]) for r in rows]

    # ------------------------------------------------------------------ agent configuration

    async def add_config_layer(self, scope: str, toml: str, settings: str, at: str, by: str) -> int:
        """Store a new version of the ``scope`` layer (``carrier:NAME``/``school:ID``); its version number."""
        row = await self._fetch_one(
            "INSERT INTO config_layers (scope, toml, settings, created_at, created_by)"
            " VALUES (%s, %s, %s, %s, %s) RETURNING version",
            (scope, toml, settings, at, by),
        )
        return 0 if row is None else int(row["version"])

    async def config_layers(self, scopes: Sequence[str]) -> list[ConfigLayer]:
        """The newest version of each of these scopes' layers (a scope never set is left out), in ``scopes`` order."""
        rows = await self._fetch_all(
            f"SELECT DISTINCT ON (scope) {_LAYER_COLS} FROM config_layers"  # noqa: S608 - literal column list
            " WHERE scope = ANY(%s) ORDER BY scope, version DESC",
            (list(scopes),),
        )
        newest = {str(r["scope"]): layer_of(r) for r in rows}
        return [newest[scope] for scope in scopes if scope in newest]

    async def config_history(self, scope: str | None, limit: int = 100) -> list[ConfigLayer]:
        """Versions of one scope's layer (None: of every scope), newest first."""
        rows = await self._fetch_all(
            f"SELECT {_LAYER_COLS} FROM config_layers WHERE %s::text IS NULL OR scope=%s"  # noqa: S608
            " ORDER BY version DESC LIMIT %s",
            (scope, scope, limit),
        )
        return [layer_of(r) for r in rows]

    async def list_incidents(self, query: IncidentQuery) -> list[dict[str, Any]]:
        """Incidents matching the filters, newest change first."""
        clauses: list[str] = []
        params: list[Any] = []
        for clause, value in (
            ("i.status=%s", query.status),
            ("i.school_id=%s", query.school_id),
            ("s.carrier=%s", query.carrier),
            ("i.severity=%s", query.severity),
            ("i.updated_at>=%s", query.since),
            ("i.category=%s", query.category),
        ):
            if value is not None:
                clauses.append(clause)
                params.append(value)
        where = " AND ".join(clauses) or "true"
        rows = await self._fetch_all(
            f"SELECT i.*, s.carrier AS carrier FROM incidents i JOIN schools s ON s.id=i.school_id"  # noqa: S608 - clauses are literals
            f" WHERE {where} ORDER BY i.updated_at DESC LIMIT %s",
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
        rows = await self._fetch_all("SELECT * FROM devices WHERE school_id=%s ORDER BY class, device_id", (school_id,))
        return [device_of(r) for r in rows]

    async def count_events(self, agent_id: str) -> int:
        """How many events of an agent are held."""
        row = await self._fetch_one("SELECT count(*) AS n FROM events WHERE agent_id=%s", (agent_id,))
        return 0 if row is None else int(row["n"])

    async def get_events(self, agent_id: str) -> list[EventRow]:
        """Every held event of an agent, by seq."""
        rows = await self._fetch_all(
            "SELECT agent_id, seq, school_id, kind, at, digest, body FROM events WHERE agent_id=%s ORDER BY seq",
            (agent_id,),
        )
        return [EventRow(**r) for r in rows]

    # ------------------------------------------------------------------ dashboard

    async def add_user(self, name: str, role: str, carrier: str | None, password_hash: str, at: str) -> None:
        """Create a staff user; AlreadyExistsError if the name is taken."""
        try:
            await self._write(
                "INSERT INTO users (name, role, carrier, password_hash, created_at, updated_at)"
                " VALUES (%s, %s, %s, %s, %s, %s)",
                (name, role, carrier, password_hash, at, at),
            )
        except psycopg.errors.UniqueViolation:
            raise AlreadyExistsError(f"user {name!r} exists already") from None

    async def get_user(self, name: str) -> UserRow | None:
        """One user, or None."""
        row = await self._fetch_one(f"SELECT {_USER_COLUMNS} FROM users WHERE name=%s", (name,))  # noqa: S608
        return None if row is None else UserRow(**row)

    async def list_users(self) -> list[UserRow]:
        """Every user, by name."""
        return [UserRow(**r) for r in await self._fetch_all(f"SELECT {_USER_COLUMNS} FROM users ORDER BY name")]  # noqa: S608

    async def remove_user(self, name: str) -> bool:
        """Delete a user and end its sessions; False when there is no such user."""
        async with self._tx() as conn:
            await _run(conn, "DELETE FROM sessions WHERE user_name=%s", (name,))
            return await _run(conn, "DELETE FROM users WHERE name=%s", (name,)) > 0

    async def set_password(self, name: str, password_hash: str, at: str) -> bool:
        """Replace a user's password hash and end its sessions; False when there is no such user."""
        async with self._tx() as conn:
            await _run(conn, "DELETE FROM sessions WHERE user_name=%s", (name,))
            changed = await _run(
                conn, "UPDATE users SET password_hash=%s, updated_at=%s WHERE name=%s", (password_hash, at, name)
            )
            return changed > 0

    async def add_session(self, id_hash: str, user_name: str, csrf: str, at: str, expires_at: str) -> None:
        """Store a new session (only the SHA-256 of its id)."""
        await self._write(
            "INSERT INTO sessions (id_hash, user_name, csrf, created_at, expires_at) VALUES (%s, %s, %s, %s, %s)",
            (id_hash, user_name, csrf, at, expires_at),
        )

    async def get_session(self, id_hash: str, now: str) -> SessionRow | None:
        """The session with this id hash if it has not expired and its user still exists."""
        row = await self._fetch_one(
            "SELECT u.name, u.role, u.carrier, u.password_hash, u.created_at, s.csrf, s.expires_at"
            " FROM sessions s JOIN users u ON u.name=s.user_name WHERE s.id_hash=%s AND s.expires_at > %s",
            (id_hash, now),
        )
        if row is None:
            return None
        user = UserRow(row["name"], row["role"], row["carrier"], row["password_hash"], row["created_at"])
        return SessionRow(user, row["csrf"], row["expires_at"])

    async def delete_session(self, id_hash: str) -> None:
        """End one session (logout); expired sessions of anyone are removed too."""
        async with self._tx() as conn:
            await _run(conn, "DELETE FROM sessions WHERE id_hash=%s", (id_hash,))
            await _run(conn, f"DELETE FROM sessions WHERE expires_at < {_NOW_TEXT}")  # noqa: S608 - a literal

    async def overview(self, carrier: str | None, today_since: str, usual_since: str) -> list[OverviewRow]:
        """Every school's overview row (optionally one carrier's); times are stored-format UTC."""
        rows = await self._fetch_all(_OVERVIEW, {"carrier": carrier, "today": today_since, "usual": usual_since})
        return [
            OverviewRow(
                summary=SchoolSummary(
                    SchoolRow(r["id"], r["name"], r["carrier"], r["created_at"]),
                    int(r["n"]), r["last_report"], r["last_contact"], int(r["crit"]), int(r["warn"]), int(r["info"]),
                ),
                aps_down=int(r["aps"]),
                cabinets_down=int(r["cabs"]),
                tablets_today=int(r["today"]),
                tablets_usual=int(r["usual"]),
                agent_version=r["version"],
                max_clock_skew_s=r["skew"],
            )
            for r in rows
        ]  # fmt: skip

    async def get_incident(self, school_id: str, origin: str, agent_id: str, incident_id: str) -> dict[str, Any] | None:
        """One incident row (with its school's ``carrier``), or None."""
        row = await self._fetch_one(
            "SELECT i.*, s.carrier AS carrier FROM incidents i JOIN schools s ON s.id=i.school_id"
            " WHERE i.school_id=%s AND i.origin=%s AND i.agent_id=%s AND i.incident_id=%s",
            (school_id, origin, agent_id, incident_id),
        )
        if row is None:
            return None
        out = incident_of(row)
        out["carrier"] = row["carrier"]
        return out

    async def incident_log(self, school_id: str) -> list[dict[str, Any]]:
        """Every recorded step of a school's incidents, oldest first."""
        rows = await self._fetch_all(
            'SELECT school_id, origin, agent_id, incident_id, at, action, "by", text, source, severity, title'
            " FROM incident_log WHERE school_id=%s ORDER BY at, id",
            (school_id,),
        )
        return [dict(r) for r in rows]

    async def samples(self, school_id: str, since: str) -> list[Sample]:
        """A school's time-series points since ``since``, by series and time."""
        rows = await self._fetch_all(
            "SELECT series, at, value, flag FROM samples WHERE school_id=%s AND at >= %s ORDER BY series, at",
            (school_id, since),
        )
        return [Sample(**r) for r in rows]

    async def staff_steps(self, school_id: str, agent_id: str, since: str, limit: int = 200) -> list[dict[str, Any]]:
        """Central staff's acks and notes on one agent's incidents that are open or resolved at/after ``since``."""
        rows = await self._fetch_all(
            'SELECT l.incident_id, l.action, l."by", l.text, l.at FROM incident_log l JOIN incidents i'
            " ON i.school_id=l.school_id AND i.origin=l.origin AND i.agent_id=l.agent_id"
            " AND i.incident_id=l.incident_id"
            " WHERE l.school_id=%s AND l.origin='agent' AND l.agent_id=%s AND l.source='central'"
            " AND l.action IN ('staff-ack', 'staff-note') AND (i.status='open' OR i.resolved_at >= %s)"
            " ORDER BY l.at DESC, l.id DESC LIMIT %s",  # the same minute: the order they were made in
            (school_id, agent_id, since, limit),
        )
        return [dict(r) for r in reversed(rows)]

    async def claim_alert_deliveries(
        self, now: str, lease_until: str, limit: int, delivery_id: int | None = None
    ) -> list[AlertDelivery]:
        """Lease due messages, oldest first; one waits while an earlier one of its thread is pending or dead.

        ``FOR UPDATE SKIP LOCKED``: a node never waits for, nor takes, a row another node is
        claiming; once committed, the lease keeps it from every other sender.
        """
        async with self._tx() as conn:
            rows = await _all(
                conn,
                f"SELECT {_DELIVERY_COLS_D} FROM alert_deliveries d"  # noqa: S608 - literal column list
                " WHERE d.status='pending' AND d.next_attempt_at<=%s AND (d.lease_until IS NULL OR d.lease_until<=%s)"
                " AND (%s::bigint IS NULL OR d.id=%s)"
                " AND NOT EXISTS (SELECT 1 FROM alert_deliveries e WHERE e.channel=d.channel AND e.thread=d.thread"
                "   AND e.id<d.id AND e.status IN ('pending', 'dead'))"
                " ORDER BY d.next_attempt_at, d.id LIMIT %s FOR UPDATE OF d SKIP LOCKED",
                (now, now, delivery_id, delivery_id, limit),
            )
            claimed = [d for d in map(delivery_of, rows) if d is not None]
            if claimed:
                await _run(
                    conn,
                    "UPDATE alert_deliveries SET lease_until=%s WHERE id = ANY(%s)",
                    (lease_until, [d.id for d in claimed]),
                )
        return claimed

    async def alert_delivered(self, delivery_id: int, at: str, external_ref: str | None) -> None:
        """Mark a message sent; a non-None ``external_ref`` is kept on its thread for the follow-ups."""
        async with self._tx() as conn:
            await _run(
                conn,
                "UPDATE alert_deliveries SET status='sent', sent_at=%s, lease_until=NULL, attempts=attempts+1"
                " WHERE id=%s",
                (at, delivery_id),
            )
            if external_ref is not None:
                await _run(
                    conn,
                    "UPDATE alert_threads SET external_ref=%s WHERE (channel, thread) IN"
                    " (SELECT channel, thread FROM alert_deliveries WHERE id=%s)",
                    (external_ref, delivery_id),
                )

    async def alert_failed(
        self, delivery_id: int, attempts: int, status: str, next_attempt_at: str, error: str
    ) -> None:
        """Record a failed attempt: back to ``pending`` at ``next_attempt_at``, or ``dead``."""
        await self._write(
            "UPDATE alert_deliveries SET attempts=%s, status=%s, next_attempt_at=%s, last_error=%s, lease_until=NULL"
            " WHERE id=%s",
            (attempts, status, next_attempt_at, error[:500], delivery_id),
        )

    async def alert_thread_ref(self, channel: str, thread: str) -> str | None:
        """The channel's reference for the thread's first message (a Zammad ticket id), or None."""
        row = await self._fetch_one(
            "SELECT external_ref FROM alert_threads WHERE channel=%s AND thread=%s", (channel, thread)
        )
        return None if row is None else row["external_ref"]

    async def list_alert_deliveries(self, status: str | None, limit: int = 200) -> list[AlertDelivery]:
        """Messages of one status (None: every status), newest first."""
        rows = await self._fetch_all(
            f"SELECT {_DELIVERY_COLS} FROM alert_deliveries WHERE %s::text IS NULL OR status=%s"  # noqa: S608
            " ORDER BY id DESC LIMIT %s",
            (status, status, limit),
        )
        return [d for d in map(delivery_of, rows) if d is not None]

    async def requeue_alert_delivery(self, delivery_id: int, at: str) -> AlertDelivery | None:
        """A dead message back to pending with no attempts, due at ``at``; None when it is not dead."""
        row = await self._fetch_one(
            "UPDATE alert_deliveries SET status='pending', attempts=0, next_attempt_at=%s, lease_until=NULL"  # noqa: S608
            f" WHERE id=%s AND status='dead' RETURNING {_DELIVERY_COLS}",  # a literal column list
            (at, delivery_id),
        )
        return delivery_of(row)

    # ------------------------------------------------------------------ shared failure limits

    async def count_failures(self, scope: str, source: str, since: str) -> int:
        """Failed attempts of one source in one scope at or after ``since``."""
        row = await self._fetch_one(
            "SELECT count(*) AS n FROM failures WHERE scope=%s AND source=%s AND at>=%s", (scope, source, since)
        )
        return 0 if row is None else int(row["n"])

    async def add_failure(self, scope: str, source: str, at: str, forget_before: str) -> None:
        """Record a failed attempt; the scope's attempts before ``forget_before`` are deleted."""
        async with self._tx() as conn:
            await _run(conn, "DELETE FROM failures WHERE scope=%s AND at<%s", (scope, forget_before))
            await _run(conn, "INSERT INTO failures (scope, source, at) VALUES (%s, %s, %s)", (scope, source, at))

"""Central's PostgreSQL schema steps: the SQLite steps of ``migrations.py`` in PostgreSQL's dialect.

Same numbers, same names, the same ``schema_migrations`` bookkeeping: a step added to one
file is added to the other (a test compares the two lists). Types map TEXT → text (times
stay fixed-width UTC text, so they sort and compare exactly as on SQLite), INTEGER →
bigint, REAL → double precision, BLOB → bytea; AUTOINCREMENT becomes an identity column,
and ``incident_log`` gets one for the insertion order SQLite gives by ``rowid``.

Two nodes starting at once apply each step once: the runner holds a transaction-level
advisory lock while it reads the version and applies a step. A database whose newest step
is beyond what this code knows is refused, never touched.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import psycopg
from psycopg.rows import DictRow

from base.errors import DatabaseError, SchemaTooNewError

log = logging.getLogger(__name__)

# Any constant both nodes agree on; pg_advisory_xact_lock takes a bigint.
_MIGRATION_LOCK = 0x5C4017_0001


@dataclass(frozen=True, slots=True)
class PgMigration:
    """One numbered schema step as plain statements, run in one transaction."""

    version: int
    name: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[PgMigration, ...] = (
    PgMigration(
        1,
        "initial schema",
        (
            """CREATE TABLE schools (
                id text PRIMARY KEY, name text NOT NULL, carrier text NOT NULL, created_at text NOT NULL)""",
            "CREATE INDEX schools_carrier ON schools(carrier)",
            """CREATE TABLE enroll_codes (
                code_hash text PRIMARY KEY, school_id text NOT NULL REFERENCES schools(id),
                created_at text NOT NULL, expires_at text NOT NULL, used_at text, used_by text)""",
            """CREATE TABLE agents (
                agent_id text PRIMARY KEY, school_id text NOT NULL REFERENCES schools(id),
                keyid text NOT NULL UNIQUE, public_key bytea NOT NULL, hostname text NOT NULL,
                version text NOT NULL, enrolled_at text NOT NULL, revoked_at text,
                acked_seq bigint NOT NULL DEFAULT 0, last_report_at text, clock_skew_s double precision,
                state_seq bigint NOT NULL DEFAULT -1, state_made_at text, state_json text,
                devices_seq bigint NOT NULL DEFAULT -1,
                snapshot_json text, snapshot_seq bigint NOT NULL DEFAULT -1, snapshot_at text)""",
            "CREATE INDEX agents_school ON agents(school_id)",
            """CREATE TABLE events (
                agent_id text NOT NULL, seq bigint NOT NULL, school_id text NOT NULL, kind text NOT NULL,
                at text NOT NULL, digest text NOT NULL, body text NOT NULL, received_at text NOT NULL,
                PRIMARY KEY (agent_id, seq))""",
            """CREATE TABLE incidents (
                school_id text NOT NULL, origin text NOT NULL, agent_id text NOT NULL, incident_id text NOT NULL,
                key text, category text NOT NULL, severity text NOT NULL, title text NOT NULL, subject text,
                status text NOT NULL, status_seq bigint NOT NULL, opened_at text, resolved_at text,
                acknowledged_by text, acknowledged_at text, notes text NOT NULL DEFAULT '[]',
                updated_at text NOT NULL,
                PRIMARY KEY (school_id, origin, agent_id, incident_id))""",
            "CREATE INDEX incidents_status ON incidents(status, school_id)",
            "CREATE INDEX incidents_agent ON incidents(agent_id, status)",
            "CREATE INDEX incidents_updated ON incidents(updated_at)",
            """CREATE TABLE devices (
                school_id text NOT NULL, agent_id text NOT NULL, device_id text NOT NULL, class text NOT NULL,
                state text NOT NULL, data text NOT NULL, seq bigint NOT NULL, last_seen_at text,
                updated_at text NOT NULL, PRIMARY KEY (school_id, agent_id, device_id))""",
            "CREATE INDEX devices_agent ON devices(agent_id)",
            """CREATE TABLE api_tokens (
                token_hash text PRIMARY KEY, name text NOT NULL, carrier text, created_at text NOT NULL)""",
        ),
    ),
    PgMigration(
        2,
        "revocations and the issued-token log",
        (
            "ALTER TABLE agents ADD COLUMN revoked_by text",
            "ALTER TABLE api_tokens ADD COLUMN revoked_at text",
            "ALTER TABLE api_tokens ADD COLUMN revoked_by text",
            """CREATE TABLE issued_tokens (
                jti text PRIMARY KEY, technician text NOT NULL, scope text NOT NULL, issued_at text NOT NULL,
                expires_at text NOT NULL, issued_by text NOT NULL, revoked_at text, revoked_by text)""",
            "CREATE INDEX issued_tokens_expires ON issued_tokens(expires_at)",
        ),
    ),
    PgMigration(
        3,
        "dashboard: staff users and sessions, incident codes and history, power and device samples",
        (
            "ALTER TABLE incidents ADD COLUMN code text",
            "ALTER TABLE incidents ADD COLUMN params text",
            """CREATE TABLE users (
                name text PRIMARY KEY, role text NOT NULL, carrier text, password_hash text NOT NULL,
                created_at text NOT NULL, updated_at text NOT NULL)""",
            """CREATE TABLE sessions (
                id_hash text PRIMARY KEY, user_name text NOT NULL, csrf text NOT NULL,
                created_at text NOT NULL, expires_at text NOT NULL)""",
            "CREATE INDEX sessions_user ON sessions(user_name)",
            """CREATE TABLE incident_log (
                id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                school_id text NOT NULL, origin text NOT NULL, agent_id text NOT NULL, incident_id text NOT NULL,
                at text NOT NULL, action text NOT NULL, "by" text, text text, source text NOT NULL,
                severity text, title text)""",
            "CREATE INDEX incident_log_incident ON incident_log(school_id, origin, agent_id, incident_id, at)",
            """CREATE TABLE samples (
                school_id text NOT NULL, series text NOT NULL, at text NOT NULL, agent_id text NOT NULL,
                value double precision, flag bigint, PRIMARY KEY (school_id, series, at, agent_id))""",
            "CREATE INDEX incidents_open_counts ON incidents(status, school_id, severity, key)",
            "CREATE INDEX devices_class_seen ON devices(class, school_id, last_seen_at)",
        ),
    ),
    PgMigration(
        4,
        "alert routing: threads and the delivery outbox",
        (
            """CREATE TABLE alert_threads (
                channel text NOT NULL, thread text NOT NULL, school_id text, origin text, agent_id text,
                incident_id text, cause text NOT NULL, mode text NOT NULL, state text NOT NULL,
                acked boolean NOT NULL DEFAULT false, external_ref text, created_at text NOT NULL,
                PRIMARY KEY (channel, thread))""",
            "CREATE INDEX alert_threads_open ON alert_threads(state)",
            "CREATE INDEX alert_threads_thread ON alert_threads(thread, state)",
            "CREATE INDEX alert_threads_cause ON alert_threads(channel, cause, created_at)",
            """CREATE TABLE alert_deliveries (
                id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, channel text NOT NULL, thread text NOT NULL,
                kind text NOT NULL, school_id text, payload text NOT NULL, status text NOT NULL,
                attempts bigint NOT NULL DEFAULT 0, next_attempt_at text NOT NULL, lease_until text,
                last_error text, created_at text NOT NULL, sent_at text,
                UNIQUE (channel, thread, kind))""",
            "CREATE INDEX alert_deliveries_due ON alert_deliveries(status, next_attempt_at)",
        ),
    ),
    PgMigration(
        5,
        "signed agent configuration: layers per carrier and school, what each agent runs; retired agent keys",
        (
            """CREATE TABLE config_layers (
                version bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, scope text NOT NULL,
                toml text NOT NULL, settings text NOT NULL, created_at text NOT NULL, created_by text NOT NULL)""",
            "CREATE INDEX config_layers_scope ON config_layers(scope, version)",
            "ALTER TABLE agents ADD COLUMN config_version bigint",
            "ALTER TABLE agents ADD COLUMN config_overrides text",
            """CREATE TABLE retired_keys (
                keyid text PRIMARY KEY, agent_id text NOT NULL, public_key bytea NOT NULL,
                successor_keyid text NOT NULL, retired_at text NOT NULL)""",
            "CREATE INDEX retired_keys_agent ON retired_keys(agent_id)",
        ),
    ),
    PgMigration(
        6,
        "failure limits shared by every central node",
        (
            "CREATE TABLE failures (scope text NOT NULL, source text NOT NULL, at text NOT NULL)",
            "CREATE INDEX failures_source ON failures(scope, source, at)",
            "CREATE INDEX failures_at ON failures(scope, at)",
        ),
    ),
    PgMigration(
        7,
        "device counts kept per school",
        (
            "ALTER TABLE schools ADD COLUMN devices_gen bigint NOT NULL DEFAULT 0",
            "ALTER TABLE schools ADD COLUMN counts_gen bigint NOT NULL DEFAULT -1",
            "ALTER TABLE schools ADD COLUMN counts_json text",
        ),
    ),
)

LATEST = MIGRATIONS[-1].version
BOOKKEEPING = "schema_migrations"


async def schema_version(conn: psycopg.AsyncConnection[DictRow]) -> int:
    """The newest applied step, 0 for an empty database (read without writing)."""
    cur = await conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL AS present")
    row = await cur.fetchone()
    if row is None or not row["present"]:
        return 0
    cur = await conn.execute("SELECT coalesce(max(version), 0) AS version FROM schema_migrations")
    row = await cur.fetchone()
    return 0 if row is None else int(row["version"])


async def run_migrations(conn: psycopg.AsyncConnection[DictRow], where: str) -> int:
    """Apply the missing steps on an autocommit connection; returns the schema version in force.

    Raises SchemaTooNewError for a database of a newer central, DatabaseError (one line
    naming ``where``, never a password) when a step fails; a failed step is rolled back whole.
    """
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version bigint PRIMARY KEY, name text NOT NULL,"
            " applied_at text NOT NULL"
            " DEFAULT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'))"
        )
        current = await schema_version(conn)
    if current > LATEST:
        raise SchemaTooNewError(
            f"database {where} has schema version {current}, newer than this central knows ({LATEST}): "
            "upgrade the central"
        )
    for migration in MIGRATIONS[current:]:
        try:
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
                if await schema_version(conn) >= migration.version:
                    continue
                for statement in migration.statements:
                    await conn.execute(statement)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                    (migration.version, migration.name),
                )
        except psycopg.Error as exc:
            raise DatabaseError(
                f"database {where}: migration {migration.version} ({migration.name}) failed: {exc}"
            ) from None
        log.info("database %s migrated to schema version %d (%s)", where, migration.version, migration.name)
    return max(current, LATEST)

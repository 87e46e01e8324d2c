"""Central's SQLite schema steps, applied by the one runner in ``base.sqlite``.

Each step is a list of statements applied in one transaction together with the row in
``schema_migrations`` that records it. A database whose newest recorded version is beyond
what this code knows is refused: an older central must not write into a newer schema.
"""

from __future__ import annotations

import sqlite3

from base.sqlite import Migration, migrate, statements

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "initial schema",
        statements(
            """CREATE TABLE schools (
                id TEXT PRIMARY KEY, name TEXT NOT NULL, carrier TEXT NOT NULL, created_at TEXT NOT NULL)""",
            "CREATE INDEX schools_carrier ON schools(carrier)",
            """CREATE TABLE enroll_codes (
                code_hash TEXT PRIMARY KEY, school_id TEXT NOT NULL REFERENCES schools(id),
                created_at TEXT NOT NULL, expires_at TEXT NOT NULL, used_at TEXT, used_by TEXT)""",
            """CREATE TABLE agents (
                agent_id TEXT PRIMARY KEY, school_id TEXT NOT NULL REFERENCES schools(id),
                keyid TEXT NOT NULL UNIQUE, public_key BLOB NOT NULL, hostname TEXT NOT NULL,
                version TEXT NOT NULL, enrolled_at TEXT NOT NULL, revoked_at TEXT,
                acked_seq INTEGER NOT NULL DEFAULT 0, last_report_at TEXT, clock_skew_s REAL,
                state_seq INTEGER NOT NULL DEFAULT -1, state_made_at TEXT, state_json TEXT,
                devices_seq INTEGER NOT NULL DEFAULT -1,
                snapshot_json TEXT, snapshot_seq INTEGER NOT NULL DEFAULT -1, snapshot_at TEXT)""",
            "CREATE INDEX agents_school ON agents(school_id)",
            """CREATE TABLE events (
                agent_id TEXT NOT NULL, seq INTEGER NOT NULL, school_id TEXT NOT NULL, kind TEXT NOT NULL,
                at TEXT NOT NULL, digest TEXT NOT NULL, body TEXT NOT NULL, received_at TEXT NOT NULL,
                PRIMARY KEY (agent_id, seq)) WITHOUT ROWID""",
            """CREATE TABLE incidents (
                school_id TEXT NOT NULL, origin TEXT NOT NULL, agent_id TEXT NOT NULL, incident_id TEXT NOT NULL,
                key TEXT, category TEXT NOT NULL, severity TEXT NOT NULL, title TEXT NOT NULL, subject TEXT,
                status TEXT NOT NULL, status_seq INTEGER NOT NULL, opened_at TEXT, resolved_at TEXT,
                acknowledged_by TEXT, acknowledged_at TEXT, notes TEXT NOT NULL DEFAULT '[]',
                updated_at TEXT NOT NULL,
                PRIMARY KEY (school_id, origin, agent_id, incident_id))""",
            "CREATE INDEX incidents_status ON incidents(status, school_id)",
            "CREATE INDEX incidents_agent ON incidents(agent_id, status)",
            "CREATE INDEX incidents_updated ON incidents(updated_at)",
            """CREATE TABLE devices (
                school_id TEXT NOT NULL, agent_id TEXT NOT NULL, device_id TEXT NOT NULL, class TEXT NOT NULL,
                state TEXT NOT NULL, data TEXT NOT NULL, seq INTEGER NOT NULL, last_seen_at TEXT,
                updated_at TEXT NOT NULL, PRIMARY KEY (school_id, agent_id, device_id))""",
            "CREATE INDEX devices_agent ON devices(agent_id)",
            """CREATE TABLE api_tokens (
                token_hash TEXT PRIMARY KEY, name TEXT NOT NULL, carrier TEXT, created_at TEXT NOT NULL)""",
        ),
    ),
    Migration(
        2,
        "revocations and the issued-token log",
        statements(
            # Who revoked an agent or a read-API token, so the school's page can say so.
            "ALTER TABLE agents ADD COLUMN revoked_by TEXT",
            "ALTER TABLE api_tokens ADD COLUMN revoked_at TEXT",
            "ALTER TABLE api_tokens ADD COLUMN revoked_by TEXT",
            # Every technician token issued: who, scope, expiry, jti; never the token itself.
            """CREATE TABLE issued_tokens (
                jti TEXT PRIMARY KEY, technician TEXT NOT NULL, scope TEXT NOT NULL, issued_at TEXT NOT NULL,
                expires_at TEXT NOT NULL, issued_by TEXT NOT NULL, revoked_at TEXT, revoked_by TEXT)""",
            "CREATE INDEX issued_tokens_expires ON issued_tokens(expires_at)",
        ),
    ),
    Migration(
        3,
        "dashboard: staff users and sessions, incident codes and history, power and device samples",
        statements(
            # The title code and params an agent sent (protocol.messages renders them per reader).
            "ALTER TABLE incidents ADD COLUMN code TEXT",
            "ALTER TABLE incidents ADD COLUMN params TEXT",
            """CREATE TABLE users (
                name TEXT PRIMARY KEY, role TEXT NOT NULL, carrier TEXT, password_hash TEXT NOT NULL,
                created_at TEXT NOT NULL, updated_at TEXT NOT NULL)""",
            # Server-side sessions: the cookie holds a random id, the table only its SHA-256.
            """CREATE TABLE sessions (
                id_hash TEXT PRIMARY KEY, user_name TEXT NOT NULL, csrf TEXT NOT NULL,
                created_at TEXT NOT NULL, expires_at TEXT NOT NULL)""",
            "CREATE INDEX sessions_user ON sessions(user_name)",
            # Every step of an incident (opened, updated, acknowledged, note, resolved), from the
            # agent's history or from central staff, for the school detail's timeline.
            """CREATE TABLE incident_log (
                school_id TEXT NOT NULL, origin TEXT NOT NULL, agent_id TEXT NOT NULL, incident_id TEXT NOT NULL,
                at TEXT NOT NULL, action TEXT NOT NULL, by TEXT, text TEXT, source TEXT NOT NULL,
                severity TEXT, title TEXT)""",
            "CREATE INDEX incident_log_incident ON incident_log(school_id, origin, agent_id, incident_id, at)",
            # Time series from the agents' snapshots: cabinet power, device counts by class.
            """CREATE TABLE samples (
                school_id TEXT NOT NULL, series TEXT NOT NULL, at TEXT NOT NULL, agent_id TEXT NOT NULL,
                value REAL, flag INTEGER, PRIMARY KEY (school_id, series, at, agent_id)) WITHOUT ROWID""",
            # Covering indexes for the overview's grouped counts (2,000 schools: one index scan each).
            "CREATE INDEX incidents_open_counts ON incidents(status, school_id, severity, key)",
            "CREATE INDEX devices_class_seen ON devices(class, school_id, last_seen_at)",
        ),
    ),
    Migration(
        4,
        "alert routing: threads and the delivery outbox",
        statements(
            # One thread per (channel, incident episode) or per digest: what was said there, and
            # the helpdesk's ticket id once it is known. The primary key is the deduplication.
            """CREATE TABLE alert_threads (
                channel TEXT NOT NULL, thread TEXT NOT NULL, school_id TEXT, origin TEXT, agent_id TEXT,
                incident_id TEXT, cause TEXT NOT NULL, mode TEXT NOT NULL, state TEXT NOT NULL,
                acked INTEGER NOT NULL DEFAULT 0, external_ref TEXT, created_at TEXT NOT NULL,
                PRIMARY KEY (channel, thread))""",
            "CREATE INDEX alert_threads_open ON alert_threads(state)",
            "CREATE INDEX alert_threads_thread ON alert_threads(thread, state)",
            "CREATE INDEX alert_threads_cause ON alert_threads(channel, cause, created_at)",
            # The outbox: one row per message to send, at most one of each kind per thread.
            """CREATE TABLE alert_deliveries (
                id INTEGER PRIMARY KEY AUTOINCREMENT, channel TEXT NOT NULL, thread TEXT NOT NULL,
                kind TEXT NOT NULL, school_id TEXT, payload TEXT NOT NULL, status TEXT NOT NULL,
                attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at TEXT NOT NULL, lease_until TEXT,
                last_error TEXT, created_at TEXT NOT NULL, sent_at TEXT,
                UNIQUE (channel, thread, kind))""",
            "CREATE INDEX alert_deliveries_due ON alert_deliveries(status, next_attempt_at)",
        ),
    ),
    Migration(
        5,
        "signed agent configuration: layers per carrier and school, what each agent runs; retired agent keys",
        statements(
            # Every version of every layer is kept (`config history`); AUTOINCREMENT so that a
            # version number is never reused, even after the newest row was deleted by hand.
            """CREATE TABLE config_layers (
                version INTEGER PRIMARY KEY AUTOINCREMENT, scope TEXT NOT NULL, toml TEXT NOT NULL,
                settings TEXT NOT NULL, created_at TEXT NOT NULL, created_by TEXT NOT NULL)""",
            "CREATE INDEX config_layers_scope ON config_layers(scope, version)",
            # From the agent's newest state: the configuration version it runs and its local overrides.
            "ALTER TABLE agents ADD COLUMN config_version INTEGER",
            "ALTER TABLE agents ADD COLUMN config_overrides TEXT",
            # Keys an agent rotated away from (`schulwart-agent rotate-key`): never accepted again,
            # never enrolled again; the successor makes a repeated announcement idempotent.
            """CREATE TABLE retired_keys (
                keyid TEXT PRIMARY KEY, agent_id TEXT NOT NULL, public_key BLOB NOT NULL,
                successor_keyid TEXT NOT NULL, retired_at TEXT NOT NULL)""",
            "CREATE INDEX retired_keys_agent ON retired_keys(agent_id)",
        ),
    ),
    Migration(
        6,
        "failure limits shared by every central node",
        statements(
            # Wrong enrollment codes and logins per source, counted across nodes; pruned to one window.
            "CREATE TABLE failures (scope TEXT NOT NULL, source TEXT NOT NULL, at TEXT NOT NULL)",
            "CREATE INDEX failures_source ON failures(scope, source, at)",
            "CREATE INDEX failures_at ON failures(scope, at)",
        ),
    ),
    Migration(
        7,
        "device counts kept per school",
        statements(
            # devices_gen moves whenever a school's present devices by class may have changed; the
            # counts are kept with the generation they were made at (aggregate._count_samples).
            "ALTER TABLE schools ADD COLUMN devices_gen INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE schools ADD COLUMN counts_gen INTEGER NOT NULL DEFAULT -1",
            "ALTER TABLE schools ADD COLUMN counts_json TEXT",
        ),
    ),
)

LATEST = MIGRATIONS[-1].version


def run_migrations(conn: sqlite3.Connection, path: str) -> int:
    """Apply the missing steps (the connection is in autocommit mode); returns the version.

    Raises SchemaTooNewError for a database from a newer central, DatabaseError when a step fails.
    """
    return migrate(conn, MIGRATIONS, path=path, program="central")

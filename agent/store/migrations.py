"""The agent's schema steps, applied by the one runner in ``base.sqlite``.

Never drop-and-recreate: every step keeps the rows that are there, so the outbox survives
an upgrade of the agent. Append new steps at the end; never edit old ones.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from base.sqlite import Migration, migrate

if TYPE_CHECKING:
    import sqlite_utils

log = logging.getLogger(__name__)


def m001_initial(db: sqlite_utils.Database) -> None:
    """Settings, outbox with its counters, inventory, incidents."""
    db.table("settings").create({"key": str, "value": str}, pk="key", not_null={"value"})
    db.table("outbox").create(
        {"seq": int, "at": str, "kind": str, "data": str, "size": int, "created": float, "thinned": int},
        pk="seq",
        not_null={"at", "kind", "data", "size", "created", "thinned"},
        defaults={"thinned": 0},
    )
    # One row: the last sequence handed out, the highest acknowledged by central, and the
    # highest ever put on the wire (thinning must not rewrite what central may hold).
    db.execute(
        "CREATE TABLE outbox_state (id INTEGER PRIMARY KEY CHECK (id = 1), last_seq INTEGER NOT NULL,"
        " acked_seq INTEGER NOT NULL, sent_seq INTEGER NOT NULL)"
    )
    db.execute("INSERT INTO outbox_state (id, last_seq, acked_seq, sent_seq) VALUES (1, 0, 0, 0)")
    db.table("inventory").create(
        {
            "id": str,
            "device_class": str,
            "name": str,
            "model": str,
            "addresses": str,
            "services": str,
            "first_seen": str,
            "last_seen": str,
            "state": str,
            "properties": str,
        },
        pk="id",
    )
    db.table("incidents").create(
        {
            "id": str,
            "key": str,
            "category": str,
            "severity": str,
            "title": str,
            "subject": str,
            "opened_at": str,
            "last_seen": str,
            "resolved_at": str,
            "flap_count": int,
            "acknowledged_at": str,
            "acknowledged_by": str,
            "details": str,
        },
        pk="id",
        not_null={"key", "category", "severity", "title", "opened_at", "last_seen", "flap_count"},
        defaults={"flap_count": 0},
    )
    # At most one open incident per key, enforced by the database itself.
    db.execute("CREATE UNIQUE INDEX incidents_open_key ON incidents(key) WHERE resolved_at IS NULL")


def m002_outbox_kind_index(db: sqlite_utils.Database) -> None:
    """Thinning looks for snapshots and device chatter by kind."""
    db.execute("CREATE INDEX outbox_kind_seq ON outbox(kind, seq)")


def m003_incident_notes(db: sqlite_utils.Database) -> None:
    """Technicians' notes on incidents (the technician API)."""
    db.execute(
        "CREATE TABLE incident_notes (id INTEGER PRIMARY KEY AUTOINCREMENT, incident_id TEXT NOT NULL,"
        " at TEXT NOT NULL, by TEXT, text TEXT NOT NULL)"
    )
    db.execute("CREATE INDEX incident_notes_incident ON incident_notes(incident_id, id)")


def m004_incident_code(db: sqlite_utils.Database) -> None:
    """An incident's title code and params, so that readers render the title in their language."""
    db.execute("ALTER TABLE incidents ADD COLUMN code TEXT")
    db.execute("ALTER TABLE incidents ADD COLUMN params TEXT")


def _on_db(step: Callable[[sqlite_utils.Database], None]) -> Callable[[sqlite3.Connection], None]:
    def run(conn: sqlite3.Connection) -> None:
        # Imported only when a step runs: sqlite-utils and what it pulls in (click, dateutil,
        # pluggy) cost a running agent about 5 MiB, and an up-to-date database needs none of it.
        import sqlite_utils

        step(sqlite_utils.Database(conn))

    return run


MIGRATIONS: tuple[Migration, ...] = tuple(
    Migration(version, step.__name__, _on_db(step))
    for version, step in enumerate(
        (m001_initial, m002_outbox_kind_index, m003_incident_notes, m004_incident_code), start=1
    )
)


def run_migrations(conn: sqlite3.Connection, path: Path) -> int:
    """Bring the agent's database to the newest schema; returns its version.

    Raises SchemaTooNewError (a database from a newer agent) or DatabaseError.
    """
    return migrate(conn, MIGRATIONS, path=path, program="agent")

"""SQLite as both sides use it: one connection per process, WAL, durable commits, one migration runner.

Durability: ``synchronous=FULL`` in WAL mode, so a commit returns only after the WAL is
fsynced. With NORMAL a power cut may roll back the last commits: the agent could then hand
out a sequence number twice for different events, and central could lose a batch it had
already acknowledged. FULL costs one fsync per commit.

Migrations are numbered steps, each applied in one ``BEGIN IMMEDIATE`` transaction together
with the row in ``schema_migrations`` that records it (the pattern of sqlite-utils'
migrations: a list of functions, a table of what ran). Never drop-and-recreate; append new
steps, never edit old ones. A database whose newest recorded step is beyond what the code
knows is refused (:class:`~base.errors.SchemaTooNewError`), never touched.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from base.errors import DatabaseError, SchemaTooNewError
from base.secretfile import ensure_private_dir, ensure_private_file

log = logging.getLogger(__name__)

BOOKKEEPING = "schema_migrations"
# Before schema_migrations was the one table, the agent recorded its steps in "migrations".
_LEGACY_BOOKKEEPING = "migrations"


@dataclass(frozen=True, slots=True)
class Migration:
    """One numbered schema step; ``apply`` runs inside the runner's transaction."""

    version: int
    name: str
    apply: Callable[[sqlite3.Connection], None]


def statements(*sql: str) -> Callable[[sqlite3.Connection], None]:
    """A migration step made of plain SQL statements, run in order."""

    def apply(conn: sqlite3.Connection) -> None:
        for statement in sql:
            conn.execute(statement)

    return apply


def enable_wal(conn: sqlite3.Connection, timeout_s: float = 10.0) -> None:
    """Switch the database to WAL, retrying while another process does the same.

    Changing the journal mode of a new file needs an exclusive lock, and SQLite answers
    BUSY at once there instead of waiting for busy_timeout: two commands started on a
    fresh data dir at the same moment would otherwise fail with "database is locked".
    """
    deadline = time.monotonic() + timeout_s
    delay = 0.01
    while True:
        try:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            mode = None
        if mode == "wal":
            return
        if time.monotonic() >= deadline:
            raise sqlite3.OperationalError(f"cannot switch to WAL (journal mode {mode}): database is locked")
        time.sleep(delay)  # only while opening, before any event-loop work
        delay = min(delay * 2, 0.2)


def connect(path: Path, *, busy_timeout_ms: int = 10_000) -> sqlite3.Connection:
    """Open (creating) a database file with WAL, ``synchronous=FULL`` and foreign keys.

    A missing file and missing parent directories are created owner-only (0600 / 0700).

    The connection is in autocommit mode: it never opens a transaction on its own, callers
    write inside explicit ``BEGIN IMMEDIATE … COMMIT``. Raises DatabaseError naming
    the file when it cannot be opened or set up.
    """
    try:
        # Owner-only from the first byte: the databases hold device names (often pupils' names).
        ensure_private_dir(path.parent)
        ensure_private_file(path)
        conn = sqlite3.connect(
            str(path),
            timeout=busy_timeout_ms / 1000,
            check_same_thread=False,
            isolation_level=None,
        )
    except (OSError, sqlite3.Error) as exc:
        raise DatabaseError(f"cannot open database {path}: {exc}") from None
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        enable_wal(conn)
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise DatabaseError(f"cannot use database {path}: {exc}") from None
    return conn


def _tables(conn: sqlite3.Connection) -> set[str]:
    return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def _ensure_bookkeeping(conn: sqlite3.Connection) -> None:
    """Create schema_migrations; adopt the rows of the agent's older "migrations" table."""
    tables = _tables(conn)
    if BOOKKEEPING in tables:
        return
    conn.execute(
        f"CREATE TABLE {BOOKKEEPING} (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
        " applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')))"
    )
    if _LEGACY_BOOKKEEPING in tables:
        conn.execute(
            f"INSERT INTO {BOOKKEEPING} (version, name, applied_at)"  # noqa: S608 - constant table names
            f" SELECT version, name, applied_at FROM {_LEGACY_BOOKKEEPING}"
        )
        conn.execute(f"DROP TABLE {_LEGACY_BOOKKEEPING}")


def is_disk_full(exc: sqlite3.Error) -> bool:
    """Whether SQLite failed because the disk (or the database's page cap) is full (SQLITE_FULL)."""
    return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or "disk is full" in str(exc)


def schema_version(conn: sqlite3.Connection) -> int:
    """The newest applied step, 0 for an empty database (read without writing)."""
    tables = _tables(conn)
    table = BOOKKEEPING if BOOKKEEPING in tables else _LEGACY_BOOKKEEPING if _LEGACY_BOOKKEEPING in tables else None
    if table is None:
        return 0
    row = conn.execute(f"SELECT max(version) FROM {table}").fetchone()  # noqa: S608 - constant table names
    return int(row[0] or 0)


def _begin(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        raise DatabaseError("migrations need a connection with no open transaction")
    conn.execute("BEGIN IMMEDIATE")


def migrate(conn: sqlite3.Connection, migrations: Sequence[Migration], *, path: Path | str, program: str) -> int:
    """Apply the missing steps, each in its own transaction with its bookkeeping row.

    Two processes starting at once apply each step once: the version is re-read under the
    write lock. Returns the schema version now in force. Raises SchemaTooNewError for a
    database from a newer ``program`` and DatabaseError when a step fails (it is rolled
    back whole).
    """
    versions = [m.version for m in migrations]
    if versions != list(range(1, len(versions) + 1)):
        raise ValueError("migrations must be numbered 1, 2, 3, … without gaps")
    latest = len(migrations)
    _begin(conn)
    try:
        _ensure_bookkeeping(conn)
        current = schema_version(conn)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    if current > latest:
        raise SchemaTooNewError(
            f"database {path} has schema version {current}, newer than this {program} knows ({latest}): "
            f"upgrade the {program}"
        )
    for migration in migrations[current:]:
        _begin(conn)
        try:
            if schema_version(conn) >= migration.version:
                conn.execute("ROLLBACK")
                continue
            migration.apply(conn)
            conn.execute(
                f"INSERT INTO {BOOKKEEPING} (version, name) VALUES (?, ?)",  # noqa: S608
                (migration.version, migration.name),
            )
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            conn.execute("ROLLBACK")
            raise DatabaseError(
                f"database {path}: migration {migration.version} ({migration.name}) failed: {exc}"
            ) from None
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        log.info("database %s migrated to schema version %d (%s)", path, migration.version, migration.name)
    return max(current, latest)

"""The agent's SQLite database: one connection, WAL, durable commits, explicit transactions.

Opened through ``base.sqlite`` (WAL, ``synchronous=FULL``, the one migration runner). FULL
matters here: with NORMAL a power cut may roll back the last commits, and the agent could
then hand out a sequence number a second time for a different event after central already
stored the first one, which central must treat as a forked history. FULL costs one fsync
per commit (about 0.2 ms here, 1-20 ms on SD/eMMC); events come in a few per minute and
bursts are written in one transaction, so the cost does not matter.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from agent.store.migrations import MIGRATIONS, run_migrations
from base.errors import DatabaseError
from base.sqlite import connect, is_disk_full, schema_version

log = logging.getLogger(__name__)

DB_NAME = "agent.db"


class StoreError(DatabaseError):
    """The agent's database cannot be used."""

    reason = "store"


class StoreFullError(StoreError):
    """The disk (or the database) is full: the write was rolled back, nothing half-stored."""

    reason = "store_full"


class Store:
    """One SQLite file; the runner owns the only writing instance (the CLI only reads)."""

    def __init__(self, path: Path, *, migrate: bool = True) -> None:
        self.path = path
        try:
            conn = connect(path, busy_timeout_ms=10_000)
        except DatabaseError as exc:
            raise StoreError(exc.message) from None
        self.conn = conn
        try:
            version = run_migrations(conn, path) if migrate else schema_version(conn)
        except DatabaseError as exc:
            conn.close()
            raise StoreError(exc.message) from None
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise StoreError(f"database {path} cannot be used: {exc}") from None
        if version > len(MIGRATIONS):
            conn.close()
            raise StoreError(
                f"database {path} has schema version {version}, newer than this agent knows "
                f"({len(MIGRATIONS)}): upgrade the agent"
            )
        if version < len(MIGRATIONS):
            conn.close()
            raise StoreError(f"database {path} is at schema version {version}; start the agent once to upgrade it")

    @classmethod
    def open(cls, data_dir: Path, *, migrate: bool = True) -> Store:
        """The store in a data directory."""
        return cls(data_dir / DB_NAME, migrate=migrate)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE … COMMIT; rolled back whole on any error, so nothing is half-stored."""
        if self.conn.in_transaction:
            raise StoreError("nested transaction: the store has one writer and one transaction at a time")
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise StoreError(f"cannot start a write on {self.path}: {exc}") from None
        try:
            yield self.conn
            self.conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            if is_disk_full(exc):
                raise StoreFullError(f"disk full writing {self.path}: write rolled back") from None
            raise
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise

    def query(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> list[sqlite3.Row]:
        """Rows of a read, as tuples."""
        return list(self.conn.execute(sql, params))

    def get_setting(self, key: str, default: Any = None) -> Any:
        """A JSON value from the settings table."""
        row = self.conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    def set_setting(self, conn: sqlite3.Connection, key: str, value: Any) -> None:
        """Set a setting inside the caller's transaction."""
        conn.execute(
            "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, json.dumps(value)),
        )

    def put_setting(self, key: str, value: Any) -> None:
        """Set a setting in a transaction of its own."""
        with self.transaction() as conn:
            self.set_setting(conn, key, value)

    def close(self) -> None:
        """Close the connection (a WAL checkpoint happens on the last close)."""
        self.conn.close()

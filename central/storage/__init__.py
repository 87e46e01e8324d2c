"""Central's storage: one interface (interface.py), SQLite for one node, PostgreSQL for several."""

from __future__ import annotations

from pathlib import Path

from central.config import CentralConfig
from central.storage.interface import Storage, Transaction
from central.storage.sqlite import SqliteStore

__all__ = ["SqliteStore", "Storage", "Transaction", "describe_database", "open_store"]


async def open_store(config: CentralConfig) -> Storage:
    """The store the configuration names (a SQLite file or a PostgreSQL URL), migrated and ready.

    Raises DatabaseError (SchemaTooNewError for a newer central's schema) with one line.
    """
    database = config.database
    if isinstance(database, Path):
        return SqliteStore.open(database)
    # Imported here: psycopg is only needed when the configuration names PostgreSQL.
    from central.storage.postgres import PostgresStore

    return await PostgresStore.open(database)


def describe_database(config: CentralConfig) -> str:
    """The database as logs may name it: the SQLite path, or a PostgreSQL URL without its password."""
    database = config.database
    if isinstance(database, Path):
        return str(database)
    from central.storage.postgres import describe

    return describe(database)

"""Central's storage: one interface (base.py), SQLite now, PostgreSQL later behind it."""

from __future__ import annotations

from central.config import CentralConfig
from central.storage.interface import Storage, Transaction
from central.storage.sqlite import SqliteStore

__all__ = ["SqliteStore", "Storage", "Transaction", "open_store"]


def open_store(config: CentralConfig) -> Storage:
    """The store the configuration names (a SQLite file for now), migrated and ready."""
    return SqliteStore.open(config.db_path)

"""The agent's SQLite store: identity and settings, inventory, incidents, outbox."""

from agent.store.db import DB_NAME, Store, StoreError, StoreFullError

__all__ = ["DB_NAME", "Store", "StoreError", "StoreFullError"]

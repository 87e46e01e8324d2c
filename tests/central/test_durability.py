"""Central's database is opened with synchronous=FULL and WAL: a commit survives a power cut.

A SIGKILL test cannot see a weaker setting (the OS page cache survives a killed process), so the
setting itself is read back from the connection central's store uses.
"""

from __future__ import annotations

from pathlib import Path

from central.storage.sqlite import open_migrated

FULL = 2  # PRAGMA synchronous: 0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA


def test_central_database_is_synchronous_full_in_wal_mode(tmp_path: Path) -> None:
    conn = open_migrated(tmp_path / "central.sqlite3")
    try:
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == FULL
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()

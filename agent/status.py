"""What `status --json` and the technician API's status report: one dict, read from the store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent.identity import load_identity, time_floor
from agent.store import Store
from agent.store.outbox import Outbox
from base.clock import SystemClock


def status_info(directory: Path, store: Store) -> dict[str, Any]:
    """Identity, outbox counters, last sync, open incidents and devices, time floor."""
    identity = load_identity(store)
    stats = Outbox(store, SystemClock()).stats()
    open_count = store.query("SELECT count(*) FROM incidents WHERE resolved_at IS NULL")[0][0]
    return {
        "data_dir": str(directory),
        "enrolled": identity is not None,
        "identity": None
        if identity is None
        else {
            "agent_id": identity.agent_id,
            "school_id": identity.school_id,
            "school_name": identity.school_name,
            "carrier": identity.carrier,
            "central_url": identity.central_url,
            "enrolled_at": identity.enrolled_at,
        },
        "outbox": stats.to_json(),
        "last_sync_at": store.get_setting("last_sync_at"),
        "open_incidents": open_count,
        "devices": store.query("SELECT count(*) FROM inventory")[0][0],
        "time_floor": time_floor(store),
        "clock_offset_s": store.get_setting("clock_offset_s"),
    }

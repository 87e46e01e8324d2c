"""The local inventory: devices the site monitors found, with real names (they stay here).

Each applied change updates the row and puts one device.seen, device.changed or
device.lost event, pseudonymised, in the outbox, in the same transaction.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from agent.monitors.interface import Device, DeviceChange
from agent.privacy import Privacy
from agent.store import Store
from agent.store.outbox import Outbox
from protocol.schema import format_time, parse_time

log = logging.getLogger(__name__)

_COLUMNS = "id, device_class, name, model, addresses, services, first_seen, last_seen, state, properties"


def _row(device: Device) -> tuple[Any, ...]:
    return (
        device.id,
        device.device_class,
        device.name,
        device.model,
        json.dumps(list(device.addresses)),
        json.dumps(list(device.services)),
        format_time(device.first_seen),
        format_time(device.last_seen),
        device.state,
        json.dumps(dict(device.properties)),
    )


def _device(row: Sequence[Any]) -> Device:
    return Device(
        id=row[0],
        device_class=row[1],
        name=row[2],
        model=row[3],
        addresses=tuple(json.loads(row[4] or "[]")),
        services=tuple(json.loads(row[5] or "[]")),
        first_seen=parse_time(row[6]),
        last_seen=parse_time(row[7]),
        state=row[8],
        properties=json.loads(row[9] or "{}"),
    )


def list_devices(store: Store, *, limit: int = 100_000) -> list[Device]:
    """Every device in the inventory, by class and name."""
    rows = store.query(f"SELECT {_COLUMNS} FROM inventory ORDER BY device_class, name LIMIT ?", (limit,))  # noqa: S608
    return [_device(r) for r in rows]


def device_json(device: Device) -> dict[str, Any]:
    """The local view of a device (CLI, technician API)."""
    return {
        "id": device.id,
        "class": device.device_class,
        "name": device.name,
        "model": device.model,
        "addresses": list(device.addresses),
        "services": list(device.services),
        "first_seen": format_time(device.first_seen),
        "last_seen": format_time(device.last_seen),
        "state": device.state,
        "properties": dict(device.properties),
    }


class Inventory:
    """Applies device changes to the store and the outbox."""

    def __init__(self, store: Store, outbox: Outbox, privacy: Privacy, *, school: str = "-") -> None:
        self.store = store
        self.outbox = outbox
        self.privacy = privacy
        self.school = school

    def apply(self, changes: Sequence[DeviceChange]) -> int:
        """Record the changes in one transaction; returns how many events were queued."""
        if not changes:
            return 0
        with self.store.transaction() as conn:
            for change in changes:
                conn.execute(
                    f"INSERT OR REPLACE INTO inventory ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)",  # noqa: S608
                    _row(change.device),
                )
                self.outbox.append_event(conn, self.privacy.device_event(change), change.device.last_seen)
        for change in changes:
            log.info(
                "school=%s device=%s %s class=%s",
                self.school,
                change.device.id,
                change.change,
                change.device.device_class,
            )
        return len(changes)

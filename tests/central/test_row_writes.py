"""Row writes of one transaction, as ingest makes them, on both backends.

PostgreSQL writes a batch's rows in multi-row statements of a few rows each (not one statement
per row); SQLite one ``executemany``. Either way: every row is stored, in the order given (the
timeline's order is its ``id``), and an upsert given the same key twice keeps the last row.
Counts above one statement's rows on PostgreSQL (events 6, devices 5, timeline steps 4).
"""

from __future__ import annotations

from central.storage.interface import EventRow, IncidentStep, Storage
from protocol.keys import generate_private_key

AT = "2024-05-01T00:00:00.000000Z"


def _device(device_id: str, state: str, seq: int) -> dict[str, object]:
    return {"school_id": "gs-a", "agent_id": "ag-1", "device_id": device_id, "class": "tablet", "state": state,
            "data": {"id": device_id, "n": seq}, "seq": seq, "last_seen_at": AT, "updated_at": AT}  # fmt: skip


async def test_a_batch_of_rows_is_stored_whole_in_order_and_the_last_of_one_key_wins(store: Storage) -> None:
    await store.add_school("gs-a", "A", "C", AT)
    async with store.transaction() as tx:
        await tx.add_agent("ag-1", "gs-a", "kid-1", generate_private_key().public_key().public_bytes_raw(), "srv",
                           "0.1.0", AT)  # fmt: skip
    events = [EventRow("ag-1", seq, "gs-a", "device.seen", AT, f"d{seq}", f'{{"seq":{seq}}}') for seq in range(1, 24)]
    devices = [_device(f"dev{n % 3:02d}", "present", n) for n in range(1, 15)]  # each id 4-5 times
    steps = [IncidentStep("gs-a", "agent", "ag-1", "inc-1", AT, f"note-{n}", None, str(n), "warning", "T")
             for n in range(11)]  # fmt: skip
    async with store.transaction() as tx:
        await tx.insert_events(events, AT)
        await tx.put_devices(devices)
        await tx.log_incidents(steps)
    assert await store.get_events("ag-1") == events
    held = {d["device_id"]: d for d in await store.list_devices("gs-a")}
    assert {k: d["seq"] for k, d in held.items()} == {"dev00": 12, "dev01": 13, "dev02": 14}  # the last wins
    assert held["dev01"]["data"] == {"id": "dev01", "n": 13}
    assert [s["text"] for s in await store.incident_log("gs-a")] == [str(n) for n in range(11)]

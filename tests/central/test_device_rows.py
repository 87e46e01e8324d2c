"""What a device row holds after device events, whether they come in one batch or several.

An event without a class keeps the class the device had, a lost device keeps the time it was
last seen, a device first heard of at or before the agent's newest device list is lost.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aiohttp.test_utils import TestClient

from central.storage.interface import Storage
from protocol.schema import make_event

from .conftest import T0, FakeAgent, FakeClock, enroll


def _seen(seq: int, device: str, cls: str, kind: str = "device.seen", minutes: int = 0) -> dict[str, Any]:
    return make_event(seq, T0 + timedelta(minutes=minutes), kind, {"id": device, "class": cls, "model": None})


async def _send(client: TestClient, agent: FakeAgent, *events: dict[str, Any]) -> None:
    resp = await client.post("/v1/reports", data=agent.sign_events(list(events)))
    assert resp.status == 200, await resp.text()


async def _rows(store: Storage, school_id: str) -> dict[str, tuple[str, str, str | None]]:
    return {d["device_id"]: (d["class"], d["state"], d["last_seen_at"]) for d in await store.list_devices(school_id)}


async def test_an_event_without_a_class_keeps_the_class_the_device_had(
    client: TestClient, store: Storage, clock: FakeClock
) -> None:
    agent = await enroll(client, store, clock, "gs-nord")
    await _send(client, agent, _seen(1, "d-a", "tablet"))
    await _send(client, agent, _seen(2, "d-a", "", "device.changed", 1), _seen(3, "d-b", "", minutes=1))
    # In one batch too: the class comes from the batch's earlier event.
    await _send(client, agent, _seen(4, "d-c", "printer", minutes=2), _seen(5, "d-c", "", "device.changed", 3))
    at = [(T0 + timedelta(minutes=m)).strftime("%Y-%m-%dT%H:%M:%S.%fZ") for m in range(4)]
    assert await _rows(store, "gs-nord") == {
        "d-a": ("tablet", "present", at[1]),
        "d-b": ("unknown", "present", at[1]),
        "d-c": ("printer", "present", at[3]),
    }


async def test_a_lost_device_keeps_the_time_it_was_last_seen(
    client: TestClient, store: Storage, clock: FakeClock
) -> None:
    agent = await enroll(client, store, clock, "gs-nord")
    await _send(client, agent, _seen(1, "d-a", "tablet"), _seen(2, "d-b", "tablet", minutes=1))
    await _send(client, agent, _seen(3, "d-a", "tablet", "device.lost", 5))
    await _send(client, agent, _seen(4, "d-b", "tablet", "device.lost", 6), _seen(5, "d-c", "tablet", "device.lost"))
    at = [(T0 + timedelta(minutes=m)).strftime("%Y-%m-%dT%H:%M:%S.%fZ") for m in range(2)]
    assert await _rows(store, "gs-nord") == {
        "d-a": ("tablet", "lost", at[0]),
        "d-b": ("tablet", "lost", at[1]),
        "d-c": ("tablet", "lost", None),  # never seen present
    }


async def test_a_device_first_heard_of_before_the_newest_device_list_is_lost(
    client: TestClient, store: Storage, clock: FakeClock
) -> None:
    agent = await enroll(client, store, clock, "gs-nord")
    # A state made at seq 4 lists d-b only; the events up to 4 arrive after it.
    resp = await client.post("/v1/reports", data=agent.state(4, devices=[{"id": "d-b", "class": "tablet"}]))
    assert resp.status == 200, await resp.text()
    await _send(client, agent, _seen(1, "d-a", "tablet"), _seen(2, "d-b", "printer"), _seen(3, "d-x", "tablet"),
                _seen(4, "d-y", "tablet"), _seen(5, "d-z", "tablet"))  # fmt: skip
    rows = {k: v[:2] for k, v in (await _rows(store, "gs-nord")).items()}
    assert rows == {
        "d-a": ("tablet", "lost"),  # not in the newer list
        "d-b": ("tablet", "present"),  # the list is newer than seq 2
        "d-x": ("tablet", "lost"),
        "d-y": ("tablet", "lost"),
        "d-z": ("tablet", "present"),  # after the list
    }

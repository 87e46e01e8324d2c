"""The hourly device-count points stay right although the counts are kept between snapshots.

Central counts a school's present devices by class only when they may have changed since it last
counted (the school's device generation moved on). Two agents of one school change devices in
every way the view knows (seen, changed class, lost, back again, a state payload that leaves
devices out), in batches with and without a snapshot, within an hour and across hours: after
every snapshot, the hour's points must be what counting every device then gives.
"""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from central.storage.interface import Storage
from protocol.schema import make_event

from .conftest import T0, FakeAgent, FakeClock, enroll

CLASSES = ("tablet", "printer", "ap")


async def _points(store: Storage, school_id: str, hour: str) -> dict[str, float | None]:
    return {s.series: s.value for s in await store.samples(school_id, hour) if s.at == hour}


async def _counted(store: Storage, school_id: str) -> dict[str, float]:
    async with store.transaction() as tx:
        return {f"devices:{cls}": float(n) for cls, n in (await tx.present_device_counts(school_id)).items()}


def _device_event(rng: random.Random, seq: int, at: Any, agent: FakeAgent) -> dict[str, Any]:
    kind = rng.choice(("device.seen", "device.seen", "device.changed", "device.lost"))
    data = {"id": f"d-{agent.agent_id[:4]}-{rng.randrange(4)}", "class": rng.choice(CLASSES), "model": None}
    return make_event(seq, at, kind, data)


@pytest.mark.parametrize("seed", range(4))
async def test_every_snapshot_leaves_the_hours_points_as_a_full_count_gives(
    client: TestClient, store: Storage, clock: FakeClock, seed: int
) -> None:
    rng = random.Random(seed)
    agents = [await enroll(client, store, clock, "gs-nord") for _ in range(2)]
    seqs = dict.fromkeys((a.agent_id for a in agents), 0)
    snapshots = 0
    for step in range(60):
        agent = rng.choice(agents)
        at = T0 + timedelta(minutes=step * 3)  # 60 steps over three hours
        first = seqs[agent.agent_id] + 1
        if rng.random() < 0.1 and first > 1:
            # A state payload made at the last seq that lists some of the agent's devices: the
            # others become lost without any device event.
            listed = [
                {"id": f"d-{agent.agent_id[:4]}-{i}", "class": rng.choice(CLASSES), "model": None} for i in (0, 1)
            ]
            resp = await client.post("/v1/reports", data=agent.state(first - 1, devices=listed, made_at=at))
            assert resp.status == 200, await resp.text()
            continue
        # Only the first agent sends snapshots, so that every point is its own (points are kept per
        # agent); the second one's device changes count as much.
        if agent is agents[0]:
            events = [_device_event(rng, first + i, at, agent) for i in range(rng.randrange(0, 4))]
            snapshot = rng.random() < 0.5 or not events
        else:
            events, snapshot = [_device_event(rng, first + i, at, agent) for i in range(rng.randrange(1, 4))], False
        if snapshot:
            events.append(make_event(first + len(events), at, "health.snapshot", {"host": {"load": step}}))
        resp = await client.post("/v1/reports", data=agent.sign_events(events))
        assert resp.status == 200, await resp.text()
        seqs[agent.agent_id] = events[-1]["seq"]
        if snapshot:
            snapshots += 1
            hour = at.strftime("%Y-%m-%dT%H:00:00.000000Z")
            expected = await _counted(store, "gs-nord")
            held = await _points(store, "gs-nord", hour)
            assert {k: held.get(k) for k in expected} == expected, (step, hour)
    assert snapshots >= 8


async def test_devices_that_appear_and_leave_within_the_hour_move_its_point(
    client: TestClient, store: Storage, clock: FakeClock
) -> None:
    agent = await enroll(client, store, clock, "gs-nord")
    hour = T0.strftime("%Y-%m-%dT%H:00:00.000000Z")

    def seen(seq: int, device: str, cls: str = "tablet", kind: str = "device.seen") -> dict[str, Any]:
        return make_event(seq, T0 + timedelta(minutes=seq), kind, {"id": device, "class": cls, "model": None})

    def snap(seq: int) -> dict[str, Any]:
        return make_event(seq, T0 + timedelta(minutes=seq), "health.snapshot", {"host": {}})

    batches = [
        ([seen(1, "d-a"), seen(2, "d-b"), snap(3)], {"devices:tablet": 2.0}),
        ([seen(4, "d-c")], {"devices:tablet": 2.0}),  # no snapshot: the point stays
        ([snap(5)], {"devices:tablet": 3.0}),  # the device seen between snapshots counts now
        ([seen(6, "d-a", kind="device.lost"), seen(7, "d-b", "printer", "device.changed"), snap(8)],
         {"devices:tablet": 1.0, "devices:printer": 1.0}),
        ([seen(9, "d-a"), seen(10, "d-a")], {"devices:tablet": 1.0, "devices:printer": 1.0}),
        ([snap(11)], {"devices:tablet": 2.0, "devices:printer": 1.0}),  # back from lost
        ([seen(12, "d-c"), snap(13)], {"devices:tablet": 2.0, "devices:printer": 1.0}),  # nothing moved
    ]  # fmt: skip
    for events, points in batches:
        resp = await client.post("/v1/reports", data=agent.sign_events(events))
        assert resp.status == 200, await resp.text()
        assert await _points(store, "gs-nord", hour) == points, events[-1]["seq"]

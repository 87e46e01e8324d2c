"""A batch is folded into the current view at once: the rows must be those of one event at a time.

Two agents of one school send the same history, one as a single batch and one event per batch;
afterwards every device row, incident row, timeline step, snapshot and sample must agree. The
histories are random over a few devices and incidents, so that one batch touches the same
device or incident many times, in every order of kinds (seen after lost, resolved before opened,
notes on unknown incidents, ...), with and without a newer state payload sent first.
"""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from central.storage.interface import Storage
from protocol.schema import make_event

from .conftest import T0, FakeAgent, FakeClock, enroll, incident

DEVICES = ("d-a", "d-b", "d-c")
INCIDENTS = ("i-1", "i-2", "i-3")


def _history(seed: int, length: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for seq in range(1, length + 1):
        # Times go back and forth: the newest seq decides, never the newest time.
        at = T0 + timedelta(seconds=seq * 7 % 50, microseconds=rng.choice((0, 250_000)))
        pick = rng.random()
        if pick < 0.15:
            cabinets = {"cabinets": {"c1": {"power_w": rng.choice((0.2, 55.0)), "in_window": True}}}
            out.append(make_event(seq, at, "health.snapshot", {"host": {"load": seq}, "cabinets": cabinets}))
        elif pick < 0.55:
            kind = rng.choice(("device.seen", "device.changed", "device.lost"))
            # An empty class keeps the class the device had (or "unknown"): such a row is folded on
            # the one before it, like a lost device's, not written from its last event alone.
            data = {"id": rng.choice(DEVICES), "class": rng.choice(("tablet", "printer", "")), "model": None}
            if rng.random() < 0.5:
                data["state"] = rng.choice(("present", "asleep"))
            out.append(make_event(seq, at, kind, data))
        else:
            incident_id = rng.choice(INCIDENTS)
            kind = rng.choice(
                ("incident.opened", "incident.updated", "incident.resolved", "incident.acknowledged", "note.added")
            )
            data: dict[str, Any]
            if kind == "incident.opened":
                data = incident(incident_id, rng.choice(("warning", "critical")))
            elif kind == "incident.updated":
                data = {"id": incident_id, "severity": "critical", "title": f"worse at {seq}"}
            elif kind == "note.added":
                data = {"id": incident_id, "by": "tech", "text": f"note {seq % 4}"}
            elif kind == "incident.acknowledged":
                data = {"id": incident_id, "by": f"tech{seq}"}
            else:
                data = {"id": incident_id}
            out.append(make_event(seq, at, kind, data))
    return out


async def _view(store: Storage, agent: FakeAgent) -> dict[str, Any]:
    """Everything the current view holds of one agent, with its id taken out."""

    def strip(row: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in row.items() if k not in ("agent_id", "school_id", "carrier")}

    devices = [strip(d) for d in await store.list_devices(agent.school_id) if d["agent_id"] == agent.agent_id]
    async with store.transaction() as tx:
        held = await tx.get_incidents(agent.school_id, "agent", agent.agent_id, INCIDENTS)
    incidents = {k: strip(v) for k, v in held.items()}
    timeline = [strip(s) for s in await store.incident_log(agent.school_id) if s["agent_id"] == agent.agent_id]
    # Device counts are sampled once per batch, after it (as before batches were folded at once),
    # so they differ between one batch and sixty by design; cabinet power comes from each snapshot.
    samples = [s for s in await store.samples(agent.school_id, T0.strftime("%Y")) if s.series.startswith("cabinet:")]
    return {
        "devices": sorted(devices, key=lambda d: d["device_id"]),
        "incidents": incidents,
        "timeline": timeline,
        "snapshot": await store.agent_snapshot(agent.agent_id),
        "samples": samples,
    }


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("state_first", [False, True])
async def test_one_batch_folds_to_the_rows_of_one_event_at_a_time(
    client: TestClient, store: Storage, clock: FakeClock, seed: int, state_first: bool
) -> None:
    events = _history(seed, 60)
    whole, single = await enroll(client, store, clock, "gs-nord"), await enroll(client, store, clock, "gs-sued")
    if state_first:
        # A state made at seq 20 that lists one device and one incident: history up to 20 must
        # not undo it, and what it leaves out counts as lost or resolved.
        for agent in (whole, single):
            state = agent.state(20, [incident("i-2")], devices=[{"id": "d-b", "class": "tablet", "model": None}])
            resp = await client.post("/v1/reports", data=state)
            assert resp.status == 200, await resp.text()
    resp = await client.post("/v1/reports", data=whole.sign_events(events))
    assert (resp.status, await resp.json()) == (200, {"acked_through": 60})
    for event in events:
        resp = await client.post("/v1/reports", data=single.sign_events([event]))
        assert resp.status == 200, await resp.text()
    batched, one_by_one = await _view(store, whole), await _view(store, single)
    assert batched["devices"] and batched["timeline"]  # the history did reach the view
    for part in ("devices", "incidents", "timeline", "snapshot", "samples"):
        assert batched[part] == one_by_one[part], part


async def test_a_device_row_holds_the_data_of_its_last_event_in_the_batch(
    client: TestClient, store: Storage, clock: FakeClock
) -> None:
    # Device rows take the data's text from the event's canonical text: each row must get its own
    # device's newest data, unknown members included, whatever the other kinds around it.
    agent = await enroll(client, store, clock, "gs-nord")
    events = [
        make_event(1, T0, "health.snapshot", {"host": {"load": 1}}),
        make_event(2, T0, "device.seen", {"id": "d-a", "class": "tablet", "model": None, "x-new": [1, "ü"]}),
        make_event(3, T0, "incident.opened", incident("i-1")),
        make_event(4, T0, "device.seen", {"id": "d-b", "class": "printer", "model": "P1"}),
        make_event(5, T0, "device.changed", {"id": "d-a", "class": "tablet", "model": "T2", "state": "asleep"}),
        make_event(6, T0, "device.lost", {"id": "d-b", "class": "printer", "model": "P1", "z": {"b": 2, "a": 1}}),
    ]
    resp = await client.post("/v1/reports", data=agent.sign_events(events))
    assert resp.status == 200, await resp.text()
    data = {d["device_id"]: (d["state"], d["data"]) for d in await store.list_devices(agent.school_id)}
    assert data == {
        "d-a": ("asleep", {"id": "d-a", "class": "tablet", "model": "T2", "state": "asleep"}),
        "d-b": ("lost", {"id": "d-b", "class": "printer", "model": "P1", "z": {"b": 2, "a": 1}}),
    }

"""End to end: simulated school, a real `schulwart-agent run`, a real `schulwart-central serve`.

All three run as processes on IPv4 loopback (the agent must reach both the sim and central).
The sim's names carry a per-test tag; the agent may also see other tests' devices on loopback,
so checks look for this school's devices and keys. Skipped while central's CLI is missing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.request import Request, urlopen

import pytest

from tests.agent.procs import AGENT, central_available, run
from tests.simworld import sim_world

pytestmark = [
    pytest.mark.skipif(not central_available(), reason="schulwart-central is not built yet"),
    pytest.mark.timeout(300),
]

def wait_for(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def post(url: str, body: dict[str, Any]) -> None:
    req = Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urlopen(req, timeout=10) as resp:
        assert resp.status == 200


@pytest.fixture
def world(tmp_path: Path, tag: str) -> Iterator[dict[str, Any]]:
    """Central, the sim and an enrolled agent, all running; everything stopped afterwards."""
    with sim_world(tmp_path, tag) as w:
        yield w


def agent_json(world: dict[str, Any], *args: str) -> Any:
    return json.loads(run([AGENT, *args, "--json", "--data-dir", str(world["agent_dir"])]).stdout)


def central_get(world: dict[str, Any], path: str) -> Any:
    req = Request(world["central"] + path, headers={"Authorization": f"Bearer {world['token']}"})
    with urlopen(req, timeout=5) as resp:
        return json.loads(resp.read())


def _items(payload: Any, key: str) -> list[dict[str, Any]]:
    return payload[key] if isinstance(payload, dict) else payload


def open_keys_at_agent(world: dict[str, Any]) -> set[str]:
    return {i["key"] for i in _items(agent_json(world, "incidents"), "incidents")}


def open_prefixes_at_central(world: dict[str, Any]) -> set[str]:
    school = central_get(world, f"/v1/schools/{world['school']}")
    return {i["key"].split(":")[0] for i in school["incidents"] if not i.get("resolved_at")}


def test_sim_agent_central(world: dict[str, Any]) -> None:
    sim = world["sim"]
    want = {d["id"]: d["class"] for d in sim["devices"]}

    def inventoried() -> bool:
        devices = _items(agent_json(world, "devices"), "devices")
        got = {d["id"]: d.get("class") or d.get("device_class") for d in devices if d["id"] in want}
        return got == want

    started = time.monotonic()
    wait_for(inventoried, 20, "the simulated devices in the agent's inventory")
    assert time.monotonic() - started < 20

    def classes_at_central() -> bool:
        devices = central_get(world, f"/v1/schools/{world['school']}")["devices"]
        counts: dict[str, int] = {}
        for device in devices:
            counts[device["class"]] = counts.get(device["class"], 0) + 1
        return all(counts.get(k, 0) >= sum(1 for v in want.values() if v == k) for k in set(want.values()))

    wait_for(classes_at_central, 20, "the devices at central with their classes")

    receiver = next(d for d in sim["devices"] if d["kind"] == "receiver" and d["index"] == 1)
    ap = next(a for a in sim["aps"] if a["index"] == 1)
    faults = {
        "cabinet-no-power:1": "cabinet-no-power:1",
        "ap-down:1": f"ap-down:{ap['mac']}",
        "receiver-gone:1": f"device-missing:{receiver['id']}",
    }
    for fault in faults:
        post(sim["control"] + "/faults", {"fault": fault, "active": True})
    try:
        wait_for(lambda: set(faults.values()) <= open_keys_at_agent(world), 30, "the incidents at the agent")
    except AssertionError:
        raise AssertionError(f"want {sorted(faults.values())}, open: {sorted(open_keys_at_agent(world))}") from None
    prefixes = {key.split(":")[0] for key in faults.values()}
    wait_for(lambda: prefixes <= open_prefixes_at_central(world), 60, "the incidents at central")

    for fault in faults:
        post(sim["control"] + "/faults", {"fault": fault, "active": False})
    wait_for(lambda: not set(faults.values()) & open_keys_at_agent(world), 30, "the incidents to resolve")
    wait_for(lambda: not prefixes & open_prefixes_at_central(world), 60, "the incidents to resolve at central")

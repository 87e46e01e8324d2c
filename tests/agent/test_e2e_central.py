"""End to end over real sockets: this agent against a real `schulwart-central serve` subprocess.

Skipped when central's CLI is not installed. Central's stored events are read from its
SQLite file (read-only) to check "every event exactly once, in order, no gap".
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agent.procs import (
    AGENT,
    CENTRAL,
    Central,
    agent_status,
    central_available,
    drained,
    enroll_agent,
    run,
    start_agent,
    wait_for,
    write_config,
)

pytestmark = [
    pytest.mark.skipif(not central_available(), reason="schulwart-central is not built yet"),
    pytest.mark.timeout(120),
]


@pytest.fixture
def central(tmp_path: Path) -> Iterator[Central]:
    server = Central(tmp_path)
    server.start()
    yield server
    if server.proc is not None:
        server.proc.terminate()


def assert_exactly_once_in_order(central: Central, agent_id: str, last_seq: int) -> list[tuple[int, str, str, str]]:
    events = central.events(agent_id)
    assert [e[0] for e in events] == list(range(1, last_seq + 1)), "gap or extra seq at central"
    bodies = [json.loads(e[3]) for e in events]
    logical = [json.dumps({k: v for k, v in b.items() if k != "seq"}, sort_keys=True) for b in bodies]
    assert len(set(logical)) == len(logical), "the same event stored twice under two seqs"
    ats = [e[2] for e in events]
    assert ats == sorted(ats), "events out of order"
    return events


BAD = """
[agent]
snapshot_interval = 0.5
[sync]
report_interval = 0.3
backoff_max = 0.5
[host]
interval = 0.3
disk_max_percent = 0.1
memory_min_available_percent = 99.99
[incidents]
open_after = 1
resolve_after = 1
"""
GOOD = """
[agent]
snapshot_interval = 600
[sync]
report_interval = 0.3
backoff_max = 0.5
max_bytes_per_s = 0
[host]
interval = 0.3
[incidents]
open_after = 1
resolve_after = 1
"""


def test_outage_then_every_event_arrives_once_in_order(tmp_path: Path, central: Central) -> None:
    data = tmp_path / "agent"
    agent_id = enroll_agent(central, data)
    bad, good = write_config(tmp_path / "bad.toml", BAD), write_config(tmp_path / "good.toml", GOOD)
    agent = start_agent(data, bad, tmp_path / "agent.log")
    wait_for(lambda: central.school()["open_incidents"] >= 2, 20, "incidents at central")
    central.stop()
    time.sleep(1.5)  # snapshots keep coming while central is away
    assert agent.terminate() == 0
    agent = start_agent(data, good, tmp_path / "agent.log")  # the problems are gone: incidents resolve offline
    wait_for(lambda: agent_status(data)["open_incidents"] == 0, 20, "incidents to resolve")
    assert agent_status(data)["outbox"]["depth"] > 0
    central.start()
    wait_for(lambda: drained(data), 30, "the backlog to drain")
    assert agent.terminate() == 0
    last_seq = agent_status(data)["outbox"]["last_seq"]
    events = assert_exactly_once_in_order(central, agent_id, last_seq)
    kinds = [e[1] for e in events]
    assert kinds.count("incident.opened") >= 2 and kinds.count("incident.resolved") == kinds.count("incident.opened")
    school = central.school()
    assert school["agents"][0]["acked_seq"] == last_seq
    assert school["open_incidents"] == 0
    assert "FORK" not in agent.text()


KILL = """
[agent]
snapshot_interval = 0.1
[sync]
report_interval = 0.1
backoff_max = 0.3
max_batch_events = 3
max_bytes_per_s = 6000
[host]
interval = 0.2
disk_max_percent = {disk}
[incidents]
open_after = 1
resolve_after = 1
"""


@pytest.mark.slow  # a kill test: about 30 s
def test_sigkill_during_sync_loses_and_duplicates_nothing(tmp_path: Path, central: Central) -> None:
    data = tmp_path / "agent"
    agent_id = enroll_agent(central, data)
    configs = [write_config(tmp_path / f"kill{i}.toml", KILL.format(disk=d)) for i, d in enumerate((0.1, 99.9))]
    rng = random.Random(4)
    progressed = 0
    for round_ in range(20):
        before = central.school()["agents"][0]["acked_seq"]
        agent = start_agent(data, configs[round_ % 2], tmp_path / "agent.log")
        time.sleep(rng.uniform(0.3, 1.0))
        agent.kill()
        progressed += central.school()["agents"][0]["acked_seq"] > before
    assert progressed >= 10, "the kills did not land during sync"
    final = write_config(tmp_path / "final.toml", GOOD)
    agent = start_agent(data, final, tmp_path / "agent.log")
    wait_for(lambda: drained(data), 40, "the backlog to drain")
    assert agent.terminate() == 0
    last_seq = agent_status(data)["outbox"]["last_seq"]
    events = assert_exactly_once_in_order(central, agent_id, last_seq)
    assert last_seq > 60
    assert {"incident.opened", "incident.resolved", "health.snapshot"} <= {e[1] for e in events}
    assert "FORK" not in agent.text()


def test_export_import_twice_stores_once(tmp_path: Path, central: Central) -> None:
    data = tmp_path / "agent"
    agent_id = enroll_agent(central, data)
    central.stop()  # an offline school: nothing reaches central over the network
    agent = start_agent(data, write_config(tmp_path / "bad.toml", BAD), tmp_path / "agent.log")
    time.sleep(2.0)
    assert agent.terminate() == 0
    status = agent_status(data)
    last_seq = status["outbox"]["last_seq"]
    assert status["outbox"]["acked_seq"] == 0 and last_seq >= 3
    bundle = tmp_path / "school.bundle"
    run([AGENT, "export", "--out", str(bundle), "--data-dir", str(data)])
    for _ in range(2):
        run([CENTRAL, "import", str(bundle), "--data-dir", str(central.dir)])
    central.start()
    assert_exactly_once_in_order(central, agent_id, last_seq)
    # back online, the agent learns central has it all: acknowledged without sending twice
    agent = start_agent(data, write_config(tmp_path / "good.toml", GOOD), tmp_path / "agent.log")
    wait_for(lambda: agent_status(data)["outbox"]["acked_seq"] >= last_seq, 20, "the ack after import")
    wait_for(lambda: drained(data), 20, "the new events to drain")
    assert agent.terminate() == 0
    assert_exactly_once_in_order(central, agent_id, agent_status(data)["outbox"]["last_seq"])

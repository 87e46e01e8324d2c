"""SIGKILL at random points, with real processes: the agent 100 times, central 50 times during ingest.

Central ends holding every event of every agent exactly once, in order, with no gap, and
acknowledges all of it. Slow (a few minutes): ``make test`` runs it after the default suite.
The figures go to stderr (``-s``) for docs/RELIABILITY.md.
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

import pytest

from tests.agent.procs import (
    AGENT,
    Central,
    Proc,
    agent_status,
    central_available,
    drained,
    enroll_agent,
    start_agent,
    wait_for,
    write_config,
)
from tests.agent.test_e2e_central import GOOD, KILL, assert_exactly_once_in_order

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(900),
    pytest.mark.skipif(not central_available(), reason="schulwart-central is not built"),
]

AGENT_KILLS = 100
CENTRAL_KILLS = 50


def _acked(central: Central) -> int:
    return sum(a["acked_seq"] for a in central.school()["agents"])


def test_agent_killed_100_times_at_random_points_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    central = Central(tmp_path)
    central.start()
    try:
        data = tmp_path / "agent"
        agent_id = enroll_agent(central, data)
        configs = [write_config(tmp_path / f"kill{i}.toml", KILL.format(disk=d)) for i, d in enumerate((0.1, 99.9))]
        rng = random.Random(11)
        progressed = 0
        early = 0
        for round_ in range(AGENT_KILLS):
            before = _acked(central)
            agent = Proc([AGENT, "run", "--listen", "127.0.0.1:0", "--data-dir", str(data),
                          "--config", str(configs[round_ % 2])], tmp_path / "agent.log")  # fmt: skip
            if round_ % 5 == 0:  # every fifth kill lands in start-up (opening and migrating the store)
                time.sleep(rng.uniform(0.05, 1.0))
                early += agent.popen.poll() is None and "listening on" not in agent.text()
            else:  # the others while it collects and syncs
                agent.wait_listening(30)
                time.sleep(rng.uniform(0.05, 1.0))
            agent.kill()
            progressed += _acked(central) > before
        agent = start_agent(data, write_config(tmp_path / "final.toml", GOOD), tmp_path / "agent.log")
        wait_for(lambda: drained(data), 60, "the backlog to drain")
        assert agent.terminate() == 0
        last_seq = agent_status(data)["outbox"]["last_seq"]
        assert_exactly_once_in_order(central, agent_id, last_seq)
        assert central.school()["agents"][0]["acked_seq"] == last_seq
        assert progressed >= AGENT_KILLS // 4, f"only {progressed} kills landed while the agent was syncing"
        assert early >= AGENT_KILLS // 10, f"only {early} kills landed in start-up"
        assert "FORK" not in agent.text() and "Traceback" not in (tmp_path / "central.log").read_text()
        print(f"agent: {AGENT_KILLS} SIGKILLs ({early} in start-up, {progressed} during sync), "
              f"{last_seq} events at central exactly once, 0 lost, 0 duplicated", file=sys.stderr)  # fmt: skip
    finally:
        if central.proc is not None:
            central.proc.terminate()


FAST = """
[agent]
snapshot_interval = 0.05
[sync]
report_interval = 0.05
backoff_max = 0.4
max_batch_events = 20
max_bytes_per_s = 0
[host]
interval = 0.1
disk_max_percent = {disk}
[incidents]
open_after = 1
resolve_after = 1
"""


def test_central_killed_50_times_during_ingest_holds_every_event_exactly_once(tmp_path: Path) -> None:
    central = Central(tmp_path)
    central.start()
    agents: list[tuple[Path, str, Proc]] = []
    try:
        for i, disk in enumerate((0.1, 99.9)):  # one agent's disk incident flaps open, the other's stays shut
            data = tmp_path / f"agent{i}"
            agent_id = enroll_agent(central, data)
            config = write_config(tmp_path / f"fast{i}.toml", FAST.format(disk=disk))
            agents.append((data, agent_id, start_agent(data, config, tmp_path / f"agent{i}.log")))
        rng = random.Random(50)
        progressed = 0
        for _ in range(CENTRAL_KILLS):
            before = _acked(central)
            time.sleep(rng.uniform(0.3, 1.5))  # ingest goes on; the kill lands wherever it lands
            assert central.proc is not None
            central.proc.kill()
            central.proc = None
            central.start()  # the same port: the agents' retries find it again
            progressed += _acked(central) > before
        for _data, _agent_id, proc in agents:
            assert proc.terminate() == 0  # the agents kept running through every kill
        total = 0
        for data, agent_id, _proc in agents:
            final = start_agent(data, write_config(tmp_path / "final.toml", GOOD), tmp_path / "final.log")
            wait_for(lambda d=data: drained(d), 60, "the backlog to drain")  # type: ignore[misc]
            assert final.terminate() == 0
            last_seq = agent_status(data)["outbox"]["last_seq"]
            assert_exactly_once_in_order(central, agent_id, last_seq)
            total += last_seq
        acked = {a["agent_id"]: a["acked_seq"] for a in central.school()["agents"]}
        assert acked == {agent_id: agent_status(data)["outbox"]["last_seq"] for data, agent_id, _ in agents}
        assert progressed >= CENTRAL_KILLS // 2, f"only {progressed} of the kills landed during ingest"
        print(f"central: {CENTRAL_KILLS} SIGKILLs during ingest ({progressed} between acks), {total} events "
              "from 2 agents exactly once, 0 lost, 0 duplicated", file=sys.stderr)  # fmt: skip
    finally:
        for _data, _agent_id, proc in agents:
            if proc.popen.poll() is None:
                proc.kill()
        if central.proc is not None:
            central.proc.terminate()

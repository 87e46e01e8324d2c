"""Events dropped on a full disk are counted and the count reaches central in the state payload."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent.config import SyncSection
from agent.incidents.engine import IncidentEngine
from agent.live import LiveState
from agent.monitors.interface import MonitorReport, Signal
from agent.privacy import Privacy
from agent.store import Store
from agent.store.inventory import Inventory
from agent.store.outbox import Outbox
from agent.sync.client import SyncClient
from base.clock import FakeClock
from protocol.envelope import verify
from protocol.keys import keyid
from protocol.schema import STATE_TYPE, parse_state
from tests.agent.test_sync_outcomes import AGENT_KEY, ScriptedTransport, _identity


class States(ScriptedTransport):
    """Keeps every state payload it was sent."""

    def __init__(self) -> None:
        super().__init__()
        self.states: list[Any] = []

    async def post(self, envelope: bytes) -> Any:
        verified = verify(envelope, {keyid(AGENT_KEY): AGENT_KEY.public_key()}, [STATE_TYPE, *self._types()])
        if verified.payload_type == STATE_TYPE:
            self.states.append(parse_state(verified.payload))
        return await super().post(envelope)

    @staticmethod
    def _types() -> list[str]:
        from protocol.schema import REPORT_TYPE

        return [REPORT_TYPE]


class _Monitor:
    name = "fake"
    interval_s = 1.0


def _live(store: Store, outbox: Outbox, engine: IncidentEngine, clock: FakeClock) -> LiveState:
    privacy = Privacy(b"k" * 32)
    return LiveState(
        store, outbox, engine, Inventory(store, privacy, clock), privacy, clock, school="s1", wake=lambda: None
    )


def _disk_full(store: Store) -> None:
    store.conn.execute(
        "CREATE TEMP TRIGGER outbox_full BEFORE INSERT ON outbox"
        " BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
    )


def _disk_back(store: Store) -> None:
    store.conn.execute("DROP TRIGGER temp.outbox_full")


async def test_dropped_count_travels_in_the_state_while_the_outbox_is_full(
    store: Store, outbox: Outbox, engine: IncidentEngine, clock: FakeClock, tmp_path: Path
) -> None:
    live = _live(store, outbox, engine, clock)
    transport = States()
    client = SyncClient(
        store, outbox, _identity(), AGENT_KEY, SyncSection(max_bytes_per_s=0, backoff_max=0.01), clock,
        transport=transport, state=live.state_parts, dropped_events=lambda: live.counters.dropped_events,
    )
    await client.cycle()
    assert [s.dropped_events for s in transport.states] == [0]

    _disk_full(store)
    for _ in range(3):  # three rounds whose signals and snapshot cannot be stored
        signal = Signal("ap-down:1", True, "wlan", "critical", "AP down", "ap-1", clock.now(), open_after=1)
        live.ingest(_Monitor(), MonitorReport("wlan", {"aps": 1}, signals=[signal]))  # type: ignore[arg-type]
        assert live.write_snapshot() is None
    assert live.counters.dropped_events == 6

    await client.cycle()  # nothing new in the outbox, but a new count: a state goes out
    assert transport.states[-1].dropped_events == 6
    assert transport.states[-1].snapshot["agent"]["dropped_events"] == 6
    sent = len(transport.states)
    await client.cycle()  # the same count is not sent again
    assert len(transport.states) == sent

    _disk_back(store)
    assert live.write_snapshot() is not None  # space is back: the outbox takes events again

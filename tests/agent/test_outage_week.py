"""Central unreachable for a simulated week, with an injected clock and the outbox filling past its cap.

A week of an agent's life in seconds: a snapshot every 5 minutes, an incident every 6 hours that
resolves 2 hours later, device chatter, a sync attempt every 10 minutes (refused: nothing
listens) and the maintenance pass every hour, with a cap the week overruns. Then central comes
back. Promises (docs/agent.md, "Over the cap"): every incident event survives whole; snapshots
older than an hour are thinned to one per hour, then to one per day; the present (a signed
state) reaches central first, then the whole history in order, no gap, nothing twice.
"""

from __future__ import annotations

import json
import socket
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

from agent.config import SyncSection
from agent.enroll import enroll
from agent.identity import load_agent_key
from agent.incidents.engine import IncidentEngine
from agent.monitors.interface import Signal
from agent.privacy import Privacy
from agent.store import Store
from agent.store.outbox import Outbox
from agent.sync.client import StateParts, SyncClient, TransientError
from agent.sync.transport import AiohttpTransport
from base.clock import FakeClock, SystemClock
from protocol.schema import STATE_TYPE
from tests.agent.fakecentral import FakeCentral

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

DAYS = 7
CAP = 400_000  # bytes: a week of 1 KB snapshots is about 2 MB
DEVICES = 6


def _closed_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"  # nothing listens once the socket is closed


async def test_a_week_without_central_keeps_incidents_thins_snapshots_and_drains_in_order(
    central: tuple[FakeCentral, str], data_dir: Path
) -> None:
    fake, url = central
    identity = await enroll(url, fake.code("s1"), data_dir, SystemClock())
    clock = FakeClock()
    store = Store.open(data_dir)
    outbox = Outbox(store, clock)
    engine = IncidentEngine(store, outbox, Privacy(b"k" * 32), clock, open_after=1, resolve_after=1, school="s1")
    local = SyncSection(max_bytes_per_s=0, backoff_max=0.01, request_timeout=2, max_batch_events=500)
    transport = AiohttpTransport(_closed_port(), clock, user_agent="test", timeout=2)
    client = SyncClient(
        store, outbox, identity, load_agent_key(data_dir, identity), local, clock, transport=transport,
        state=lambda: StateParts([engine.wire(i) for i in engine.open_incidents()], {"host": {"now": 1}}, []),
        signal=lambda s: engine.observe([s]),
    )  # fmt: skip
    start = clock.now()
    refused = thinned = 0
    try:
        for step in range(DAYS * 24 * 12):  # 5-minute steps
            now = clock.now()
            outbox.add("health.snapshot", {"host": {"step": step, "pad": "p" * 1000}})
            if step % 6 == 0:
                outbox.add("device.seen", {"id": f"d-{step % DEVICES}", "class": "ipad", "state": "present"})
            hour = step // 12
            if step % 12 == 0:
                bad = hour % 6 < 2  # open at 0:00, 6:00, …; resolved two hours later
                engine.observe([Signal(f"ap-down:ap-{hour // 6}", bad, "wlan", "warning", "AP down", "ap", now)])
                if hour % 6 == 2:
                    engine.observe([Signal(f"ap-down:ap-{hour // 6}", False, "wlan", "warning", "AP down", "ap", now)])
                thinned += outbox.thin(CAP).thinned
            if step % 2 == 0:
                with pytest.raises(TransientError):
                    await client.cycle()
                refused += 1
            clock.advance(300)
        assert clock.now() - start == timedelta(days=DAYS)
        # Still broken when central returns: the state must say so at once.
        engine.observe([Signal("host-disk", True, "host", "critical", "Disk almost full", None, clock.now())])
        assert refused > 1000 and thinned > 1000
        before = {e.seq: e for e in outbox.batch(1, 10**6, 10**9)}
        assert [*before] == list(range(1, outbox.last_seq + 1)), "thinning deleted a row"

        # Central is back: the present first, then the week in order.
        transport.base_url = url
        assert await client.cycle() == outbox.last_seq
        assert outbox.stats().depth == 0
    finally:
        await transport.aclose()
        store.close()

    record = fake.only()
    assert fake.types[0] == STATE_TYPE, "the present did not go first"
    first_state = record.states[0]
    assert [i["key"] for i in first_state.open_incidents] == [i.key for i in engine.open_incidents()]
    held = [record.events[s] for s in sorted(record.events)]
    assert [e["seq"] for e in held] == list(range(1, len(before) + 1))
    assert [e["at"] for e in held] == sorted(e["at"] for e in held)
    assert [i["key"] for i in first_state.open_incidents] == ["host-disk"]
    # Every incident event whole: each AP outage opened and resolved, the disk still open, titles intact.
    kinds = Counter(e["kind"] for e in held)
    assert kinds["incident.opened"] == DAYS * 4 + 1 and kinds["incident.resolved"] == DAYS * 4
    titles = {e["data"].get("title") for e in held if e["kind"] == "incident.opened"}
    assert titles == {"AP down", "Disk almost full"}
    # Snapshots: at most one full per hour in the thinned hours, one per day in the oldest days.
    full = [e for e in held if e["kind"] == "health.snapshot" and not e["data"].get("thinned")]
    hours = Counter(e["at"][:13] for e in full)
    # Thinning goes only as far as the cap needs, oldest first: the hours still whole are the newest.
    whole = sorted(h for h, n in hours.items() if n > 1)
    thinned_hours = sorted(h for h, n in hours.items() if n == 1)
    assert whole and thinned_hours and thinned_hours[-1] < whole[0], hours
    assert max(hours.values()) == 12
    days = Counter(e["at"][:10] for e in full)
    assert days[held[0]["at"][:10]] == 1, "the oldest day kept more than one snapshot"
    newest = [e for e in held if e["kind"] == "health.snapshot"][-1]
    assert newest["data"]["host"]["step"] == DAYS * 24 * 12 - 1, "the newest snapshot was thinned"
    assert len(json.dumps(held)) < 2_500_000
    assert record.duplicates == 0

"""Enrollment and sync against a stand-in central over real loopback sockets."""

from __future__ import annotations

import asyncio
import dataclasses
import stat
from pathlib import Path

import pytest

from agent.config import SyncSection
from agent.enroll import EnrollError, enroll
from agent.identity import ADMIN_TOKEN_FILE, KEY_FILE, Identity, load_agent_key, load_identity, time_floor
from agent.incidents.engine import IncidentEngine
from agent.privacy import Privacy
from agent.store import Store
from agent.store.outbox import Outbox
from agent.sync.client import (
    FORK_KEY,
    REVOKED_KEY,
    BlockedError,
    RevokedError,
    StateParts,
    SyncClient,
    SyncSettings,
)
from agent.sync.transport import AiohttpTransport, TokenBucket
from base.clock import FakeClock, SystemClock
from protocol.schema import REPORT_TYPE, STATE_TYPE
from tests.agent.fakecentral import FakeCentral, seqs


async def _enrolled(central: tuple[FakeCentral, str], data_dir: Path) -> Identity:
    fake, url = central
    return await enroll(url, fake.code("s1"), data_dir, SystemClock())


def _snap(i: int) -> dict:
    return {"host": {"i": i, "pad": "p" * 300}}


class Harness:
    """An enrolled agent's store, outbox, engine and sync client (no runner)."""

    def __init__(self, data_dir: Path, identity: Identity, clock: FakeClock, local: SyncSection | None = None) -> None:
        self.store = Store.open(data_dir)
        self.outbox = Outbox(self.store, clock)
        self.engine = IncidentEngine(self.store, self.outbox, Privacy(b"k" * 32), clock, school=identity.school_id)
        local = local or SyncSection(max_bytes_per_s=0, backoff_max=0.05)
        quick = dataclasses.replace(local, request_timeout=min(local.request_timeout, 5))
        self.transport = AiohttpTransport.for_agent(identity, quick, clock)
        self.client = SyncClient(
            self.store,
            self.outbox,
            identity,
            load_agent_key(data_dir, identity),
            local,
            clock,
            transport=self.transport,
            state=lambda: StateParts([self.engine.wire(i) for i in self.engine.open_incidents()], {"n": 1}, []),
            signal=lambda s: self.engine.observe([s]),
        )

    async def __aenter__(self) -> Harness:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.transport.aclose()
        self.store.close()


async def test_enroll_writes_identity_and_secret_files(central: tuple[FakeCentral, str], data_dir: Path) -> None:
    fake, _url = central
    identity = await _enrolled(central, data_dir)
    assert identity.agent_id in fake.agents and identity.school_id == "s1"
    for name in (KEY_FILE, ADMIN_TOKEN_FILE, "privacy-secret"):
        assert stat.S_IMODE((data_dir / name).stat().st_mode) == 0o600, name
    store = Store.open(data_dir)
    assert load_identity(store) == identity
    store.close()
    assert identity.sync["max_batch_events"] == 100


async def test_enroll_twice_refuses_unless_forced(central: tuple[FakeCentral, str], data_dir: Path) -> None:
    fake, url = central
    first = await _enrolled(central, data_dir)
    with pytest.raises(EnrollError, match="already enrolled"):
        await enroll(url, fake.code(), data_dir, SystemClock())
    second = await enroll(url, fake.code(), data_dir, SystemClock(), force=True)
    assert second.agent_id != first.agent_id
    load_agent_key(data_dir, second)


async def test_enroll_errors_are_clear(central: tuple[FakeCentral, str], data_dir: Path) -> None:
    _fake, url = central
    with pytest.raises(EnrollError, match="carries no pin"):
        await enroll(url, "nope", data_dir, SystemClock())
    with pytest.raises(EnrollError, match=r"refused the enrollment \(403\): bad_code"):
        await enroll(url, "nope." + "A" * 22, data_dir, SystemClock())
    with pytest.raises(EnrollError, match="cannot reach central"):
        await enroll("http://127.0.0.1:9", "x." + "A" * 22, data_dir, SystemClock(), timeout=2)
    assert list(data_dir.iterdir()) == []  # nothing half-made in the (existing) data dir


async def test_drain_sends_everything_in_order_then_config(
    central: tuple[FakeCentral, str], data_dir: Path, clock: FakeClock
) -> None:
    fake, _url = central
    identity = await _enrolled(central, data_dir)
    async with Harness(data_dir, identity, clock) as h:
        h.outbox.add_many([("health.snapshot", _snap(i)) for i in range(250)])
        await h.client.cycle()
        record = fake.only()
        assert seqs(record) == list(range(1, 251))
        assert record.reports >= 3  # central's batch cap of 100 from enrollment was applied
        assert len(record.states) == 1 and record.states[0].last_seq == 250
        assert fake.types[0] == STATE_TYPE and set(fake.types[1:]) == {REPORT_TYPE}  # the present went first
        assert h.outbox.stats().depth == 0 and h.store.query("SELECT count(*) FROM outbox")[0][0] == 0
        assert time_floor(h.store) == "2030-01-01T00:00:00Z"
        assert h.store.get_setting("last_sync_at") is not None


async def test_transient_errors_retry_and_nothing_is_lost(
    central: tuple[FakeCentral, str], data_dir: Path, clock: FakeClock
) -> None:
    fake, _url = central
    identity = await _enrolled(central, data_dir)
    async with Harness(data_dir, identity, clock) as h:
        h.outbox.add_many([("health.snapshot", _snap(i)) for i in range(30)])
        fake.fail_next.extend([500, 502, 503])
        await h.client.cycle_with_retries()
        assert seqs(fake.only()) == list(range(1, 31))
        assert len(fake.only().states) == 1  # retried from the top: state goes first after reconnecting


async def test_lost_ack_resend_is_harmless(central: tuple[FakeCentral, str], data_dir: Path, clock: FakeClock) -> None:
    """Central stored a batch but the agent never heard: it sends again and central acks again."""
    fake, _url = central
    identity = await _enrolled(central, data_dir)
    async with Harness(data_dir, identity, clock) as h:
        h.outbox.add_many([("health.snapshot", _snap(i)) for i in range(20)])
        for event in [h.outbox.batch(1, 10, 10**6)]:
            from agent.sync.client import report_envelope

            status, body = fake.ingest_envelope(report_envelope(identity, h.client.key, event, clock.now()))
            assert status == 200 and body["acked_through"] == 10
        await h.client.cycle()
        assert seqs(fake.only()) == list(range(1, 21))
        # the state answer's acked_through told the agent what central holds: only 11..20 went again
        assert fake.only().duplicates == 0 and fake.only().reports == 2


async def test_409_resends_from_expected(central: tuple[FakeCentral, str], data_dir: Path, clock: FakeClock) -> None:
    fake, _url = central
    identity = await _enrolled(central, data_dir)
    async with Harness(data_dir, identity, clock) as h:
        h.outbox.add_many([("health.snapshot", _snap(i)) for i in range(20)])
        # central holds 1..12 (an ack the agent lost); the agent has acked only 5 of them
        from agent.sync.client import report_envelope

        fake.ingest_envelope(report_envelope(identity, h.client.key, h.outbox.batch(1, 12, 10**6), clock.now()))
        h.outbox.ack(5)
        h.client.batch_events = 3  # the next batch 6..8 is wholly below: acked again
        await h.client.cycle()
        assert seqs(fake.only()) == list(range(1, 21))


async def test_fork_is_kept_and_alerted(central: tuple[FakeCentral, str], data_dir: Path, clock: FakeClock) -> None:
    """Central expects a seq the agent already pruned (central lost data): keep the data, raise an agent incident."""
    identity = await _enrolled(central, data_dir)
    async with Harness(data_dir, identity, clock) as h:
        h.outbox.add_many([("health.snapshot", _snap(i)) for i in range(10)])
        h.outbox.ack(4)  # pretend central acked 1..4 once, then forgot them
        with pytest.raises(BlockedError) as info:
            await h.client.cycle()
        assert info.value.key == FORK_KEY
        assert h.outbox.stats().depth == 6  # nothing dropped
        h.client._refused(info.value.key, "fork", str(info.value))
        (incident,) = h.engine.open_incidents()
        assert incident.key == FORK_KEY and incident.severity == "critical" and incident.category == "agent"


async def test_revoked_stops_keeps_data_and_raises_incident(
    central: tuple[FakeCentral, str], data_dir: Path, clock: FakeClock
) -> None:
    fake, _url = central
    identity = await _enrolled(central, data_dir)
    fake.only().revoked = True
    local = SyncSection(max_bytes_per_s=0, backoff_max=0.05, revoked_retry=0.2, report_interval=0.05)
    async with Harness(data_dir, identity, clock, local) as h:
        h.outbox.add_many([("health.snapshot", _snap(i)) for i in range(5)])
        with pytest.raises(RevokedError):
            await h.client.cycle_with_retries()
        task = asyncio.create_task(h.client.run())
        await asyncio.sleep(0.1)
        (incident,) = h.engine.open_incidents()
        assert incident.key == REVOKED_KEY and incident.severity == "critical"
        assert h.outbox.stats().depth >= 5
        posts = len(fake.requests)
        await asyncio.sleep(0.15)
        assert len(fake.requests) - posts <= 2  # retries rarely, not in a tight loop
        fake.only().revoked = False  # lifted: the next retry sends everything and resolves the incident
        for _ in range(50):
            await asyncio.sleep(0.05)
            if not h.engine.open_incidents() and h.outbox.stats().depth == 0:
                break
        task.cancel()
        assert h.engine.open_incidents() == []
        held = seqs(fake.only())
        assert held == list(range(1, len(held) + 1)) and len(held) >= 7  # data + the incident's own events


async def test_wire_body_is_gzip_signed_report(
    central: tuple[FakeCentral, str], data_dir: Path, clock: FakeClock
) -> None:
    fake, _url = central
    identity = await _enrolled(central, data_dir)
    bodies: list[bytes] = []
    original = fake.ingest_envelope

    def capture(envelope: bytes):  # type: ignore[no-untyped-def]
        bodies.append(envelope)
        return original(envelope)

    fake.ingest_envelope = capture  # type: ignore[method-assign]
    async with Harness(data_dir, identity, clock) as h:
        h.outbox.add("health.snapshot", _snap(0))
        await h.client.cycle()
    assert all(b.startswith(b'{"payloadType":') for b in bodies)
    assert set(fake.encodings) == {"gzip"}


def test_token_bucket_paces_bytes(clock: FakeClock) -> None:
    bucket = TokenBucket(rate=1000, burst=1000, clock=clock)
    assert bucket.delay_for(1000) == 0.0
    assert bucket.delay_for(500) == pytest.approx(0.5)
    clock.advance(0.5)
    assert bucket.delay_for(1000) == pytest.approx(1.0)
    assert TokenBucket(rate=0, burst=1, clock=clock).delay_for(10**9) == 0.0


def test_settings_precedence() -> None:
    enrolled = {"report_interval_s": 30, "max_batch_events": 100}
    assert SyncSettings.resolve(SyncSection(), enrolled).max_batch_events == 100
    assert SyncSettings.resolve(SyncSection(), enrolled, {"max_batch_events": 50}).max_batch_events == 50
    assert (
        SyncSettings.resolve(SyncSection(max_batch_events=7), enrolled, {"max_batch_events": 50}).max_batch_events == 7
    )
    assert SyncSettings.resolve(SyncSection(), {"max_batch_events": 10**6}).max_batch_events == 2000
    assert SyncSettings.resolve(SyncSection(), enrolled).report_interval == 30


async def test_byte_rate_cap_paces_the_drain(central: tuple[FakeCentral, str], data_dir: Path) -> None:
    """What crossed the line, over the time it took, stays within the cap (plus the one-second burst)."""
    import os
    import time

    fake, _url = central
    identity = await _enrolled(central, data_dir)
    rate = 4000
    local = SyncSection(max_bytes_per_s=rate, max_batch_events=2, backoff_max=0.05)
    async with Harness(data_dir, identity, SystemClock(), local) as h:  # type: ignore[arg-type]
        h.outbox.add_many([("health.snapshot", {"host": {"noise": os.urandom(600).hex()}}) for _ in range(12)])
        started = time.monotonic()
        await h.client.cycle()
        elapsed = time.monotonic() - started
    wire = sum(fake.wire_bytes)
    # Without pacing the drain takes milliseconds; the bound must be well above that to mean anything.
    assert wire >= 2 * rate, wire
    assert elapsed >= (wire - rate) / rate * 0.9, (wire, elapsed)
    assert seqs(fake.only()) == list(range(1, 13))

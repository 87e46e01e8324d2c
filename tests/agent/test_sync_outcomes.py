"""The sync client driven by an in-memory transport: what it does with each outcome central's answer becomes.

No HTTP here: the transport is a script. The outbox, acks and alerts are real (SQLite store).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from agent.config import SyncSection
from agent.identity import Identity, time_floor
from agent.monitors.interface import Signal
from agent.store import Store
from agent.store.outbox import Outbox
from agent.sync.client import (
    FORK_KEY,
    LAST_SYNC_REFRESH_S,
    REFUSED_KEY,
    REVOKED_KEY,
    BlockedError,
    RevokedError,
    StateParts,
    SyncClient,
    TransientError,
)
from agent.sync.transport import Accepted, ConfigAnswer, Conflict, Fetched, Gap, Outcome, Refused, RetryLater
from base.clock import FakeClock
from protocol.envelope import sign, verify
from protocol.keys import generate_private_key, keyid, public_key_b64
from protocol.schema import CONFIG_TYPE, REPORT_TYPE, STATE_TYPE, build_config_payload, parse_report

AGENT_KEY = generate_private_key()
CENTRAL_KEY = generate_private_key()


@dataclass
class Sent:
    """One envelope as the transport saw it: a state, or a report over seq_from..seq_to."""

    kind: str
    seq_from: int = 0
    seq_to: int = 0


@dataclass
class ScriptedTransport:
    """Answers from a script; when the script is empty, acknowledges every report whole (and states at 0)."""

    script: list[Outcome] = field(default_factory=list)
    sent: list[Sent] = field(default_factory=list)
    config: ConfigAnswer = field(default_factory=lambda: Refused(404, "unknown_agent"))
    config_requests: list[dict[str, str]] = field(default_factory=list)
    clock_offset: float | None = None
    closed: int = 0
    acked: int = 0

    async def post(self, envelope: bytes) -> Outcome:
        verified = verify(envelope, {keyid(AGENT_KEY): AGENT_KEY.public_key()}, [REPORT_TYPE, STATE_TYPE])
        if verified.payload_type == STATE_TYPE:
            self.sent.append(Sent("state"))
        else:
            report = parse_report(verified.payload)
            self.sent.append(Sent("report", report.seq_from, report.seq_to))
        if self.script:
            return self.script.pop(0)
        if self.sent[-1].kind == "report":
            self.acked = max(self.acked, self.sent[-1].seq_to)
        return Accepted(self.acked)

    async def fetch_config(self, agent_id: str, headers: Mapping[str, str]) -> ConfigAnswer:
        self.config_requests.append(dict(headers))
        return self.config

    async def aclose(self) -> None:
        self.closed += 1

    def reports(self) -> list[tuple[int, int]]:
        return [(s.seq_from, s.seq_to) for s in self.sent if s.kind == "report"]


def _identity() -> Identity:
    return Identity(
        agent_id="a-1",
        school_id="gs-nord",
        carrier="Kreis A",
        school_name="GS Nord",
        central_url="http://central.invalid",
        central_public_key=public_key_b64(CENTRAL_KEY),
        token_public_key=public_key_b64(generate_private_key()),
        keyid=keyid(AGENT_KEY),
        enrolled_at="2025-03-01T08:00:00Z",
        sync={},
    )


@dataclass
class Rig:
    client: SyncClient
    transport: ScriptedTransport
    outbox: Outbox
    store: Store
    signals: list[Signal]

    def alerts(self) -> set[str]:
        """Keys of the alerts raised (bad signals) so far."""
        return {s.key for s in self.signals if s.bad}


@pytest.fixture
def rig(store: Store, outbox: Outbox, clock: FakeClock) -> Callable[..., Rig]:
    def make(*script: Outcome, transport: ScriptedTransport | None = None, **local: float) -> Rig:
        transport = transport or ScriptedTransport(list(script))
        signals: list[Signal] = []
        settings = SyncSection(**{"max_bytes_per_s": 0, "backoff_max": 0.01, "max_batch_events": 10, **local})
        client = SyncClient(
            store,
            outbox,
            _identity(),
            AGENT_KEY,
            settings,
            clock,
            transport=transport,
            state=lambda: StateParts([], {"n": 1}, []),
            signal=signals.append,
        )
        return Rig(client, transport, outbox, store, signals)

    return make


def _fill(outbox: Outbox, n: int) -> None:
    outbox.add_many([("health.snapshot", {"host": {"i": i}}) for i in range(n)])


async def test_accepted_acks_prunes_and_resolves_alerts(rig: Callable[..., Rig]) -> None:
    r = rig()
    _fill(r.outbox, 25)
    assert await r.client.cycle() == 25
    assert r.transport.sent[0].kind == "state"
    assert r.transport.reports() == [(1, 10), (11, 20), (21, 25)]
    assert r.outbox.stats().depth == 0 and r.outbox.acked_seq == 25
    assert r.store.get_setting("last_sync_at") is not None
    resolved = {s.key for s in r.signals if not s.bad}
    assert resolved == {REVOKED_KEY, FORK_KEY, REFUSED_KEY} and r.alerts() == set()


async def test_state_ack_skips_what_central_already_holds(rig: Callable[..., Rig]) -> None:
    r = rig(Accepted(12, state="accepted"))
    _fill(r.outbox, 20)
    await r.client.cycle()
    assert r.transport.reports() == [(13, 20)]


async def test_gap_resends_from_the_expected_seq(rig: Callable[..., Rig]) -> None:
    r = rig(Accepted(0), Accepted(3), Gap(6, "sequence_gap"))
    _fill(r.outbox, 20)
    r.client.batch_events = 3
    await r.client.cycle()
    # central held 4..5 already (an ack the agent lost): the third batch went again from 6
    assert r.transport.reports()[:3] == [(1, 3), (4, 6), (6, 8)]
    assert r.outbox.acked_seq == 20 and r.alerts() == set()


@pytest.mark.parametrize(
    "answer",
    [
        Gap(3, "sequence_gap"),  # a seq central acknowledged before: central lost data
        Gap(99, "sequence_gap"),  # beyond anything this agent made
        Gap(5, "sequence_gap"),  # the very batch it was sent: no way forward
        Conflict(5, "sequence_conflict"),  # the batch's first seq, held by central with other content
        Accepted(99),  # central holds more than this agent made: a restored or cloned agent
    ],
)
async def test_fork_keeps_the_data_and_alerts(rig: Callable[..., Rig], answer: Outcome) -> None:
    r = rig(Accepted(0), answer, report_interval=0.01, revoked_retry=5)
    _fill(r.outbox, 10)
    r.outbox.ack(4)
    with pytest.raises(BlockedError) as info:
        await r.client.cycle()
    assert info.value.key == FORK_KEY
    assert r.outbox.stats().depth == 6 and r.outbox.acked_seq == 4
    r.transport.script = [Accepted(4), answer]
    task = asyncio.create_task(r.client.run())
    for _ in range(100):
        await asyncio.sleep(0.01)
        if r.alerts():
            break
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert r.alerts() == {FORK_KEY} and r.outbox.stats().depth == 6


async def test_conflict_central_can_resume_from_is_resumed_like_a_gap(rig: Callable[..., Rig]) -> None:
    r = rig(Accepted(0), Accepted(3), Conflict(6, "sequence_conflict"))
    _fill(r.outbox, 9)
    r.client.batch_events = 3
    await r.client.cycle()
    assert r.transport.reports()[:3] == [(1, 3), (4, 6), (6, 8)]
    assert r.outbox.acked_seq == 9


@pytest.mark.parametrize("answer", [Conflict(None, "sequence_conflict"), Refused(409, "odd")])
async def test_409_without_expected_seq_is_refused(rig: Callable[..., Rig], answer: Outcome) -> None:
    r = rig(Accepted(0), answer)
    _fill(r.outbox, 4)
    with pytest.raises(BlockedError, match="409 without an expected_seq") as info:
        await r.client.cycle()
    assert info.value.key == REFUSED_KEY and r.outbox.stats().depth == 4


async def test_refused_report_keeps_data_alerts_and_retries_rarely(rig: Callable[..., Rig]) -> None:
    r = rig(Accepted(0), Refused(400, "malformed"), report_interval=0.01, revoked_retry=0.5)
    _fill(r.outbox, 4)
    task = asyncio.create_task(r.client.run())
    await asyncio.sleep(0.2)
    assert r.alerts() == {REFUSED_KEY}
    assert r.outbox.stats().depth == 4
    assert len(r.transport.sent) == 2  # state and one report, then nothing until revoked_retry
    for _ in range(100):  # the retry goes through (the script is empty now) and resolves the alert
        await asyncio.sleep(0.05)
        if r.outbox.stats().depth == 0:
            break
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert r.outbox.stats().depth == 0
    assert [s.bad for s in r.signals if s.key == REFUSED_KEY][-1] is False
    assert r.transport.closed == 1  # run() released the transport when it ended


async def test_refused_state_payload_is_a_refusal(rig: Callable[..., Rig]) -> None:
    r = rig(Gap(3, "sequence_gap"))
    with pytest.raises(BlockedError, match="refused with 409") as info:
        await r.client.cycle()
    assert info.value.key == REFUSED_KEY


@pytest.mark.parametrize("status", [401, 403])
async def test_revoked_stops_keeps_data_and_raises_the_incident(rig: Callable[..., Rig], status: int) -> None:
    r = rig(Refused(status, "revoked_key"), report_interval=0.01, revoked_retry=5)
    _fill(r.outbox, 3)
    with pytest.raises(RevokedError, match=f"central answered {status}: revoked_key"):
        await r.client.cycle_with_retries()
    r.transport.script = [Refused(status, "revoked_key")]
    task = asyncio.create_task(r.client.run())
    await asyncio.sleep(0.2)
    assert r.alerts() == {REVOKED_KEY}
    assert len(r.transport.sent) == 2 and r.outbox.stats().depth == 3  # one try each, no tight loop
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_retry_later_backs_off_then_starts_again_with_the_state(rig: Callable[..., Rig]) -> None:
    r = rig(Accepted(0), RetryLater("central answered 503", 503), RetryLater("ClientConnectorError: refused"))
    _fill(r.outbox, 5)
    await r.client.cycle_with_retries()
    kinds = [s.kind for s in r.transport.sent]
    assert kinds == ["state", "report", "state", "state", "report"]  # the present goes first after each failure
    assert r.outbox.acked_seq == 5 and r.client.consecutive_failures == 0
    r.transport.script = [RetryLater("TimeoutError: ")]
    r.client._need_state = True
    with pytest.raises(TransientError, match="TimeoutError"):
        await r.client.cycle()


async def test_too_large_halves_the_batch_until_one_event(rig: Callable[..., Rig]) -> None:
    r = rig(Accepted(0), Refused(413, "too_large"), Refused(413, "too_large"))
    _fill(r.outbox, 10)
    bytes_before = r.client.batch_bytes
    await r.client.cycle()
    assert r.transport.reports()[:3] == [(1, 10), (1, 5), (1, 2)]
    assert r.client.batch_events == 2 and r.client.batch_bytes == bytes_before // 4
    assert r.outbox.acked_seq == 10


async def test_too_large_single_event_is_refused(rig: Callable[..., Rig]) -> None:
    r = rig(Accepted(0), Refused(413, "too_large"))
    _fill(r.outbox, 3)
    r.client.batch_events = 1
    with pytest.raises(BlockedError, match="refused with 413") as info:
        await r.client.cycle()
    assert info.value.key == REFUSED_KEY and r.outbox.stats().depth == 3


async def test_clock_offset_is_kept_when_it_moves_by_two_seconds(rig: Callable[..., Rig]) -> None:
    r = rig()
    _fill(r.outbox, 1)
    r.transport.clock_offset = 5.0
    await r.client.cycle()
    assert r.client.clock_offset == 5.0 and r.store.get_setting("clock_offset_s") == 5.0
    r.transport.clock_offset = 6.5
    r.client._need_state = True
    await r.client.cycle()
    assert r.store.get_setting("clock_offset_s") == 5.0  # jitter is not written


async def test_config_answers(rig: Callable[..., Rig], clock: FakeClock) -> None:
    r = rig()
    for answer in (Refused(404, "unknown_agent"), RetryLater("central answered 503", 503), RetryLater("refused")):
        r.transport.config = answer
        await r.client.fetch_config()
        assert r.store.get_setting("central_config") is None
    issued = datetime(2030, 1, 1, tzinfo=UTC)
    payload = build_config_payload("a-1", 4, issued, {"max_batch_events": 7})
    r.transport.config = Fetched(sign(payload, CONFIG_TYPE, CENTRAL_KEY), '"tag-4"')
    await r.client.fetch_config()
    assert r.store.get_setting("central_config") == {
        "version": 4, "issued_at": "2030-01-01T00:00:00Z", "settings": {"max_batch_events": 7}, "etag": '"tag-4"'
    }
    assert r.client.batch_events == 10  # the config file's [sync] max_batch_events wins over central's
    assert time_floor(r.store) == "2030-01-01T00:00:00Z"
    # A newer config version signed at an older time (central's clock was reset) is applied,
    # but the floor stays where it was: it never moves down.
    older = build_config_payload("a-1", 5, datetime(2029, 6, 1, tzinfo=UTC), {"max_batch_events": 8})
    r.transport.config = Fetched(sign(older, CONFIG_TYPE, CENTRAL_KEY), '"tag-5"')
    await r.client.fetch_config()
    assert r.store.get_setting("central_config") == {
        "version": 5, "issued_at": "2029-06-01T00:00:00Z", "settings": {"max_batch_events": 8}, "etag": '"tag-5"'
    }
    assert time_floor(r.store) == "2030-01-01T00:00:00Z"


@dataclass
class ThinningWhileOnTheWire(ScriptedTransport):
    """Thins the outbox to nothing while each report is in flight, as the maintenance task may."""

    outbox: Outbox | None = None
    changed_on_the_wire: list[int] = field(default_factory=list)

    async def post(self, envelope: bytes) -> Outcome:
        verified = verify(envelope, {keyid(AGENT_KEY): AGENT_KEY.public_key()}, [REPORT_TYPE, STATE_TYPE])
        if verified.payload_type == REPORT_TYPE and self.outbox is not None:
            report = parse_report(verified.payload)
            self.outbox.thin(max_bytes=1)
            held = {e.seq: e.to_wire() for e in self.outbox.batch(report.seq_from, 10_000, 10**9)}
            self.changed_on_the_wire += [e.seq for e in report.events if held[e.seq] != e.to_json()]
        return await super().post(envelope)


async def test_thinning_never_rewrites_what_is_on_the_wire(rig: Callable[..., Rig], clock: FakeClock) -> None:
    """Central may already hold a batch in flight: rewriting it would make the resend a conflict."""
    transport = ThinningWhileOnTheWire()
    r = rig(transport=transport, max_batch_events=10)
    transport.outbox = r.outbox
    for i in range(36):  # three hours of snapshots: all but one an hour are thinnable
        r.outbox.add("health.snapshot", {"host": {"i": i, "pad": "p" * 200}})
        clock.advance(300)
    clock.advance(7200)
    await r.client.cycle()
    assert len(transport.reports()) >= 3 and transport.changed_on_the_wire == []
    assert r.outbox.stats().depth == 0


async def test_a_config_request_refused_after_rotate_key_is_signed_again_with_the_new_key(
    rig: Callable[..., Rig],
) -> None:
    """`rotate-key` retired the running agent's key at central: the config fetch switches at once.

    Before, only a refused report made the switch, so a quiet school fetched no configuration
    (and no revocations) for up to a snapshot interval.
    """
    from protocol.httpsig import parse_request_signature

    r = rig()
    new_key = generate_private_key()
    r.client._reload_key = lambda: (_identity(), new_key)
    r.transport.config = Refused(401, "unknown_key")
    await r.client.fetch_config()
    signers = [parse_request_signature(h).keyid for h in r.transport.config_requests]
    assert signers == [keyid(AGENT_KEY), keyid(new_key)]
    assert keyid(r.client.key) == keyid(new_key)
    # Refused again with the new key too: no loop, one request more at the next fetch only.
    await r.client.fetch_config()
    assert len(r.transport.config_requests) == 3


@pytest.mark.parametrize("rotating", [True, False])
async def test_a_key_refused_while_rotate_key_is_under_way_is_asked_again_soon(
    rig: Callable[..., Rig], monkeypatch: pytest.MonkeyPatch, rotating: bool
) -> None:
    """Central finished a rotation before `rotate-key` switched the files (its next key file is there).

    The running agent's next report, signed with the old key, is refused as unknown. That is not
    a revocation: it used to open the revoked incident and wait an hour (revoked_retry) before
    trying the rotated key. Without a rotation under way, a refused key still counts as revoked.
    """
    import agent.sync.client as client_module

    monkeypatch.setattr(client_module, "_ROTATION_RECHECK_S", 0.01)
    r = rig(Refused(401, "unknown_key"), Refused(401, "unknown_key"), report_interval=0.01, revoked_retry=3600)
    r.client._rotation_pending = lambda: rotating
    _fill(r.outbox, 3)
    task = asyncio.create_task(r.client.run())
    for _ in range(100):
        await asyncio.sleep(0.01)
        if r.outbox.stats().depth == 0 or r.alerts():
            break
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    if rotating:
        assert r.outbox.stats().depth == 0 and r.alerts() == set()
    else:
        assert r.alerts() == {REVOKED_KEY} and r.outbox.stats().depth == 3


async def test_idle_cycles_store_last_sync_at_only_now_and_then(rig: Callable[..., Rig], clock: FakeClock) -> None:
    # An empty outbox sends nothing; storing the cycle's time each report interval was an fsync for nothing.
    r = rig()
    await r.client.cycle()  # the state payload goes first: an exchange
    first = r.store.get_setting("last_sync_at")
    assert first is not None
    for _ in range(int(LAST_SYNC_REFRESH_S // 30) - 1):
        clock.advance(30)
        await r.client.cycle()
    assert r.store.get_setting("last_sync_at") == first
    clock.advance(30)  # LAST_SYNC_REFRESH_S since it was stored
    await r.client.cycle()
    refreshed = r.store.get_setting("last_sync_at")
    assert refreshed == clock.now().isoformat()
    clock.advance(30)
    _fill(r.outbox, 1)  # a cycle that sends stores its time at once
    await r.client.cycle()
    assert r.store.get_setting("last_sync_at") == clock.now().isoformat()

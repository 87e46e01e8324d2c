"""POST /v1/reports over a real socket: each attack gets its answer and the DB holds exactly what it should."""

from __future__ import annotations

import asyncio
import base64
import gzip
import json

import pytest
from aiohttp.test_utils import TestClient

from central.ingest import Ingestor
from central.storage.interface import Storage
from central.storage.sqlite import SqliteStore
from protocol.encoding import b64encode, dumps
from protocol.envelope import sign, sign_envelope
from protocol.errors import RevokedKeyError, UnknownKeyError
from protocol.keys import generate_private_key, keyid
from protocol.schema import BUNDLE_TYPE, CONFIG_TYPE, REPORT_TYPE, STATE_TYPE, build_bundle, build_report, make_event

from .conftest import T0, FakeAgent, FakeClock, enroll


async def post(client: TestClient, body: bytes, **headers: str) -> tuple[int, dict]:
    resp = await client.post("/v1/reports", data=body, headers={"Content-Type": "application/json", **headers})
    return resp.status, await resp.json()


async def held(store: Storage, agent: FakeAgent) -> list[int]:
    return [e.seq for e in await store.get_events(agent.agent_id)]


async def test_send_and_resend_three_times(client: TestClient, store: Storage, agent: FakeAgent) -> None:
    body = agent.report(1, 10)
    assert await post(client, body) == (200, {"acked_through": 10})
    before = await store.get_events(agent.agent_id)
    for _ in range(3):
        assert await post(client, body) == (200, {"acked_through": 10})
    assert await store.get_events(agent.agent_id) == before
    assert await held(store, agent) == list(range(1, 11))


async def test_out_of_order_batches(client: TestClient, store: Storage, agent: FakeAgent) -> None:
    assert await post(client, agent.report(1, 10)) == (200, {"acked_through": 10})
    assert await post(client, agent.report(21, 30)) == (409, {"error": "sequence_gap", "expected_seq": 11})
    assert await held(store, agent) == list(range(1, 11))
    assert await post(client, agent.report(11, 20)) == (200, {"acked_through": 20})
    assert await post(client, agent.report(21, 30)) == (200, {"acked_through": 30})
    # A batch straddling the ack: the held part matches, the rest is stored.
    assert await post(client, agent.report(25, 35)) == (200, {"acked_through": 35})
    # An older batch again: acknowledged, nothing changes.
    assert await post(client, agent.report(11, 20)) == (200, {"acked_through": 35})
    assert await held(store, agent) == list(range(1, 36))


async def test_first_batch_must_start_at_one(client: TestClient, store: Storage, agent: FakeAgent) -> None:
    assert await post(client, agent.report(2, 5)) == (409, {"error": "sequence_gap", "expected_seq": 1})
    assert await held(store, agent) == []


async def test_forked_history_is_a_conflict_with_alert_and_incident(
    client: TestClient, store: Storage, agent: FakeAgent, caplog
) -> None:
    assert await post(client, agent.report(1, 10)) == (200, {"acked_through": 10})
    before = await store.get_events(agent.agent_id)
    assert await post(client, agent.report(1, 5, salt="restored")) == (
        409,
        {"error": "sequence_conflict", "expected_seq": 11},
    )
    # Straddling with a differing held part: the new part is not stored either.
    assert await post(client, agent.report(8, 15, salt="x")) == (
        409,
        {"error": "sequence_conflict", "expected_seq": 11},
    )
    assert await store.get_events(agent.agent_id) == before
    assert any(
        "ALERT agent history forked" in r.getMessage() and agent.agent_id in r.getMessage() for r in caplog.records
    )
    resp = await client.get("/v1/incidents", headers={"Authorization": "Bearer swc_test-token-all"})
    forked = [i for i in (await resp.json())["incidents"] if i["origin"] == "central"]
    assert len(forked) == 1
    assert forked[0]["severity"] == "critical" and forked[0]["subject"] == agent.agent_id
    assert "forked" in forked[0]["title"]


async def test_tampered_batch(client: TestClient, store: Storage, agent: FakeAgent) -> None:
    envelope = json.loads(agent.report(1, 3))
    payload = bytearray(build_report(agent.agent_id, agent.school_id, agent.events(1, 3), T0))
    payload[40] ^= 0x01
    envelope["payload"] = b64encode(bytes(payload))
    assert await post(client, dumps(envelope)) == (401, {"error": "bad_signature"})
    assert await held(store, agent) == []


async def test_payload_type_swapped_or_unknown(client: TestClient, store: Storage, agent: FakeAgent) -> None:
    payload = agent.payload(agent.events(1, 3))
    for payload_type in (CONFIG_TYPE, BUNDLE_TYPE, "application/vnd.schulwart.report+json;v=0"):
        assert await post(client, sign(payload, payload_type, agent.key)) == (400, {"error": "unsupported_type"})
    assert await held(store, agent) == []


async def test_signed_by_another_agents_key(
    client: TestClient, store: Storage, clock: FakeClock, agent: FakeAgent
) -> None:
    other = await enroll(client, store, clock, "gs-nord")
    # B's valid signature over a payload naming A.
    forged = other.sign_events(agent.events(1, 3), agent_id=agent.agent_id)
    assert await post(client, forged) == (403, {"error": "identity_mismatch"})
    # B's signature presented under A's keyid.
    envelope = json.loads(other.sign_events(agent.events(1, 3), agent_id=agent.agent_id))
    envelope["signatures"][0]["keyid"] = json.loads(agent.report(1, 1))["signatures"][0]["keyid"]
    assert await post(client, dumps(envelope)) == (401, {"error": "bad_signature"})
    assert await held(store, agent) == [] and await held(store, other) == []


async def test_unknown_key(client: TestClient, store: Storage, agent: FakeAgent) -> None:
    stranger = FakeAgent(agent.agent_id, agent.school_id, generate_private_key())
    assert await post(client, stranger.report(1, 3)) == (401, {"error": "unknown_key"})
    assert await held(store, agent) == []


async def test_envelope_for_another_school(client: TestClient, store: Storage, agent: FakeAgent) -> None:
    assert await post(client, agent.report(1, 3, school_id="gs-sued")) == (403, {"error": "identity_mismatch"})
    assert await held(store, agent) == []


async def test_revoked_agent(client: TestClient, store: Storage, agent: FakeAgent, clock: FakeClock) -> None:
    assert await post(client, agent.report(1, 3)) == (200, {"acked_through": 3})
    assert await store.revoke_agent(agent.agent_id, "2024-05-06T09:00:00.000000Z")
    assert await post(client, agent.report(4, 6)) == (403, {"error": "revoked_key"})
    assert await post(client, agent.state(6)) == (403, {"error": "revoked_key"})
    resp = await client.get(f"/v1/agents/{agent.agent_id}/config", headers=agent.config_headers(clock.now()))
    assert resp.status == 403 and (await resp.json()) == {"error": "revoked_key"}
    assert await held(store, agent) == [1, 2, 3]


async def test_gzip_accepted_and_bomb_refused(client: TestClient, store: Storage, agent: FakeAgent) -> None:
    assert await post(client, gzip.compress(agent.report(1, 5)), **{"Content-Encoding": "gzip"}) == (
        200,
        {"acked_through": 5},
    )
    bomb = gzip.compress(b" " * (64 * 1024 * 1024), compresslevel=9)  # 64 MiB of spaces in ~64 KiB
    assert len(bomb) < 200_000
    status, body = await post(client, bomb, **{"Content-Encoding": "gzip"})
    assert (status, body["error"]) == (413, "too_large")
    status, body = await post(client, b"\x1f\x8bnot gzip", **{"Content-Encoding": "gzip"})
    assert (status, body["error"]) == (400, "bad_gzip")
    assert await post(client, agent.report(6, 7), **{"Content-Encoding": "br"}) == (
        415,
        {"error": "unsupported_encoding"},
    )
    assert await held(store, agent) == [1, 2, 3, 4, 5]
    metrics = await (await client.get("/metrics")).text()
    assert 'schulwart_central_refusals_total{reason="too_large",route="/v1/reports"} 1.0' in metrics
    assert 'schulwart_central_refusals_total{reason="unsupported_encoding",route="/v1/reports"} 1.0' in metrics


async def test_two_megabyte_body(client: TestClient, store: Storage, agent: FakeAgent) -> None:
    big = b'{"payloadType":"x","payload":"' + b"A" * (2 * 1024 * 1024) + b'","signatures":[]}'
    status, body = await post(client, big)
    assert (status, body["error"]) == (413, "too_large")

    async def chunks():  # no Content-Length: the cap is enforced while reading
        for _ in range(32):
            yield b"A" * 65536

    resp = await client.post("/v1/reports", data=chunks())
    assert resp.status == 413
    assert await held(store, agent) == []


async def test_too_many_events_and_long_fields(client: TestClient, store: Storage, agent: FakeAgent) -> None:
    events = [make_event(s, T0, "device.lost", {"id": f"d{s}", "class": "x"}) for s in range(1, 2002)]
    status, body = await post(client, agent.sign_events(events))
    assert (status, body) == (413, {"error": "too_large", "detail": "2001 events is over the cap of 2000"})
    long_text = [
        {"seq": 1, "at": "2024-05-06T08:00:00Z", "kind": "note.added", "data": {"id": "i1", "text": "x" * 4001}}
    ]
    status, body = await post(client, agent.sign_events(long_text))
    assert (status, body["error"]) == (413, "too_large")
    assert "longer than" in body["detail"]  # names the rule the client broke
    assert await held(store, agent) == []


def _raw_payload_envelope(agent: FakeAgent, payload: bytes) -> bytes:
    return dumps(sign_envelope(payload, REPORT_TYPE, agent.key))


async def test_hostile_json_is_400_never_500(client: TestClient, store: Storage, agent: FakeAgent) -> None:
    good = json.loads(agent.report(1, 1))
    event = json.dumps(agent.events(1, 1)[0])
    head = f'{{"v":1,"agent_id":"{agent.agent_id}","school_id":"{agent.school_id}",'
    bad_payloads = [
        head + f'"seq_from":1,"seq_from":1,"seq_to":1,"sent_at":"2024-05-06T08:00:00Z","events":[{event}]}}',
        head + f'"seq_from":NaN,"seq_to":1,"sent_at":"2024-05-06T08:00:00Z","events":[{event}]}}',
        head + f'"seq_from":true,"seq_to":1,"sent_at":"2024-05-06T08:00:00Z","events":[{event}]}}',
        head + f'"seq_from":-1,"seq_to":1,"sent_at":"2024-05-06T08:00:00Z","events":[{event}]}}',
        head + f'"seq_from":1.0,"seq_to":1,"sent_at":"2024-05-06T08:00:00Z","events":[{event}]}}',
        head + f'"seq_from":{2**64},"seq_to":1,"sent_at":"2024-05-06T08:00:00Z","events":[{event}]}}',
        head + '"seq_from":1,"seq_to":1,"sent_at":"2024-05-06T08:00:00Z","events":[' + "[" * 100 + "]" * 100 + "]}",
        head + '"seq_from":1,"seq_to":1,"sent_at":"2024-05-06T08:00:00Z","events":[{"seq":true,"at":"x"}]}',
        "\xff not json",
    ]
    for payload in bad_payloads:
        status, body = await post(client, _raw_payload_envelope(agent, payload.encode("utf-8", "surrogateescape")))
        assert status == 400, (payload[:80], body)
    bad_envelopes = [
        b'{"payloadType":"a","payloadType":"b","payload":"","signatures":[]}',
        b'{"payloadType":NaN}',
        b"[1,2,3]",
        b"",
        dumps({**good, "signatures": []}),
        dumps({**good, "signatures": [good["signatures"][0], good["signatures"][0]]}),
        dumps({**good, "payload": good["payload"] + "!!"}),
        dumps({**good, "signatures": [{"keyid": good["signatures"][0]["keyid"], "sig": "AAAA"}]}),
        dumps({**good, "extra": 1}),
    ]
    for body_bytes in bad_envelopes:
        status, body = await post(client, body_bytes)
        assert status == 400, (body_bytes[:80], body)
    assert await held(store, agent) == []


async def test_url_safe_base64_accepted(client: TestClient, store: Storage, agent: FakeAgent) -> None:
    envelope = json.loads(agent.report(1, 4))
    envelope["payload"] = envelope["payload"].replace("+", "-").replace("/", "_").rstrip("=")
    sig = envelope["signatures"][0]
    sig["sig"] = sig["sig"].replace("+", "-").replace("/", "_").rstrip("=")
    assert await post(client, dumps(envelope)) == (200, {"acked_through": 4})


async def test_concurrent_duplicate_posts(client: TestClient, store: Storage, agent: FakeAgent) -> None:
    body = agent.report(1, 50)
    answers = await asyncio.gather(*(post(client, body) for _ in range(6)))
    assert answers == [(200, {"acked_through": 50})] * 6
    assert await held(store, agent) == list(range(1, 51))
    # Same seqs, different content, at once: exactly one applies, the other is a conflict.
    a, b = agent.report(51, 60, salt="a"), agent.report(51, 60, salt="b")
    answers = await asyncio.gather(post(client, a), post(client, b))
    assert sorted(s for s, _ in answers) == [200, 409]
    assert await held(store, agent) == list(range(1, 61))


async def test_clock_skew_is_flagged_not_refused(
    client: TestClient, store: Storage, clock: FakeClock, agent: FakeAgent
) -> None:
    from datetime import timedelta

    skewed = agent.sign_events(agent.events(1, 2), sent_at=T0 - timedelta(days=3))
    assert await post(client, skewed) == (200, {"acked_through": 2})
    resp = await client.get("/v1/schools/gs-nord", headers={"Authorization": "Bearer swc_test-token-all"})
    detail = await resp.json()
    assert detail["clock_skew"]["flagged"] is True
    assert detail["clock_skew"]["seconds"] == -3 * 86400
    assert detail["agents"][0]["clock_skew_flagged"] is True


async def test_agent_config_is_signed(client: TestClient, agent: FakeAgent, clock: FakeClock) -> None:
    from protocol.envelope import verify
    from protocol.keys import keyid, load_public_key_b64
    from protocol.schema import parse_config_payload

    resp = await client.get(f"/v1/agents/{agent.agent_id}/config", headers=agent.config_headers(clock.now()))
    assert resp.status == 200
    central_key = load_public_key_b64(agent.enrollment["central_public_key"])
    verified = verify(await resp.read(), {keyid(central_key): central_key}, {CONFIG_TYPE})
    config = parse_config_payload(verified.payload)
    assert config.agent_id == agent.agent_id
    assert config.issued_at == "2024-05-06T08:00:00Z"
    assert config.settings["max_batch_events"] == 500
    # Only the agent itself gets an answer: unsigned, signed for another agent id, unknown key.
    resp = await client.get(f"/v1/agents/{agent.agent_id}/config")
    assert resp.status == 401 and (await resp.json()) == {"error": "unsigned_request"}
    resp = await client.get("/v1/agents/ag-nobody/config", headers=agent.config_headers(clock.now(), "ag-nobody"))
    assert resp.status == 403 and (await resp.json()) == {"error": "identity_mismatch"}


async def test_verification_refuses_a_revoked_key_whatever_the_envelope_carries(
    store: Storage, agent: FakeAgent, clock: FakeClock
) -> None:
    """The key step refuses a revoked key for every payload type, before the signature is looked at.

    Reports and states check revocation again in their transaction; a bundle with no envelopes
    in it has nothing else to stop it, so only the key step refuses it.
    """
    ingestor = Ingestor(store, clock)
    assert await store.revoke_agent(agent.agent_id, "2024-05-06T09:00:00.000000Z")
    empty = sign(build_bundle(agent.agent_id, agent.school_id, T0, []), BUNDLE_TYPE, agent.key)
    envelopes = [empty, agent.report(1, 3), agent.state(0)]
    bad_signature = json.loads(agent.report(1, 3))
    bad_signature["signatures"][0]["sig"] = base64.b64encode(bytes(64)).decode()
    envelopes.append(json.dumps(bad_signature).encode())
    for body in envelopes:
        with pytest.raises(RevokedKeyError):
            await ingestor.verify(body, {REPORT_TYPE, STATE_TYPE, BUNDLE_TYPE})
    with pytest.raises(RevokedKeyError):
        await ingestor.import_bundle(empty)
    assert await held(store, agent) == []


async def test_a_key_revoked_after_the_node_loaded_it_is_refused_as_revoked_at_every_step(
    store: Storage, agent: FakeAgent, clock: FakeClock
) -> None:
    """An ingestor keeps the signers it has loaded; a revocation made elsewhere (the CLI, another
    node) still wins: a valid report is refused in its transaction, a bad signature and an empty
    bundle at the key step, each as revoked (not as a bad signature), as the contract orders."""
    first, second = Ingestor(store, clock), Ingestor(store, clock)
    assert (await first.ingest(agent.report(1, 3))).acked_through == 3
    assert (await second.ingest(agent.report(1, 3))).acked_through == 3  # both have the signer loaded
    assert await store.revoke_agent(agent.agent_id, "2024-05-06T09:00:00.000000Z")
    with pytest.raises(RevokedKeyError):
        await first.ingest(agent.report(4, 6))
    bad_signature = json.loads(agent.report(4, 6))
    bad_signature["signatures"][0]["sig"] = base64.b64encode(bytes(64)).decode()
    with pytest.raises(RevokedKeyError):
        await first.verify(json.dumps(bad_signature).encode(), {REPORT_TYPE})
    with pytest.raises(RevokedKeyError):
        await second.import_bundle(sign(build_bundle(agent.agent_id, agent.school_id, T0, []), BUNDLE_TYPE, agent.key))
    assert await held(store, agent) == [1, 2, 3]


async def test_a_key_rotated_away_after_the_node_loaded_it_is_unknown_at_every_step(
    store: Storage, agent: FakeAgent, clock: FakeClock
) -> None:
    """``rotate-key`` replaces an agent's key; an ingestor that kept the old signer refuses the old
    key from then on, as unknown, like one that never saw it (reports, states and bundles)."""
    first, second = Ingestor(store, clock), Ingestor(store, clock)
    assert (await first.ingest(agent.report(1, 3))).acked_through == 3
    assert (await second.ingest(agent.report(1, 3))).acked_through == 3
    new_public = generate_private_key().public_key().public_bytes_raw()
    async with store.transaction() as tx:
        await tx.rotate_agent_key(agent.agent_id, keyid(new_public), new_public, "2024-05-06T09:00:00.000000Z")
    with pytest.raises(UnknownKeyError):
        await first.ingest(agent.report(4, 6))
    with pytest.raises(UnknownKeyError):
        await second.ingest(agent.state(3))
    with pytest.raises(UnknownKeyError):
        await second.import_bundle(sign(build_bundle(agent.agent_id, agent.school_id, T0, []), BUNDLE_TYPE, agent.key))
    assert await held(store, agent) == [1, 2, 3]


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)  # caps SQLite's own connection
async def test_a_report_that_fills_the_disk_half_way_stores_nothing_answers_507_and_heals(
    client: TestClient, store: SqliteStore, agent: FakeAgent
) -> None:
    """All or nothing: SQLite's own SQLITE_FULL part-way through a batch rolls the whole batch back.

    The database is capped at its size (``max_page_count`` on central's own connection: what a
    full disk gives it, without filling one); a batch of large events cannot fit whole.
    """
    assert await post(client, agent.report(1, 3)) == (200, {"acked_through": 3})
    big = [make_event(seq, T0, "health.snapshot", {"host": {"pad": "x" * 3000}}) for seq in range(4, 40)]
    assert isinstance(store, SqliteStore)
    conn = store._conn  # central's one connection: the page cap is per connection
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages + 8}")  # room for a few events, not for 36
    status, body = await post(client, agent.sign_events(big))
    assert (status, body["error"]) == (507, "store_full")
    assert await held(store, agent) == [1, 2, 3]
    assert (await store.get_agent(agent.agent_id)).acked_seq == 3  # type: ignore[union-attr]
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.execute("PRAGMA max_page_count = 1073741823")  # space returns: the agent's resend goes through
    assert await post(client, agent.sign_events(big)) == (200, {"acked_through": 39})
    assert await held(store, agent) == list(range(1, 40))

"""docs/protocol.md "Reports": POST /v1/reports with hand-built, hand-signed DSSE envelopes."""

from __future__ import annotations

import base64
import copy
import gzip
import json
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .conftest import (
    REPORT_TYPE,
    STATE_TYPE,
    Central,
    Enrolled,
    assert_error,
    b64,
    envelope,
    event,
    http,
    incident_data,
    keyid,
    now_rfc3339,
    raw_public,
)


def _acked(c: Central, a: Enrolled) -> int:
    return int(c.agent_row(a.school_id, a.agent_id)["acked_seq"])


def _post_env(a: Enrolled, env: dict[str, object]) -> object:
    return http("POST", f"{a.url}/v1/reports", json.dumps(env).encode())


def _incident(c: Central, inc_id: str) -> dict[str, object]:
    r = c.get("/v1/incidents?state=all")
    assert r.status == 200, r.body
    found = [i for i in r.json()["incidents"] if i["id"] == inc_id]
    if not found:  # servers that do not know ?state=all: fall back on the open list
        found = [i for i in c.get("/v1/incidents").json()["incidents"] if i["id"] == inc_id]
    assert len(found) == 1, found
    return found[0]


def test_report_acked_and_resend_changes_nothing(central_srv: Central, enrolled: Enrolled) -> None:
    inc = f"inc-{uuid.uuid4().hex[:8]}"
    evs = [event(1), event(2, "incident.opened", incident_data(inc))]
    r = enrolled.report(evs)
    assert r.status == 200, r.body
    assert r.json() == {"acked_through": 2} or r.json()["acked_through"] == 2
    before = _incident(central_srv, inc)
    for again in (evs, evs[:1], evs[1:]):  # whole batch, and parts of it, any number of times
        r = enrolled.report(again)
        assert r.status == 200, r.body
        assert r.json()["acked_through"] == 2
    assert _acked(central_srv, enrolled) == 2
    after = _incident(central_srv, inc)
    keys = ("severity", "title", "state")
    assert {k: after[k] for k in keys} == {k: before[k] for k in keys}


def test_exact_replay_of_a_signed_envelope_is_acked_again(central_srv: Central, enrolled: Enrolled) -> None:
    body = json.dumps(enrolled.payload([event(1), event(2)])).encode()
    env = json.dumps(envelope(enrolled.key, body)).encode()
    for _ in range(3):
        r = http("POST", f"{enrolled.url}/v1/reports", env)
        assert r.status == 200 and r.json()["acked_through"] == 2, r.body


def test_gzip_report(central_srv: Central, enrolled: Enrolled) -> None:
    r = enrolled.report([event(1), event(2)], gz=True)
    assert r.status == 200, r.body
    assert r.json()["acked_through"] == 2
    assert _acked(central_srv, enrolled) == 2


def test_both_base64_alphabets(central_srv: Central, enrolled: Enrolled) -> None:
    seq = 0
    for urlsafe in (False, True, False, True):
        while True:  # make sure the two alphabets really differ for this envelope
            ev = event(seq + 1, data={"n": uuid.uuid4().hex})
            body = json.dumps(enrolled.payload([ev])).encode()
            env = envelope(enrolled.key, body, urlsafe=urlsafe)
            both = env["payload"] + env["signatures"][0]["sig"]
            if any(ch in both for ch in ("-_" if urlsafe else "+/")):
                break
        r = _post_env(enrolled, env)
        assert r.status == 200, (urlsafe, r.body)
        seq += 1
        assert r.json()["acked_through"] == seq


def test_batch_past_the_ack_gets_409_with_expected_seq(central_srv: Central, enrolled: Enrolled) -> None:
    r = enrolled.report([event(2), event(3)])  # nothing held yet: expects 1
    assert r.status == 409, r.body
    assert r.json()["expected_seq"] == 1 and isinstance(r.json()["error"], str)
    assert enrolled.report([event(1), event(2)]).status == 200
    r = enrolled.report([event(4)])
    assert r.status == 409, r.body
    assert r.json()["expected_seq"] == 3
    assert _acked(central_srv, enrolled) == 2
    # an overlapping batch (starts at or below the ack, ends past it) is fine
    r = enrolled.report([event(3), event(4)])
    assert r.status == 200 and r.json()["acked_through"] == 4, r.body


def test_batch_below_ack_with_different_content_is_a_conflict(central_srv: Central, enrolled: Enrolled) -> None:
    inc = f"inc-{uuid.uuid4().hex[:8]}"
    evs = [event(1), event(2, "incident.opened", incident_data(inc, severity="warning"))]
    assert enrolled.report(evs).status == 200
    forged = copy.deepcopy(evs)
    forged[1]["data"]["severity"] = "critical"
    r = enrolled.report(forged)
    assert r.status == 409, f"a changed event under the ack must be a conflict, got {r.status} {r.body!r}"
    assert_error(r)
    r = enrolled.report(forged[1:])
    assert r.status == 409, r.body
    # a different event kind at an old seq, and a different time, are changes too
    assert enrolled.report([event(1, "incident.resolved", {"id": inc})]).status == 409
    changed_at = copy.deepcopy(evs[:1])
    changed_at[0]["at"] = "2020-01-01T00:00:00Z"
    assert enrolled.report(changed_at).status == 409
    assert _acked(central_srv, enrolled) == 2
    assert _incident(central_srv, inc)["severity"] == "warning", "a conflicting replay changed stored history"


def test_strict_json_in_payload(central_srv: Central, enrolled: Enrolled) -> None:
    good = json.dumps(enrolled.payload([event(1, data={"cpu": 1})])).encode()
    variants = {
        "duplicate top-level key": good.replace(b'"v": 1', b'"v": 1, "v": 1'),
        "duplicate event key": good.replace(b'"seq": 1,', b'"seq": 1, "seq": 1,'),
        "duplicate data key": good.replace(b'"cpu": 1', b'"cpu": 1, "cpu": 2'),
        "NaN": good.replace(b'"cpu": 1', b'"cpu": NaN'),
        "Infinity": good.replace(b'"cpu": 1', b'"cpu": -Infinity'),
        "true as event seq": good.replace(b'"seq": 1,', b'"seq": true,'),
        "true as seq_from": good.replace(b'"seq_from": 1', b'"seq_from": true'),
        "true as seq_to": good.replace(b'"seq_to": 1', b'"seq_to": true'),
        "true as v": good.replace(b'"v": 1', b'"v": true'),
        "deep nesting": good.replace(b'{"cpu": 1}', b'{"cpu": ' + b"[" * 20000 + b"]" * 20000 + b"}"),
        "not an object": b"[1, 2, 3]",
        "invalid utf-8": good.replace(b'"cpu"', b'"\xff\xfe"'),
    }
    for name, body in variants.items():
        assert body != good or name == "not an object", name
        r = enrolled.post_raw(body)
        assert 400 <= r.status < 500, (name, r.status, r.body)
        assert_error(r)
    assert _acked(central_srv, enrolled) == 0
    assert enrolled.post_raw(good).status == 200


def test_envelope_refusals_are_json_4xx(central_srv: Central, enrolled: Enrolled, shared_school: str) -> None:
    body = json.dumps(enrolled.payload([event(1)])).encode()
    stranger = Ed25519PrivateKey.generate()
    other = central_srv.enroll(shared_school)
    tampered = envelope(enrolled.key, body)
    tampered["payload"] = b64(body.replace(b'"seq": 1,', b'"seq": 1, "x": 0,'))
    stolen_kid = envelope(enrolled.key, body, kid=keyid(raw_public(other.key)))
    no_sigs = envelope(enrolled.key, body)
    no_sigs["signatures"] = []
    ws_b64 = envelope(enrolled.key, body)
    ws_b64["payload"] = ws_b64["payload"][:8] + "\n" + ws_b64["payload"][8:]
    bad_char = envelope(enrolled.key, body)
    bad_char["signatures"][0]["sig"] = "!" + bad_char["signatures"][0]["sig"][1:]
    cases: dict[str, object] = {
        "wrong payloadType": enrolled.post_raw(body, "application/vnd.schulwart.other+json;v=1"),
        "config payloadType": enrolled.post_raw(body, "application/vnd.schulwart.config+json;v=1"),
        "report type v=2": enrolled.post_raw(body, "application/vnd.schulwart.report+json;v=2"),
        "tampered payload": _post_env(enrolled, tampered),
        "unknown key": enrolled.post_raw(body, key=stranger),
        "keyid of another agent": _post_env(enrolled, stolen_kid),
        "no signatures": _post_env(enrolled, no_sigs),
        "base64 with newline": _post_env(enrolled, ws_b64),
        "base64 bad char": _post_env(enrolled, bad_char),
        "body not JSON": http("POST", f"{enrolled.url}/v1/reports", b"hello"),
        "empty body": http("POST", f"{enrolled.url}/v1/reports", b""),
        "gzip header, not gzip": http("POST", f"{enrolled.url}/v1/reports", b"hello", {"Content-Encoding": "gzip"}),
        "unknown encoding": http("POST", f"{enrolled.url}/v1/reports", body, {"Content-Encoding": "br"}),
        "oversize": http("POST", f"{enrolled.url}/v1/reports", b'{"p": "' + b"A" * 8_000_000 + b'"}'),
        "gzip bomb": http("POST", f"{enrolled.url}/v1/reports", gzip.compress(b" " * 64_000_000),
                          {"Content-Encoding": "gzip"}),
    }
    for name, r in cases.items():
        try:
            assert_error(r)  # type: ignore[arg-type]
        except AssertionError as e:
            raise AssertionError(f"{name}: {e}") from None
    assert _acked(central_srv, enrolled) == 0


def test_signature_is_checked_before_parsing(central_srv: Central, enrolled: Enrolled) -> None:
    """Verify first, parse after: garbage signed by a stranger is refused for the key, not for the JSON."""
    stranger = Ed25519PrivateKey.generate()
    good = json.dumps(enrolled.payload([event(1)])).encode()
    ref = enrolled.post_raw(good, key=stranger)
    for body in (b"{not json", good.replace(b'"v": 1', b'"v": 1, "v": 1'), good.replace(b"1", b"NaN", 1)):
        r = enrolled.post_raw(body, key=stranger)
        assert (r.status, r.json()) == (ref.status, ref.json()), (body[:40], r.body)
    # the payloadType check comes after the signature, too
    r = enrolled.post_raw(good, "application/x-unknown", key=stranger)
    assert (r.status, r.json()) == (ref.status, ref.json()), r.body


def test_payload_must_name_the_enrolled_identity(central_srv: Central, enrolled: Enrolled) -> None:
    other_school = central_srv.add_school(carrier="Kreis-Z")
    other_agent = central_srv.enroll(other_school)
    for over in ({"school_id": other_school}, {"agent_id": other_agent.agent_id},
                 {"school_id": other_school, "agent_id": other_agent.agent_id}):
        r = enrolled.post_raw(json.dumps(enrolled.payload([event(1)], **over)).encode())
        assert_error(r)
    assert _acked(central_srv, enrolled) == 0
    assert central_srv.agent_row(other_school, other_agent.agent_id)["acked_seq"] == 0
    assert central_srv.school(other_school)["last_report_at"] is None


def test_revoked_agent_is_refused(central_srv: Central, enrolled: Enrolled) -> None:
    assert enrolled.report([event(1)]).status == 200
    p = central_srv.cli("agent", "revoke", enrolled.agent_id)
    assert p.returncode == 0, p.stderr
    assert p.stdout == ""
    assert_error(enrolled.report([event(2)]))
    assert_error(enrolled.report([event(1)]))
    assert_error(enrolled.state(1))
    assert _acked(central_srv, enrolled) == 1


def test_timestamps_never_decide_acceptance(central_srv: Central, enrolled: Enrolled) -> None:
    old = {"seq": 1, "at": "2019-03-01T08:00:00Z", "kind": "health.snapshot", "data": {"cpu": 3}}
    r = enrolled.post_raw(json.dumps(enrolled.payload([old], sent_at="2019-03-01T08:00:01Z")).encode())
    assert r.status == 200, r.body
    future = {"seq": 2, "at": "2031-01-01T00:00:00Z", "kind": "health.snapshot", "data": {"cpu": 3}}
    r = enrolled.post_raw(json.dumps(enrolled.payload([future], sent_at="2031-01-01T00:00:01Z")).encode())
    assert r.status == 200, r.body
    assert _acked(central_srv, enrolled) == 2
    # "central flags the skew instead": something in the school's view says so
    doc = central_srv.school(enrolled.school_id)
    assert "skew" in json.dumps(doc).lower()


def _state_payload(a: Enrolled, last_seq: int, open_incidents: list[dict[str, object]], cpu: int) -> bytes:
    # The contract fixes only `last_seq` (and, by analogy with reports, v/agent_id/school_id); the other field
    # names ("made_at", "open_incidents", "snapshot") follow the present implementation.
    return json.dumps({"v": 1, "agent_id": a.agent_id, "school_id": a.school_id, "last_seq": last_seq,
                       "made_at": now_rfc3339(), "sent_at": now_rfc3339(),
                       "open_incidents": open_incidents, "snapshot": {"cpu": cpu}}).encode()


def test_state_payload_newest_wins(central_srv: Central, school: str) -> None:
    a = central_srv.enroll(school)
    assert a.report([event(1), event(2)]).status == 200
    inc = incident_data(f"inc-{uuid.uuid4().hex[:8]}", severity="critical")
    r = a.post_raw(_state_payload(a, 2, [inc], 90), STATE_TYPE)
    assert r.status == 200, r.body
    s = central_srv.school(school)
    assert s["open_incidents"] == 1 and s["status"] == "broken", s
    # an older state (smaller last_seq) changes nothing, even if made later
    r = a.post_raw(_state_payload(a, 1, [], 10), STATE_TYPE)
    assert r.status == 200, r.body
    s = central_srv.school(school)
    assert s["open_incidents"] == 1 and s["status"] == "broken", s
    assert inc["id"] in [i["id"] for i in central_srv.get("/v1/incidents").json()["incidents"]]
    # a newer one is the present
    r = a.post_raw(_state_payload(a, 3, [], 20), STATE_TYPE)
    assert r.status == 200, r.body
    s = central_srv.school(school)
    assert s["open_incidents"] == 0 and s["status"] == "ok", s
    # the state never moves the ack: it is not part of the sequence
    assert central_srv.agent_row(school, a.agent_id)["acked_seq"] == 2


def test_state_payload_is_verified_like_reports(central_srv: Central, enrolled: Enrolled) -> None:
    body = _state_payload(enrolled, 0, [], 1)
    assert_error(enrolled.post_raw(body, STATE_TYPE, key=Ed25519PrivateKey.generate()))
    assert_error(enrolled.post_raw(body.replace(b'"last_seq": 0', b'"last_seq": true'), STATE_TYPE))
    assert_error(enrolled.post_raw(body.replace(b'"v": 1', b'"v": 1, "v": 1'), STATE_TYPE))
    # a state body under the report type (and vice versa) is not accepted
    assert_error(enrolled.post_raw(body, REPORT_TYPE))
    assert_error(enrolled.post_raw(json.dumps(enrolled.payload([event(1)])).encode(), STATE_TYPE))


def test_event_for_unknown_incident_stores_no_half_record(central_srv: Central, enrolled: Enrolled) -> None:
    ghost = f"ghost-{uuid.uuid4().hex[:8]}"
    r = enrolled.report([event(1, "incident.acknowledged", {"id": ghost, "by": "tech"})])
    assert r.status < 500, r.body  # acked or refused, but never a crash
    listed = [i for i in central_srv.get("/v1/incidents?state=all").json()["incidents"] if i["id"] == ghost]
    assert all(i.get("key") and i.get("opened_at") for i in listed), listed


@pytest.mark.xfail(strict=True, reason="deviation (minor): a request with a malformed Content-Length header is refused "
                   "by the HTTP layer with a text/plain body, not {\"error\": ...}")
def test_malformed_http_framing_is_a_json_refusal(central_srv: Central) -> None:
    r = http("POST", f"{central_srv.url}/v1/reports", b"{}", {"Content-Length": "abc"})
    assert_error(r)


ED25519_L = 2**252 + 27742317777372353535851937790883648493


def test_non_canonical_signature_is_refused(central_srv: Central, enrolled: Enrolled) -> None:
    body = json.dumps(enrolled.payload([event(1)])).encode()
    env = envelope(enrolled.key, body)
    sig = base64.b64decode(env["signatures"][0]["sig"])
    s = int.from_bytes(sig[32:], "little") + ED25519_L  # same point equation, S >= L: malleated
    assert s < 2**256
    env["signatures"][0]["sig"] = b64(sig[:32] + s.to_bytes(32, "little"))
    assert_error(_post_env(enrolled, env))
    junk = envelope(enrolled.key, body)
    junk["signatures"][0]["sig"] += "=="  # junk padding
    assert_error(_post_env(enrolled, junk))
    assert _acked(central_srv, enrolled) == 0


def test_out_of_range_sequence_numbers_are_refused(central_srv: Central, enrolled: Enrolled) -> None:
    for seq in (0, -1, 2**63, 2**64 + 1):
        ev = event(1)
        ev["seq"] = seq
        r = enrolled.post_raw(json.dumps(enrolled.payload([ev])).encode())
        assert 400 <= r.status < 500 and r.status != 200, (seq, r.status, r.body)
        assert_error(r)
    assert _acked(central_srv, enrolled) == 0


def test_concurrent_different_batches_for_one_seq_apply_once(central_srv: Central, enrolled: Enrolled) -> None:
    inc_ids = [f"race-{uuid.uuid4().hex[:8]}" for _ in range(8)]
    bodies = [json.dumps(enrolled.payload([event(1, "incident.opened", incident_data(i))])).encode()
              for i in inc_ids]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(enrolled.post_raw, bodies))
    statuses = sorted(r.status for r in results)
    assert statuses.count(200) == 1 and statuses.count(409) == 7, [(r.status, r.body) for r in results]
    winner = inc_ids[[r.status for r in results].index(200)]
    stored = {i["id"] for i in central_srv.get("/v1/incidents").json()["incidents"]} & set(inc_ids)
    assert stored == {winner}
    assert _acked(central_srv, enrolled) == 1

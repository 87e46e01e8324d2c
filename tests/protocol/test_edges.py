"""The remaining refusal branches of protocol/, each with the input that reaches it."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from protocol import envelope, errors, schema
from protocol.encoding import b64decode_strict
from protocol.keys import generate_private_key, keyid
from protocol.tokens import issue_technician_token

AT = "2026-03-02T07:15:00Z"
KEY = generate_private_key()
KEYS = {keyid(KEY): KEY.public_key()}


def test_base64_takes_bytes_too() -> None:
    assert b64decode_strict(b"aGk=") == b"hi"


def test_verify_takes_an_already_parsed_envelope() -> None:
    doc = envelope.sign_envelope(b"x", schema.REPORT_TYPE, KEY)
    assert envelope.verify(doc, KEYS, {schema.REPORT_TYPE}).payload == b"x"


@pytest.mark.parametrize("parsed", [[1, 2], 5, None])
def test_verify_refuses_an_already_parsed_non_object(parsed: object) -> None:
    # Central parses first to find the key; a JSON list there was once a TypeError (500).
    with pytest.raises(errors.MalformedError) as info:
        envelope.verify(parsed, KEYS, {schema.REPORT_TYPE})
    assert info.value.reason == "bad_envelope"


def test_verify_takes_text_too() -> None:
    text = envelope.sign(b"x", schema.REPORT_TYPE, KEY).decode()
    assert envelope.verify(text, KEYS, {schema.REPORT_TYPE}).payload == b"x"


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.update(payloadType=5),
        lambda d: d.update(payload=None),
        lambda d: d["signatures"][0].update(keyid=7),
        lambda d: d["signatures"][0].update(keyid="k" * 129),
        lambda d: d.update(signatures=["not an object"]),
    ],
)
def test_envelope_field_types(mutate) -> None:
    doc = envelope.sign_envelope(b"x", schema.REPORT_TYPE, KEY)
    mutate(doc)
    with pytest.raises(errors.MalformedError) as info:
        envelope.verify(json.dumps(doc).encode(), KEYS, {schema.REPORT_TYPE})
    assert info.value.reason == "bad_envelope"


def test_sequence_errors_carry_the_expected_seq() -> None:
    gap = errors.GapError("batch starts at 9", expected_seq=5)
    assert (gap.expected_seq, gap.reason, gap.message) == (5, "sequence_gap", "batch starts at 9")
    assert errors.ConflictError("forked", expected_seq=3, reason="custom").reason == "custom"


@pytest.mark.parametrize(
    "data",
    [
        {"host": {f"k{i}": i for i in range(300)}},
        {"host": {"k" * 200: 1}},
        {"host": "not an object"},
    ],
    ids=["too many keys", "key too long", "section not an object"],
)
def test_snapshot_data_caps(data: dict) -> None:
    with pytest.raises(errors.MalformedError):
        schema.make_event(1, AT, "health.snapshot", data)


def test_incident_updated_checks_what_it_carries() -> None:
    with pytest.raises(errors.MalformedError):
        schema.make_event(1, AT, "incident.updated", {"id": "i", "severity": "loud"})
    with pytest.raises(errors.MalformedError):
        schema.make_event(1, AT, "incident.updated", {"id": "i", "title": 5})
    assert schema.make_event(1, AT, "incident.updated", {"id": "i", "severity": "info", "title": "ok"})


def test_report_edge_cases() -> None:
    with pytest.raises(ValueError):
        schema.build_report("a", "s", [], AT)
    doc = json.loads(schema.build_report("a", "s", [schema.make_event(5, AT, "health.snapshot", {})], AT))
    doc.update(seq_from=6, seq_to=5)
    with pytest.raises(errors.MalformedError):
        schema.parse_report(doc)


def test_state_edge_cases(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = json.loads(schema.build_state("a", "s", 0, AT, [], None))
    assert schema.parse_state(raw).snapshot is None
    with pytest.raises(errors.MalformedError):
        schema.parse_state({**raw, "devices": {}})
    monkeypatch.setattr(schema, "MAX_STATE_ITEMS", 1)
    with pytest.raises(errors.TooLargeError):
        schema.parse_state({**raw, "devices": [{"id": "d1", "class": "x"}, {"id": "d2", "class": "x"}]})


def test_bundle_envelope_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(schema, "MAX_BUNDLE_ENVELOPES", 1)
    with pytest.raises(errors.TooLargeError):
        schema.parse_bundle(schema.build_bundle("a", "s", AT, [b"{}", b"{}"]))


@pytest.mark.parametrize("name", ["", "x" * 129])
def test_technician_name_length(name: str) -> None:
    with pytest.raises(ValueError):
        issue_technician_token(KEY, name, "all", datetime(2026, 1, 1, tzinfo=UTC))

"""Payload schemas: validation, continuity, caps, versions and forward compatibility."""

from __future__ import annotations

import hashlib
import json
from dataclasses import FrozenInstanceError, fields
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import errors, schema

AT = "2026-03-02T07:15:00Z"
OPENED = {
    "id": "inc-1",
    "key": "ap-down:ap-gym",
    "category": "wlan",
    "severity": "critical",
    "title": "AP Turnhalle ist offline",
    "subject": "ap-gym",
}


def _report(events: list[dict], **over: object) -> dict:
    doc = json.loads(schema.build_report("agent-1", "gs-nord", events, AT))
    doc.update(over)
    return doc


def _events(start: int = 1, n: int = 3) -> list[dict]:
    return [schema.make_event(start + i, AT, "health.snapshot", {"counts": {"tablets": i}}) for i in range(n)]


def test_a_built_report_parses_back() -> None:
    events = [*_events(5, 2), schema.make_event(7, AT, "incident.opened", OPENED)]
    report = schema.parse_report(schema.build_report("agent-1", "gs-nord", events, AT))
    assert (report.agent_id, report.school_id, report.seq_from, report.seq_to) == ("agent-1", "gs-nord", 5, 7)
    assert [e.seq for e in report.events] == [5, 6, 7]
    assert report.events[2].data["key"] == "ap-down:ap-gym"
    assert [e.to_json() for e in report.events] == events


def test_unknown_fields_of_v1_are_kept() -> None:
    events = _events()
    events[0]["trace"] = "abc"
    doc = _report(events, future_field={"x": 1})
    report = schema.parse_report(json.dumps(doc).encode())
    assert report.extra == {"future_field": {"x": 1}}
    assert report.events[0].extra == {"trace": "abc"}
    assert report.events[0].to_json()["trace"] == "abc"


def test_unknown_major_version_is_refused_with_a_clear_reason() -> None:
    with pytest.raises(errors.UnsupportedError) as info:
        schema.parse_report(json.dumps(_report(_events(), v=2)).encode())
    assert info.value.reason == "unsupported_version"
    assert "version 2" in info.value.message


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda d: d.update(seq_from=True), "bad_payload"),
        (lambda d: d.update(seq_from=0), "bad_payload"),
        (lambda d: d.update(seq_from=-3), "bad_payload"),
        (lambda d: d.update(seq_from=1.0), "bad_payload"),
        (lambda d: d.update(seq_to=2**63), "bad_payload"),
        (lambda d: d.update(seq_to=2), "bad_sequence"),
        (lambda d: d.update(seq_to=4), "bad_sequence"),
        (lambda d: d["events"].reverse(), "bad_sequence"),
        (lambda d: d["events"][1].update(seq=1), "bad_sequence"),
        (lambda d: d.update(agent_id="agent 1; drop"), "bad_payload"),
        (lambda d: d.update(school_id=""), "bad_payload"),
        (lambda d: d.pop("school_id"), "bad_payload"),
        (lambda d: d.update(sent_at="yesterday"), "bad_time"),
        (lambda d: d.update(sent_at="2026-03-02T07:15:00"), "bad_time"),
        (lambda d: d["events"][0].update(kind="incident.exploded"), "bad_payload"),
        (lambda d: d["events"][0].update(data=[]), "bad_payload"),
        (lambda d: d["events"][0].update(at="2026-13-40T99:00:00Z"), "bad_time"),
        (lambda d: d.update(events={}), "bad_payload"),
        (lambda d: d.update(v="1"), "bad_payload"),
    ],
)
def test_invalid_reports_are_refused(mutate, reason: str) -> None:
    doc = _report(_events())
    mutate(doc)
    with pytest.raises(errors.MalformedError) as info:
        schema.parse_report(json.dumps(doc).encode())
    assert info.value.reason == reason


def test_bool_where_a_number_belongs_is_refused_even_as_event_seq() -> None:
    doc = _report(_events(1, 1))
    doc["events"][0]["seq"] = True
    with pytest.raises(errors.MalformedError):
        schema.parse_report(json.dumps(doc).encode())


@pytest.mark.parametrize(
    ("member", "value", "error", "message"),
    [
        ("seq", True, errors.MalformedError, "events[0].seq must be an integer"),
        ("seq", 0, errors.MalformedError, "events[0].seq=0 is outside 1..9223372036854775807"),
        ("seq", 2**63, errors.MalformedError, "events[0].seq=9223372036854775808 is outside 1..9223372036854775807"),
        ("at", 5, errors.MalformedError, "events[0].at must be a string"),
        ("at", None, errors.MalformedError, "events[0].at must be a string"),
        ("at", "2026-03-02T07:15:00.000000000000000000000Z", errors.TooLargeError,
         "events[0].at is longer than 40 characters"),
    ],
)  # fmt: skip
def test_an_events_seq_and_at_are_refused_with_their_place(member: str, value: Any, error: type, message: str) -> None:
    # Checked inline for the common case: a refusal must still name the member and its event.
    doc = _report(_events(1, 1))
    doc["events"][0][member] = value
    with pytest.raises(error) as info:
        schema.parse_report(json.dumps(doc).encode())
    assert info.value.message == message


@pytest.mark.parametrize("missing", ["id", "key", "category", "severity", "title", "subject"])
def test_incident_opened_needs_its_fields(missing: str) -> None:
    data = dict(OPENED)
    del data[missing]
    with pytest.raises(errors.MalformedError):
        schema.make_event(1, AT, "incident.opened", data)


def test_incident_enums_are_checked() -> None:
    with pytest.raises(errors.MalformedError):
        schema.make_event(1, AT, "incident.opened", {**OPENED, "severity": "apocalyptic"})
    with pytest.raises(errors.MalformedError):
        schema.make_event(1, AT, "incident.opened", {**OPENED, "category": "coffee"})


def test_updates_acks_and_notes_name_the_incident_by_id() -> None:
    for kind in ("incident.updated", "incident.resolved", "incident.acknowledged"):
        with pytest.raises(errors.MalformedError):
            schema.make_event(1, AT, kind, {})
        assert schema.make_event(1, AT, kind, {"id": "inc-1"})["kind"] == kind
    with pytest.raises(errors.MalformedError):
        schema.make_event(1, AT, "note.added", {"id": "inc-1"})
    assert schema.make_event(1, AT, "note.added", {"id": "inc-1", "text": "Sicherung getauscht", "by": "A. Weber"})


def test_length_and_count_caps() -> None:
    with pytest.raises(errors.TooLargeError):
        schema.make_event(1, AT, "incident.opened", {**OPENED, "title": "x" * 301})
    with pytest.raises(errors.TooLargeError):
        schema.make_event(1, AT, "health.snapshot", {"host": {"blob": "x" * 5000}})
    with pytest.raises(errors.TooLargeError):
        schema.make_event(1, AT, "health.snapshot", {"host": {"list": list(range(2001))}})
    with pytest.raises(errors.TooLargeError):
        schema.parse_report(schema.build_report("a", "s", _events(1, 11), AT), max_events=10)


def test_time_format_and_parse() -> None:
    moment = datetime(2026, 3, 2, 7, 15, 0, 123456, tzinfo=UTC)
    text = schema.format_time(moment)
    assert text == "2026-03-02T07:15:00.123456Z"
    assert schema.parse_time(text) == moment
    assert schema.parse_time("2026-03-02T08:15:00+01:00") == datetime(2026, 3, 2, 7, 15, tzinfo=UTC)
    assert schema.parse_time("2026-03-02T07:15:00.123456789Z").microsecond == 123456
    with pytest.raises(ValueError):
        schema.format_time(datetime(2026, 3, 2))  # naive: refused


def test_state_payload_round_trip_and_validation() -> None:
    raw = schema.build_state(
        "agent-1", "gs-nord", 42, AT, [OPENED], {"host": {"load1": 0.5}}, [{"id": "d1", "class": "printer"}]
    )
    state = schema.parse_state(raw)
    assert state.last_seq == 42
    assert state.open_incidents[0]["key"] == "ap-down:ap-gym"
    assert state.devices[0]["class"] == "printer"
    bad = json.loads(raw)
    bad["open_incidents"][0].pop("severity")
    with pytest.raises(errors.MalformedError):
        schema.parse_state(json.dumps(bad).encode())
    bad = json.loads(raw)
    bad["last_seq"] = False
    with pytest.raises(errors.MalformedError):
        schema.parse_state(json.dumps(bad).encode())


def test_config_and_bundle_payloads() -> None:
    config = schema.parse_config_payload(schema.build_config_payload("agent-1", 7, AT, {"snapshot_interval_s": 60}))
    assert (config.version, config.settings["snapshot_interval_s"]) == (7, 60)
    bundle = schema.parse_bundle(schema.build_bundle("agent-1", "gs-nord", AT, [b'{"a":1}', b'{"b":2}']))
    assert bundle.envelopes == ('{"a":1}', '{"b":2}')
    with pytest.raises(errors.MalformedError):
        schema.parse_bundle(json.dumps({"v": 1, "agent_id": "a", "school_id": "s", "made_at": AT, "envelopes": [1]}))


def test_event_digest_ignores_key_order_but_not_content() -> None:
    a = {"seq": 1, "at": AT, "kind": "health.snapshot", "data": {"x": 1, "y": 2}}
    b = {"data": {"y": 2, "x": 1}, "kind": "health.snapshot", "at": AT, "seq": 1}
    c = {"seq": 1, "at": AT, "kind": "health.snapshot", "data": {"x": 1, "y": 3}}
    assert schema.event_digest(a) == schema.event_digest(b) != schema.event_digest(c)


SECTIONS = {"host", "wlan", "cabinets", "counts", "outbox"}
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=80, deadline=None)
@given(
    start=st.integers(1, 2**62),
    datas=st.lists(
        # The named snapshot sections must be objects; free-form keys round-trip as they are.
        st.dictionaries(st.text(min_size=1, max_size=10).filter(lambda k: k not in SECTIONS), json_values, max_size=5),
        min_size=1,
        max_size=8,
    ),
)
def test_every_report_round_trips(start: int, datas: list[dict]) -> None:
    events = [schema.make_event(start + i, AT, "health.snapshot", d) for i, d in enumerate(datas)]
    raw = schema.build_report("agent-1", "gs-nord", events, AT)
    report = schema.parse_report(raw)
    assert [e.to_json() for e in report.events] == events
    assert report.seq_to == start + len(datas) - 1


def test_state_carries_the_dropped_events_count() -> None:
    import json as _json

    from protocol.schema import build_state as _build_state
    from protocol.schema import parse_state as _parse_state

    made = "2026-01-01T00:00:00Z"
    assert _parse_state(_build_state("a-1", "s-1", 0, made, [], None, dropped_events=334)).dropped_events == 334
    doc = _json.loads(_build_state("a-1", "s-1", 0, made, [], None))
    assert "dropped_events" not in doc  # none dropped (or an older agent): the field is left out
    assert _parse_state(doc).dropped_events == 0
    for bad in (-1, True, "3"):
        with pytest.raises(errors.MalformedError):
            _parse_state({**doc, "dropped_events": bad})


def test_canonical_event_is_the_text_whose_hash_is_the_digest() -> None:
    # Central stores the text and compares the digest: one serialisation must give both, and the
    # digest must stay what event_digest always was (digests stored before are compared with it).
    wire = (
        '{"x-extra":[1,{"b":2,"a":"ü"}],"kind":"device.seen","seq":1,"at":"2024-05-06T08:00:00Z",'
        '"data":{"model":null,"class":"ipad","id":"d-1","t":1.5e-07}}'
    )
    payload = (
        b'{"v":1,"agent_id":"a1","school_id":"s1","seq_from":1,"seq_to":1,"sent_at":"2024-05-06T08:00:00Z",'
        b'"events":[' + wire.encode() + b"]}"
    )
    event = schema.parse_report(payload).events[0]
    text, digest = event.canonical()
    assert (text, digest) == schema.canonical_event(json.loads(wire))
    assert digest == schema.event_digest(event.to_json()) == hashlib.sha256(text.encode()).hexdigest()
    assert text == json.dumps(json.loads(wire), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    assert event.moment == datetime(2024, 5, 6, 8, 0, tzinfo=UTC)


_JSON_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=8)
_JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), _JSON_TEXT),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_JSON_TEXT, inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=300)
@given(
    st.integers(1, 2**63 - 1),
    st.sampled_from(["2024-05-06T08:00:00.000000Z", "2024-05-06T10:00:00+02:00", "2024-05-06T08:00:00Z"]),
    st.dictionaries(_JSON_TEXT, _JSON_VALUES, max_size=4),
    st.dictionaries(st.sampled_from(["x-extra", "a", "zz", "b\u00e4"]), _JSON_VALUES, max_size=2),
)
def test_an_events_canonical_text_is_that_of_the_whole_event_sorted(
    seq: int, at: str, sections: dict, extra: dict
) -> None:
    # With or without extras, any data: the stored text and digest must be byte for byte what
    # canonical_event() of the received event gives (replays compare against stored digests).
    wire = {**extra, "seq": seq, "at": at, "kind": "health.snapshot", "data": sections}
    payload = json.dumps(
        {"v": 1, "agent_id": "a1", "school_id": "s1", "seq_from": seq, "seq_to": seq, "sent_at": at, "events": [wire]}
    )
    event = schema.parse_report(payload.encode()).events[0]
    text, digest = event.canonical()
    assert text == json.dumps(wire, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    assert (text, digest) == schema.canonical_event(wire)
    assert event.kind == "health.snapshot" and type(event.kind) is str
    # The data's own text (what central stores as a device row's data) is the sorted data alone.
    assert event.canonical_parts() == (text, digest, json.dumps(sections, sort_keys=True, ensure_ascii=False,
                                                                separators=(",", ":")))


@settings(max_examples=300)
@given(
    st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(9998, 12, 31)),
    st.integers(0, 9),
    st.sampled_from(["Z", "+00:00", "+02:00", "-05:30"]),
)
def test_parse_time_reads_every_fraction_length_and_offset(moment: datetime, digits: int, offset: str) -> None:
    fraction = f"{moment.microsecond:06d}{moment.microsecond % 1000:03d}"[:digits]
    text = moment.strftime("%Y-%m-%dT%H:%M:%S") + (f".{fraction}" if digits else "") + offset
    sign, hours, minutes = (1, 0, 0) if offset == "Z" else (int(offset[0] + "1"), int(offset[1:3]), int(offset[4:]))
    zone = timezone(sign * timedelta(hours=hours, minutes=minutes))
    micro = int(fraction[:6].ljust(6, "0")) if digits else 0
    assert schema.parse_time(text) == moment.replace(microsecond=micro, tzinfo=zone)


def test_a_parsed_event_is_the_object_the_constructor_builds() -> None:
    # _parse_event sets the slots itself: every field must be set, the same values as Event(...).
    doc = {"seq": 7, "at": AT, "kind": "device.seen", "data": {"id": "d-1", "class": "ipad"}, "x-new": 1}
    for wire in (doc, {k: v for k, v in doc.items() if k != "x-new"}):
        event = schema._parse_event(wire, "")
        built = schema.Event(
            seq=7,
            at=AT,
            kind="device.seen",
            data=wire["data"],
            extra={k: v for k, v in wire.items() if k == "x-new"},
            payload=event.payload,
            moment=schema.parse_time(AT),
        )
        assert type(event) is schema.Event
        assert {f.name: getattr(event, f.name) for f in fields(schema.Event)} == {
            f.name: getattr(built, f.name) for f in fields(schema.Event)
        }
        assert event == built and repr(event) == repr(built)
        with pytest.raises(FrozenInstanceError):
            event.seq = 8  # type: ignore[misc]

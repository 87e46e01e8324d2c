"""Event payloads: one class per kind, round trips, forward compatibility and every refusal."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import FrozenInstanceError, fields
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import errors, events, schema
from protocol.encoding import dumps
from protocol.events import (
    DeviceChanged,
    DeviceLost,
    DeviceSeen,
    EventKind,
    HealthSnapshot,
    IncidentAcknowledged,
    IncidentOpened,
    IncidentResolved,
    IncidentUpdated,
    NoteAdded,
    parse_event_data,
)

AT = "2026-03-02T07:15:00Z"

# Data shaped exactly as the agent writes it, key order included.
AGENT_DATA: dict[str, dict[str, Any]] = {
    "incident.opened": {
        "id": "inc-1",
        "key": "ap-down:d-0123",
        "category": "wlan",
        "severity": "critical",
        "title": "AP Turnhalle ist offline",
        "subject": "d-0123",
        "opened_at": AT,
        "last_seen": AT,
        "flap_count": 0,
        "acknowledged": False,
        "details": {"clients": 0},
    },
    "incident.updated": {"id": "inc-1", "severity": "warning", "title": "AP langsam", "last_seen": AT, "flap_count": 2},
    "incident.resolved": {"id": "inc-1", "resolved_at": AT, "opened_at": AT, "flap_count": 1},
    "incident.acknowledged": {"id": "inc-1", "by": "A. Weber", "at": AT},
    "note.added": {"id": "inc-1", "by": None, "text": "Sicherung getauscht", "at": AT},
    "device.seen": {"id": "d-1", "class": "ipad", "model": None, "state": "present"},
    "device.changed": {
        "id": "d-1",
        "class": "ipad",
        "model": "iPad9,1",
        "state": "present",
        "name": "Lenas iPad",
        "local_id": "mac:12:34",
        "addresses": ["10.0.0.7"],
    },
    "device.lost": {"id": "d-1", "class": "ipad", "model": None, "state": "lost"},
    "health.snapshot": {"wlan": {"aps": []}, "host": {"cpu": 0.3}, "outbox": {"depth": 0}, "agent": {"v": "1"}},
}

CLASSES = {
    "health.snapshot": HealthSnapshot,
    "device.seen": DeviceSeen,
    "device.changed": DeviceChanged,
    "device.lost": DeviceLost,
    "incident.opened": IncidentOpened,
    "incident.updated": IncidentUpdated,
    "incident.resolved": IncidentResolved,
    "incident.acknowledged": IncidentAcknowledged,
    "note.added": NoteAdded,
}


def test_the_kinds_are_defined_once_and_the_sets_follow() -> None:
    assert set(CLASSES) == events.EVENT_KINDS == {k.value for k in EventKind}
    assert events.DEVICE_KINDS == {"device.seen", "device.changed", "device.lost"}
    assert events.INCIDENT_KINDS == {
        "incident.opened",
        "incident.updated",
        "incident.resolved",
        "incident.acknowledged",
        "note.added",
    }
    assert events.CATEGORIES == {"wlan", "cabinet", "device", "host", "agent"}
    assert events.SEVERITIES == {"info", "warning", "critical"}
    assert (schema.EVENT_KINDS, schema.CATEGORIES, schema.SEVERITIES) == (
        events.EVENT_KINDS,
        events.CATEGORIES,
        events.SEVERITIES,
    )
    assert EventKind.INCIDENT_OPENED == "incident.opened"
    assert EventKind.INCIDENT_OPENED.action == "opened"
    assert dumps({"kind": EventKind.NOTE_ADDED}) == b'{"kind":"note.added"}'


@pytest.mark.parametrize("kind", sorted(AGENT_DATA))
def test_round_trip_per_kind_keeps_bytes(kind: str) -> None:
    data = AGENT_DATA[kind]
    payload = parse_event_data(kind, data)
    assert type(payload) is CLASSES[kind]
    assert payload.kind == kind
    assert type(payload).from_data(data) == payload
    assert dumps(payload.to_data()) == dumps(data)


@pytest.mark.parametrize("kind", sorted(AGENT_DATA))
def test_unknown_fields_are_kept_and_written_back(kind: str) -> None:
    data = {**AGENT_DATA[kind], "future": {"x": [1, 2]}, "trace": "abc"}
    payload = parse_event_data(kind, data)
    assert payload.extra["future"] == {"x": [1, 2]}
    assert payload.extra["trace"] == "abc"
    assert payload.to_data() == data


def test_typed_attributes() -> None:
    opened = IncidentOpened.from_data(AGENT_DATA["incident.opened"])
    assert (opened.id, opened.category, opened.severity, opened.subject) == ("inc-1", "wlan", "critical", "d-0123")
    assert (opened.flap_count, opened.acknowledged, opened.details) == (0, False, {"clients": 0})
    assert opened.extra == {}
    updated = IncidentUpdated.from_data({"id": "inc-1"})
    assert (updated.severity, updated.title) == (None, None)
    assert updated.to_data() == {"id": "inc-1"}
    note = NoteAdded.from_data(AGENT_DATA["note.added"])
    assert (note.by, note.text) == (None, "Sicherung getauscht")
    changed = DeviceChanged.from_data(AGENT_DATA["device.changed"])
    assert (changed.device_class, changed.model, changed.addresses) == ("ipad", "iPad9,1", ("10.0.0.7",))
    snapshot = HealthSnapshot.from_data(AGENT_DATA["health.snapshot"])
    assert snapshot.extra == {"agent": {"v": "1"}}
    assert list(snapshot.sections) == ["wlan", "host", "outbox", "agent"]


def test_the_agent_builds_the_same_bytes_as_before() -> None:
    built = [
        IncidentOpened(
            id="inc-1",
            key="ap-down:d-0123",
            category="wlan",
            severity="critical",
            title="AP Turnhalle ist offline",
            subject="d-0123",
            opened_at=AT,
            last_seen=AT,
            flap_count=0,
            acknowledged=False,
            details={"clients": 0},
        ),
        IncidentUpdated(id="inc-1", severity="warning", title="AP langsam", last_seen=AT, flap_count=2),
        IncidentResolved(id="inc-1", resolved_at=AT, opened_at=AT, flap_count=1),
        IncidentAcknowledged(id="inc-1", by="A. Weber", at=AT),
        NoteAdded(id="inc-1", by=None, text="Sicherung getauscht", at=AT),
        DeviceSeen(id="d-1", device_class="ipad", model=None, state="present"),
        DeviceChanged(
            id="d-1",
            device_class="ipad",
            model="iPad9,1",
            state="present",
            name="Lenas iPad",
            local_id="mac:12:34",
            addresses=("10.0.0.7",),
        ),
        DeviceLost(id="d-1", device_class="ipad", state="lost"),
        HealthSnapshot(sections=AGENT_DATA["health.snapshot"]),
    ]
    for payload in built:
        assert dumps(payload.to_data()) == dumps(AGENT_DATA[payload.kind]), payload.kind


@pytest.mark.parametrize(
    ("kind", "data"),
    [
        ("incident.acknowledged", {"id": "inc-1"}),
        ("note.added", {"id": "inc-1", "text": "t"}),
        ("device.seen", {"id": "d-1", "class": "ipad"}),
    ],
)
def test_a_nullable_member_left_out_stays_out(kind: str, data: dict[str, Any]) -> None:
    payload = parse_event_data(kind, data)
    assert payload.to_data() == data


@pytest.mark.parametrize(
    ("kind", "data"),
    [
        ("incident.opened", {**AGENT_DATA["incident.opened"], "flap_count": True, "details": [], "opened_at": None}),
        ("incident.opened", {**AGENT_DATA["incident.opened"], "acknowledged": 1, "last_seen": 5}),
        ("incident.resolved", {"id": "inc-1", "resolved_at": 7, "flap_count": "2"}),
        ("incident.acknowledged", {"id": "inc-1", "by": None, "at": None}),
        ("device.seen", {"id": "d-1", "class": "ipad", "model": 9, "addresses": ["a", 1], "state": None}),
        ("device.lost", {"id": "d-1", "class": "ipad", "addresses": "10.0.0.1"}),
    ],
)
def test_unchecked_members_of_another_type_are_kept_as_sent(kind: str, data: dict[str, Any]) -> None:
    payload = parse_event_data(kind, data)
    assert payload.to_data() == data


def test_a_device_of_another_type_keeps_its_raw_model() -> None:
    payload = DeviceSeen.from_data({"id": "d-1", "class": "ipad", "model": 9})
    assert payload.model is None
    assert payload.extra == {"model": 9}
    assert payload.omitted == {"model"}


OPENED = AGENT_DATA["incident.opened"]


def _without(data: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k != key}


@pytest.mark.parametrize(
    ("kind", "data", "error", "message"),
    [
        ("incident.opened", [], errors.MalformedError, "e.data must be a JSON object"),
        ("incident.opened", {**OPENED, "x": "y" * 4097}, errors.TooLargeError, "e.data: a string is longer than 4096"),
        ("health.snapshot", {"l": list(range(2001))}, errors.TooLargeError, "e.data: a list has more than 2000"),
        ("health.snapshot", {str(i): i for i in range(257)}, errors.TooLargeError, "e.data: an object has more than"),
        ("health.snapshot", {"k" * 129: 1}, errors.TooLargeError, "e.data: a key is longer than 128"),
        ("incident.opened", _without(OPENED, "id"), errors.MalformedError, "e.id must be a string"),
        ("incident.opened", {**OPENED, "id": "a b"}, errors.MalformedError, "e.id has characters outside"),
        ("incident.opened", {**OPENED, "id": "i" * 129}, errors.TooLargeError, "e.id is longer than 128"),
        ("incident.opened", _without(OPENED, "key"), errors.MalformedError, "e.key must be a string"),
        ("incident.opened", {**OPENED, "key": "k" * 257}, errors.TooLargeError, "e.key is longer than 256"),
        ("incident.opened", {**OPENED, "category": "coffee"}, errors.MalformedError, "e.category must be one of"),
        ("incident.opened", _without(OPENED, "severity"), errors.MalformedError, "e.severity must be one of"),
        ("incident.opened", {**OPENED, "category": []}, errors.MalformedError, "e.category must be one of"),
        ("incident.updated", {"id": "i", "severity": {}}, errors.MalformedError, "e.severity must be one of"),
        ("incident.opened", {**OPENED, "title": None}, errors.MalformedError, "e.title must be a string"),
        ("incident.opened", {**OPENED, "title": "t" * 301}, errors.TooLargeError, "e.title is longer than 300"),
        ("incident.opened", _without(OPENED, "subject"), errors.MalformedError, "e.subject is required (may be"),
        ("incident.opened", {**OPENED, "subject": 5}, errors.MalformedError, "e.subject must be a string"),
        ("incident.opened", {**OPENED, "subject": "s" * 257}, errors.TooLargeError, "e.subject is longer than 256"),
        ("incident.updated", {}, errors.MalformedError, "e.id must be a string"),
        ("incident.updated", {"id": "i", "severity": None}, errors.MalformedError, "e.severity must be one of"),
        ("incident.updated", {"id": "i", "title": 5}, errors.MalformedError, "e.title must be a string"),
        ("incident.resolved", {"id": ""}, errors.MalformedError, "e.id has characters outside"),
        ("incident.acknowledged", {"id": "i", "by": 5}, errors.MalformedError, "e.by must be a string"),
        ("incident.acknowledged", {"id": "i", "by": "b" * 129}, errors.TooLargeError, "e.by is longer than 128"),
        ("note.added", {"id": "i", "by": []}, errors.MalformedError, "e.by must be a string"),
        ("note.added", {"id": "i"}, errors.MalformedError, "e.text must be a string"),
        ("note.added", {"id": "i", "text": "t" * 4001}, errors.TooLargeError, "e.text is longer than 4000"),
        ("device.seen", {"class": "ipad"}, errors.MalformedError, "e.id must be a string"),
        ("device.changed", {"id": "d"}, errors.MalformedError, "e.class must be a string"),
        ("device.lost", {"id": "d", "class": "c" * 33}, errors.TooLargeError, "e.class is longer than 32"),
        ("health.snapshot", None, errors.MalformedError, "e.data must be a JSON object"),
        ("health.snapshot", {"host": "up"}, errors.MalformedError, "e.host must be an object or list"),
        ("health.snapshot", {"outbox": 5}, errors.MalformedError, "e.outbox must be an object or list"),
        ("incident.exploded", {}, errors.MalformedError, "e.kind 'incident.exploded' is not a known event kind"),
        (None, {}, errors.MalformedError, "e.kind 'None' is not a known event kind"),
        (["incident.opened"], {}, errors.MalformedError, "e.kind \"['incident.opened']\" is not a known event kind"),
    ],
)
def test_each_refusal_names_its_field(kind: object, data: object, error: type[Exception], message: str) -> None:
    with pytest.raises(error) as info:
        parse_event_data(kind, data, where="e.")
    assert type(info.value) is error
    assert isinstance(info.value, errors.MalformedError)
    assert str(info.value).startswith(message)
    expected_reason = "too_large" if error is errors.TooLargeError else "bad_payload"
    assert info.value.reason == expected_reason


def test_from_data_without_a_place_names_just_the_field() -> None:
    with pytest.raises(errors.MalformedError) as info:
        NoteAdded.from_data({"id": "i"})
    assert info.value.message == "text must be a string"


def test_a_report_carries_the_parsed_payloads() -> None:
    raw = [schema.make_event(i + 1, AT, kind, data) for i, (kind, data) in enumerate(sorted(AGENT_DATA.items()))]
    report = schema.parse_report(schema.build_report("agent-1", "gs-nord", raw, AT))
    for event, (kind, data) in zip(report.events, sorted(AGENT_DATA.items()), strict=True):
        assert event.kind == kind
        assert type(event.payload) is CLASSES[kind]
        assert event.payload.to_data() == data == event.data


def test_the_state_carries_parsed_incidents_and_devices() -> None:
    state = schema.parse_state(schema.build_state("a", "s", 3, AT, [OPENED], {"host": {}}, [AGENT_DATA["device.seen"]]))
    assert state.incidents == (IncidentOpened.from_data(OPENED),)
    assert state.device_payloads == (DeviceSeen.from_data(AGENT_DATA["device.seen"]),)
    with pytest.raises(errors.MalformedError) as info:
        schema.parse_state(schema.build_state("a", "s", 3, AT, [_without(OPENED, "subject")], None))
    assert info.value.message == "open_incidents[0].subject is required (may be null)"


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
_NAMES = st.sampled_from(
    ["id", "key", "category", "severity", "title", "subject", "by", "text", "at", "class", "model", "state",
     "name", "local_id", "addresses", "opened_at", "flap_count", "details", "host", "x"]
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from(sorted(AGENT_DATA)), drop=st.lists(_NAMES, max_size=3), add=st.dictionaries(_NAMES, _JSON))
def test_whatever_is_accepted_is_written_back_unchanged(kind: str, drop: list[str], add: dict[str, Any]) -> None:
    data = {k: v for k, v in AGENT_DATA[kind].items() if k not in drop} | add
    try:
        payload = parse_event_data(kind, data)
    except errors.MalformedError:
        return
    assert payload.to_data() == data


_DEVICE_VALUES = st.one_of(
    st.none(),
    st.integers(),
    st.booleans(),
    st.lists(st.text(max_size=3), max_size=2),
    st.sampled_from(["d-1", "ipad", "", " x", "x" * 33, "x" * 129, "x" * 4097, "ü", "a/b"]),
    st.text(max_size=12),
)
_DEVICE_KEYS = st.sampled_from(["id", "class", "model", "state", "name", "local_id", "addresses", "x-new"])


def _outcome(read: Callable[[], object]) -> object:
    """What a reader gives: its payload, or its refusal's type and message."""
    try:
        return read()
    except errors.ProtocolError as exc:
        return (type(exc), str(exc))


@settings(max_examples=400)
@given(st.dictionaries(_DEVICE_KEYS, _DEVICE_VALUES, max_size=8), st.sampled_from([DeviceSeen, DeviceChanged]))
def test_device_data_parses_as_the_general_reader_parses_it(data: dict[str, Any], cls: type[DeviceSeen]) -> None:
    # The one-pass check for plain device data must agree with the general reader on every input:
    # the same payload (extras and omissions included), or the same refusal.
    assert _outcome(lambda: cls.from_data(data, where="e.")) == _outcome(lambda: cls._read(data, "e."))


def test_plain_device_data_takes_the_one_pass_check() -> None:
    assert events._plain_device({"id": "d-1", "class": "ipad", "model": None, "state": "present"})
    assert events._plain_device({"id": "d-1", "class": "ipad"})
    for data in (
        {"id": "d-1", "class": "ipad", "state": None},  # a null state is kept in extra
        {"id": "d-1", "class": "ipad", "addresses": ["10.0.0.1"]},
        {"id": "d-1", "class": "c" * 33},
        {"id": "-d", "class": "ipad"},
        {"id": "d-1", "class": "ipad", "name": "n" * 4097},
        ["d-1"],
    ):
        assert not events._plain_device(data)


_OPENED_VALUES = st.one_of(
    st.none(),
    st.integers(),
    st.booleans(),
    st.lists(st.text(max_size=3), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=1),
    st.sampled_from(["i-1", "wlan", "agent", "warning", "critical", "bogus", "", " x", "-i", "ü", "x" * 129]),
    st.sampled_from(["k" * 256, "k" * 257, "t" * 300, "t" * 301, "x" * 4097]),
    st.text(max_size=12),
)
_OPENED_KEYS = st.sampled_from(["id", "key", "category", "severity", "title", "subject", "code", "x-new"])
_OPENED_BASE = {"id": "i-1", "key": "k", "category": "wlan", "severity": "warning", "title": "t", "subject": None}


@settings(max_examples=500)
@given(st.dictionaries(_OPENED_KEYS, _OPENED_VALUES, max_size=3), st.lists(_OPENED_KEYS, max_size=2))
def test_incident_opened_parses_as_the_general_reader_parses_it(change: dict[str, Any], drop: list[str]) -> None:
    # The one-pass check for plain incident.opened data must agree with the general reader on
    # every input: the same payload, or the same refusal.
    data = {k: v for k, v in (_OPENED_BASE | change).items() if k not in drop}
    assert _outcome(lambda: IncidentOpened.from_data(data, where="e.")) == _outcome(
        lambda: IncidentOpened._read(data, "e.")
    )


def test_plain_incident_opened_data_takes_the_one_pass_check() -> None:
    assert events._plain_opened(_OPENED_BASE)
    assert events._plain_opened(_OPENED_BASE | {"subject": "ap1", "key": "k" * 256, "title": "t" * 300})
    for change in (
        {"subject": "s" * 257},
        {"category": ["wlan"]},
        {"severity": {"a": 1}},
        {"severity": "fatal"},
        {"id": "-i"},
        {"key": 1},
        {"key": "k" * 257},
        {"title": "t" * 301},
        {"code": "c"},  # a known optional member goes the general way
    ):
        assert not events._plain_opened(_OPENED_BASE | change)
    assert not events._plain_opened(["i-1"])


def test_plain_device_data_builds_the_object_the_constructor_builds() -> None:
    # The one-pass path sets the slots itself: every field must be set (a field added to
    # DevicePayload and not to the fast path reads as an AttributeError here), and the object is
    # the same one the dataclass constructor makes, of the kind's own class.
    for cls in (DeviceSeen, DeviceChanged, DeviceLost):
        for data, omitted in (
            ({"id": "d-1", "class": "ipad", "model": None, "state": "present", "name": "n", "local_id": "l"}, set()),
            ({"id": "d-1", "class": "ipad"}, {"model"}),
        ):
            parsed = cls.from_data(data)
            built = cls(
                id="d-1",
                device_class="ipad",
                model=None,
                state=data.get("state"),
                name=data.get("name"),
                local_id=data.get("local_id"),
                omitted=frozenset(omitted),
            )
            assert type(parsed) is cls
            assert {f.name: getattr(parsed, f.name) for f in fields(cls)} == {
                f.name: getattr(built, f.name) for f in fields(cls)
            }
            assert parsed == built and repr(parsed) == repr(built)
            assert parsed.extra is not cls.from_data(data).extra  # each its own, as default_factory=dict gives
            with pytest.raises(FrozenInstanceError):
                parsed.id = "d-2"  # type: ignore[misc]


_RESOLVED_KEYS = st.sampled_from(["id", "resolved_at", "opened_at", "flap_count", "x-new"])
_RESOLVED_VALUES = st.one_of(
    st.none(),
    st.integers(),
    st.booleans(),
    st.floats(allow_nan=False),
    st.lists(st.text(max_size=3), max_size=2),
    st.sampled_from(["inc-1", "-i", AT, "", "x" * 129, "x" * 4097]),
    st.text(max_size=12),
)


@settings(max_examples=500)
@given(st.dictionaries(_RESOLVED_KEYS, _RESOLVED_VALUES, max_size=5))
def test_incident_resolved_parses_as_the_general_reader_parses_it(data: dict[str, Any]) -> None:
    # The one-pass check for the agent's incident.resolved data must agree with the general reader
    # on every input: the same payload (extras included), or the same refusal.
    assert _outcome(lambda: IncidentResolved.from_data(data, where="e.")) == _outcome(
        lambda: IncidentResolved._read(data, "e.")
    )


def test_plain_incident_data_takes_the_one_pass_path_and_builds_the_constructors_object() -> None:
    resolved = {"id": "inc-1", "resolved_at": AT, "opened_at": AT, "flap_count": 2}
    assert events._plain_resolved(resolved) and events._plain_resolved({"id": "inc-1"})
    for change in ({"flap_count": True}, {"resolved_at": None}, {"opened_at": "x" * 4097}, {"x": 1}, {"id": "-i"}):
        assert not events._plain_resolved(resolved | change)
    assert not events._plain_resolved(["inc-1"])
    built: list[tuple[Any, Any]] = [
        (
            IncidentResolved.from_data(resolved),
            IncidentResolved(id="inc-1", resolved_at=AT, opened_at=AT, flap_count=2),
        ),
        (IncidentResolved.from_data({"id": "inc-1"}), IncidentResolved(id="inc-1")),
        (
            IncidentOpened.from_data(_OPENED_BASE),
            IncidentOpened(id="i-1", key="k", category="wlan", severity="warning", title="t", subject=None),
        ),
    ]
    for parsed, expected in built:
        # Every field set (one added to the class and not to the one-pass path reads as an
        # AttributeError here), the same values, each its own extra dict.
        assert type(parsed) is type(expected)
        assert {f.name: getattr(parsed, f.name) for f in fields(parsed)} == {
            f.name: getattr(expected, f.name) for f in fields(expected)
        }
        assert parsed == expected and repr(parsed) == repr(expected)
    assert IncidentOpened.from_data(_OPENED_BASE).extra is not IncidentOpened.from_data(_OPENED_BASE).extra

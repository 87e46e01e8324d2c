"""central.canonical.canonical_parts must give Event.canonical_parts() byte for byte: stored body and digest.

Old digests must keep matching (a resent batch is compared by digest), so every value JSON can
hold is tried: strings with every kind of escape and non-ASCII, integers past 64 bits, floats
(which msgspec spells its own way outside 1e-4..1e16: those take the general path), nesting, extra event members.
"""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from central.canonical import canonical_parts
from protocol.events import HealthSnapshot
from protocol.schema import Event, canonical_event

AT = "2024-05-06T08:00:00.000000Z"


def _event(data: Any, *, seq: int = 7, at: str = AT, kind: str = "health.snapshot", **extra: Any) -> Event:
    return Event(
        seq,
        at,
        kind,
        data,
        extra,
        payload=HealthSnapshot(sections=data if isinstance(data, dict) else {}),
        moment=datetime(2024, 5, 6, 8, tzinfo=UTC),
    )


def _same(event: Event) -> None:
    got = canonical_parts(event)
    assert got == event.canonical_parts()
    text, digest, data_text = got
    wire = {**event.extra, "seq": event.seq, "at": event.at, "kind": event.kind, "data": event.data}
    assert (text, digest) == canonical_event(wire)
    assert digest == hashlib.sha256(text.encode("utf-8")).hexdigest()
    assert f'"data":{data_text},' in text


_SCALAR = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**63 - 2, max_value=2**64 + 2)
    | st.integers(min_value=-(2**63) - 2, max_value=-(2**63) + 2)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
_KEYS = st.text(max_size=6) | st.sampled_from(["a", "B", "é", "\x00", "\u2028", "\U0001f600", "\uffff", '"', "\\"])
_JSON = st.recursive(
    _SCALAR, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEYS, inner, max_size=4), max_leaves=12
)


@settings(max_examples=500, deadline=None)
@given(st.dictionaries(_KEYS, _JSON, max_size=6), st.text(max_size=30), st.text(max_size=20))
def test_random_data_gives_the_same_texts_and_digest(data: dict[str, Any], at: str, kind: str) -> None:
    _same(_event(data, at=at, kind=kind))


@settings(max_examples=2000, deadline=None)
@given(
    st.floats(min_value=1e-4, max_value=1e16, exclude_max=True)
    | st.floats(min_value=-1e16, max_value=-1e-4, exclude_min=True)
)
def test_floats_without_an_exponent_are_spelled_alike(value: float) -> None:
    _same(_event({"x": value, "y": [value, {"z": -value}]}))


def test_every_code_point_is_escaped_as_json_escapes_it() -> None:
    # In one string value and as a key: control characters, quotes, backslashes, U+2028/2029,
    # DEL, non-BMP; lone surrogates cannot reach an Event (refused when decoded).
    points = [chr(cp) for cp in range(0x110000) if not 0xD800 <= cp <= 0xDFFF]
    for start in range(0, len(points), 4096):
        chunk = "".join(points[start : start + 4096])
        _same(_event({"text": chunk, chunk[:64]: [chunk[64:128]]}))


def test_values_the_fast_encoder_would_spell_otherwise_take_the_general_path() -> None:
    for data in (
        {"host": {"load": 1e16}},
        {"host": {"load": -1e16}},
        {"x": math.nextafter(1e16, 0)},
        {"x": 1e-4, "y": -1e-4},
        {"x": math.nextafter(1e-4, 0)},
        {"x": 5e-324, "y": 1.7976931348623157e308},
        {"x": 123456789012345.67, "y": 0.30000000000000004, "z": 2.5},
        {"x": [1, 2, [0.1]]},
        {"x": 1e-05},
        {"x": 1.0},
        {"x": -0.0, "y": 0.0},
        {"big": 10**30, "neg": -(10**30)},
        {"x": True, "y": False, "z": None, "n": 0},
        {},
        {"nested": {"b": {"d": 1, "c": 2}, "a": []}},
    ):
        _same(_event(data))


def test_extra_members_and_odd_types_take_the_general_path() -> None:
    _same(_event({"id": "d-1", "class": "ipad"}, kind="device.seen", agent_note="x", zz=1))
    _same(_event({"id": "d-1"}, kind="device.seen", **{"é": [1.5]}))
    _same(_event({"id": "d-1", "tags": ("a", "b")}))  # a tuple: not what a decoder gives, but encoded the same
    _same(_event({"id": "d-1"}, seq=2**63 - 1, at='2024-05-06T08:00:00Z"\u00e9', kind='device"seen'))


def test_data_spelled_alike_is_encoded_by_the_fast_path(monkeypatch) -> None:
    general = Event.canonical_parts
    expected = general(_event({"id": "d-1", "n": [1, None, True], "ü": {"b": "\n"}}))
    taken: list[Event] = []

    def spy(self: Event) -> tuple[str, str, str]:
        taken.append(self)
        return general(self)

    monkeypatch.setattr(Event, "canonical_parts", spy)
    assert canonical_parts(_event({"id": "d-1", "n": [1, None, True], "ü": {"b": "\n"}})) == expected
    assert taken == []
    plain_floats = _event({"id": "d-1", "n": [1, 0.5, -0.0, 1e-4, 9999999999999998.0]})
    assert canonical_parts(plain_floats) == general(plain_floats)
    assert taken == []
    for far in (1e16, -1e16, 9.9e-5, 5e-324):
        floats = _event({"id": "d-1", "n": [1, 0.5, far]})
        assert canonical_parts(floats) == general(floats)
        assert taken == [floats]
        taken.clear()

"""central.fastjson.loads must answer exactly as protocol.encoding.loads_strict: value or refusal.

The hostile documents of tests/protocol/test_encoding.py, each as the compact text msgspec would
write (so that only the checks of our own can refuse it), and random JSON values in both
spellings, must give the same value with the same types, or the same error, message and reason.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from central import fastjson
from protocol import errors
from protocol.encoding import loads_strict

HOSTILE = [
    b'{"seq":1,"seq":99}',
    b'{"a":{"x":1,"y":2,"x":1}}',  # a duplicate with the same value
    b'[{"k":"v","k":"v"}]',
    b'{"x":NaN}',
    b'{"x":Infinity}',
    b'{"x":-Infinity}',
    b"[" * 40 + b"]" * 40,
    b"[" * 20000 + b"]" * 20000,  # past msgspec's own nesting limit (found by the contract suite)
    b'{"cpu":' + b"[" * 20000 + b"]" * 20000 + b"}",
    b"[" * 33 + b"1" + b"]" * 33,
    b'{"a":' * 20 + b"[" * 13 + b"1" + b"]" * 13 + b"}" * 20,
    b"{",
    b"\xc3\x28",
    b'"\xed\xa0\x80"',  # a surrogate spelled as (invalid) UTF-8 bytes
    b'{"x":1e400}',
    b'{"x":-1e400}',
    b"[1.5e999]",
    b'"\\ud800"',
    b'"\\uDBFF"',
    b'{"name":"AP \\ud800 evil"}',
    b'{"\\udfff":1}',
    b'[["\\udc00x"]]',
    b'{"a":["ok",{"b":"x\\uDc00"}]}',
    b'["\\ud83d\\ude00","\\ud800"]',
]
ACCEPTED = [
    b'{"emoji":"\\ud83d\\ude00","n":1e300,"i":123456789012345678901234567890}',
    b'{"a":' * 16 + b"[" * 16 + b"1" + b"]" * 16 + b"}" * 16,  # depth 32 exactly
    b'"\\\\ud800 is text"',
    b"7",
    b"null",
    b"true",
    b'{"b":true,"i":1,"f":1.0,"z":-0.0,"s":"\xc3\xbc\\n","l":[false,0,0.5]}',
    b'{"x":1.5e-07,"y":1E5,"s":"\\/"}',  # non-canonical spellings: the strict path decides
    b'{"a":1, "b":2}',
]


def _typed(value: Any) -> Any:
    """The value with every scalar's type beside it (True == 1 == 1.0 in Python)."""
    if isinstance(value, dict):
        return {k: _typed(v) for k, v in value.items()}, list(value)
    if isinstance(value, list):
        return [_typed(v) for v in value]
    return type(value).__name__, value


def _outcome(loads: Any, data: bytes, depth: int) -> tuple[str, Any]:
    try:
        return "value", _typed(loads(data, max_depth=depth))
    except (errors.MalformedError, errors.TooLargeError) as exc:
        return type(exc).__name__, (exc.message, exc.reason)


@pytest.mark.parametrize("data", HOSTILE + ACCEPTED)
@pytest.mark.parametrize("depth", [4, 32])
def test_the_same_answer_as_the_strict_reader(data: bytes, depth: int) -> None:
    assert _outcome(fastjson.loads, data, depth) == _outcome(loads_strict, data, depth)


def test_the_hostile_documents_are_refused_and_the_others_read() -> None:
    # Guards the list above: a hostile document that the strict reader came to accept would make
    # the comparison prove nothing about it.
    assert all(_outcome(loads_strict, d, 32)[0] == "MalformedError" for d in HOSTILE)
    assert all(_outcome(fastjson.loads, d, 32)[0] == "value" for d in ACCEPTED)


_TEXT = st.text(max_size=6)  # surrogates included: the strict reader refuses them, so must this
_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), _TEXT),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
    max_leaves=12,
)


@settings(max_examples=400)
@given(_VALUES, st.integers(1, 6), st.booleans())
def test_random_documents_in_both_spellings(value: Any, depth: int, by_msgspec: bool) -> None:
    if by_msgspec:
        try:
            data = msgspec.json.encode(value)
        except UnicodeEncodeError:
            return
    else:
        data = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass")
    assert _outcome(fastjson.loads, data, depth) == _outcome(loads_strict, data, depth)

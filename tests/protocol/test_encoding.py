"""Strict base64 and JSON decoding."""

from __future__ import annotations

import base64
import binascii

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import errors
from protocol.encoding import b64decode_strict, b64url_decode_nopad, dumps, has_lone_surrogate, loads_strict


@pytest.mark.parametrize(
    ("text", "data"),
    [("+/+/", b"\xfb\xff\xbf"), ("-_-_", b"\xfb\xff\xbf"), ("aGk=", b"hi"), ("aGk", b"hi"), ("", b"")],
)
def test_base64_accepts_both_alphabets_padded_or_not(text: str, data: bytes) -> None:
    assert b64decode_strict(text) == data


@pytest.mark.parametrize("text", ["aGk!", "a Gk=", "aGk===", "a", "aGl=", "äGk=", "aGk=\n", "aG=k"])
def test_base64_refuses_junk_bad_padding_and_non_canonical_bits(text: str) -> None:
    with pytest.raises(errors.MalformedError) as info:
        b64decode_strict(text)
    assert info.value.reason == "bad_base64"


def _b64_reference(text: str) -> bytes | str:
    """The whole text re-encoded and compared, as b64decode_strict once did: the bytes, or the refusal."""
    try:
        raw = text.encode("ascii").translate(bytes.maketrans(b"-_", b"+/"))
    except UnicodeEncodeError:
        return "field: not ASCII"
    stripped = raw.rstrip(b"=")
    if len(raw) - len(stripped) > 2 or len(stripped) % 4 == 1:
        return "field: bad base64 length or padding"
    try:
        data = base64.b64decode(stripped + b"=" * (-len(stripped) % 4), validate=True)
    except (binascii.Error, ValueError):
        return "field: not valid base64"
    return data if base64.b64encode(data).rstrip(b"=") == stripped else "field: non-canonical base64"


_B64_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_= !ä"


@settings(max_examples=1500)
@given(st.binary(max_size=12), st.text(_B64_CHARS, max_size=3), st.integers(0, 3), st.booleans())
def test_base64_checks_canonical_bits_as_re_encoding_the_whole_text_does(
    data: bytes, tail: str, cut: int, urlsafe: bool
) -> None:
    # Only the last group is encoded again: every text, with its end cut and replaced by anything,
    # gets the same bytes or the same refusal as re-encoding the whole text.
    encoded = (base64.urlsafe_b64encode if urlsafe else base64.b64encode)(data).decode()
    text = encoded[: len(encoded) - cut] + tail
    try:
        got: bytes | str = b64decode_strict(text, field="field")
    except errors.MalformedError as exc:
        assert exc.reason == "bad_base64"
        got = exc.message
    assert got == _b64_reference(text)


def test_base64url_nopad_refuses_padding_and_standard_alphabet() -> None:
    assert b64url_decode_nopad("-_-_") == b"\xfb\xff\xbf"
    for text in ("aGk=", "+/+/"):
        with pytest.raises(errors.MalformedError):
            b64url_decode_nopad(text)


@pytest.mark.parametrize(
    "raw",
    ['{"seq":1,"seq":99}', '{"x":NaN}', '{"x":Infinity}', '{"x":-Infinity}', "[" * 40 + "]" * 40, "{", b"\xc3\x28"],
)
def test_json_refuses_duplicates_constants_depth_and_bad_utf8(raw: str | bytes) -> None:
    with pytest.raises(errors.MalformedError) as info:
        loads_strict(raw)
    assert info.value.reason == "bad_json"


def test_json_size_cap() -> None:
    with pytest.raises(errors.TooLargeError):
        loads_strict(b"[1,2,3]", max_bytes=6)
    assert loads_strict(b"[1,2,3]", max_bytes=7) == [1, 2, 3]


def test_dumps_is_compact_utf8_and_refuses_nan() -> None:
    assert dumps({"name": "Lenas iPad ü"}) == '{"name":"Lenas iPad ü"}'.encode()
    with pytest.raises(ValueError):
        dumps({"x": float("nan")})


@pytest.mark.parametrize(
    "raw",
    [
        '{"x":1e400}',
        '{"x":-1e400}',
        '[1.5e999]',
        '"\\ud800"',
        '{"name":"AP \\ud800 evil"}',
        '{"\\udfff":1}',
        '[["\\udc00x"]]',
    ],
)
def test_json_refuses_what_cannot_be_written_back(raw: str) -> None:
    # Each parses with Python's json; each would fail later in dumps() (infinity, or UTF-8
    # that cannot hold a lone surrogate): so the door refuses it.
    with pytest.raises(errors.MalformedError) as info:
        loads_strict(raw)
    assert info.value.reason == "bad_json"


def test_json_keeps_valid_pairs_big_ints_and_small_floats() -> None:
    value = loads_strict('{"emoji":"\\ud83d\\ude00","n":1e300,"i":123456789012345678901234567890}')
    assert value == {"emoji": "\U0001f600", "n": 1e300, "i": 123456789012345678901234567890}
    assert loads_strict(dumps(value)) == value


def test_json_duplicates_may_be_allowed_for_device_replies() -> None:
    assert loads_strict('{"a":1,"a":2}', allow_duplicate_keys=True) == {"a": 2}
    with pytest.raises(errors.MalformedError):
        loads_strict('{"a":1,"a":"\\ud800"}', allow_duplicate_keys=True)


def test_dumps_refuses_lone_surrogates_with_a_project_error() -> None:
    with pytest.raises(errors.MalformedError) as info:
        dumps({"name": "AP \ud800 evil"})
    assert info.value.reason == "bad_text"


@pytest.mark.parametrize(
    "raw",
    [
        '"\\ud800"',  # a lone surrogate as the whole document
        '"\\uDBFF"',  # upper-case escape
        '{"a":["ok",{"b":"x\\uDc00"}]}',  # deep inside, mixed case
        '{"x\\ud800":1}',  # in a key
        '{"name":"\ud800"}',  # not an escape: a str that already holds one
        '["\\ud83d\\ude00","\\ud800"]',  # a valid pair beside a lone half
    ],
)
def test_json_finds_a_lone_surrogate_wherever_it_is(raw: str) -> None:
    # The per-string look runs only when the text shows a surrogate or its escape: every place
    # and spelling must still be found.
    with pytest.raises(errors.MalformedError) as info:
        loads_strict(raw)
    assert info.value.reason == "bad_json"


@pytest.mark.parametrize(("depth", "ok"), [(32, True), (33, False)])
def test_json_depth_counts_lists_and_objects_alike(depth: int, ok: bool) -> None:
    raw = '{"a":' * (depth // 2) + "[" * (depth - depth // 2) + "1" + "]" * (depth - depth // 2) + "}" * (depth // 2)
    if ok:
        assert loads_strict(raw) is not None
        assert loads_strict('"\\\\ud800 is text"') == "\\ud800 is text"  # an escaped backslash, no surrogate
        assert [loads_strict(scalar) for scalar in ("7", "null", "true")] == [7, None, True]
    else:
        with pytest.raises(errors.MalformedError):
            loads_strict(raw)


def test_has_lone_surrogate_looks_past_ascii_text_only() -> None:
    assert not has_lone_surrogate("plain ascii " * 10_000)
    assert not has_lone_surrogate("Grundschule Süd \U0001f600")
    for text in ("\ud800", "é\udfff", "x" * 10_000 + "\udbff", "\ud83d\ude00"):  # a pair spelled as two halves too
        assert has_lone_surrogate(text)

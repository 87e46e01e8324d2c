"""Strict base64 and JSON decoding."""

from __future__ import annotations

import pytest

from protocol import errors
from protocol.encoding import b64decode_strict, b64url_decode_nopad, dumps, loads_strict


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

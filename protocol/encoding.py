"""Strict decoding of base64 and JSON, the two text formats on the wire.

Python's defaults are lenient in ways an attacker can use: ``b64decode`` drops characters
outside the alphabet, ``json.loads`` keeps the last of duplicate keys and accepts NaN.
Everything that reads wire input goes through these functions instead.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from typing import Any

from .errors import MalformedError, TooLargeError

__all__ = [
    "MAX_JSON_DEPTH",
    "b64decode_strict",
    "b64encode",
    "b64url_decode_nopad",
    "b64url_encode_nopad",
    "dumps",
    "has_lone_surrogate",
    "loads_strict",
]

MAX_JSON_DEPTH = 32

# Built once: json.dumps() with options builds a new encoder on every call.
_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
_URLSAFE_TO_STD = bytes.maketrans(b"-_", b"+/")

# JSON's \uXXXX escapes can spell half of a UTF-16 pair on its own ("\ud800"); Python keeps it
# as a lone surrogate, which no UTF-8 encoder will write back. Such text is refused at the door.
_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF]")


def has_lone_surrogate(text: str) -> bool:
    """True when ``text`` holds a code point U+D800..U+DFFF, which cannot be encoded as UTF-8."""
    # isascii() reads a flag the string keeps: ASCII text (a whole envelope, nearly always) is not
    # scanned at all; the regex took 0.7 ms over a 130 KB envelope.
    return not text.isascii() and _SURROGATE.search(text) is not None


def b64encode(data: bytes) -> str:
    """Standard base64 with padding, as we send it."""
    return base64.b64encode(data).decode("ascii")


def b64decode_strict(text: str | bytes, *, field: str = "base64") -> bytes:
    """Decode standard or URL-safe base64, padded or not; refuse anything else.

    The encoding must be canonical (it re-encodes to the same characters), so that two
    different strings never decode to the same bytes.
    """
    if isinstance(text, str):
        try:
            raw = text.encode("ascii")
        except UnicodeEncodeError:
            raise MalformedError(f"{field}: not ASCII", reason="bad_base64") from None
    else:
        raw = bytes(text)
    if b"-" in raw or b"_" in raw:  # two scans in C, cheaper than copying a whole payload to translate it
        raw = raw.translate(_URLSAFE_TO_STD)
    stripped = raw.rstrip(b"=")
    tail = len(stripped) % 4
    if len(raw) - len(stripped) > 2 or tail == 1:
        raise MalformedError(f"{field}: bad base64 length or padding", reason="bad_base64")
    padded = stripped + b"=" * (-len(stripped) % 4)
    try:
        data = base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        raise MalformedError(f"{field}: not valid base64", reason="bad_base64") from None
    # Only a last group of 2 or 3 characters has bits to spare; every full group of 4 encodes its
    # 3 bytes exactly. So the text is canonical when that group re-encodes to itself, and only it
    # is encoded again (not the whole payload).
    if tail and base64.b64encode(data[1 - tail :]).rstrip(b"=") != stripped[-tail:]:
        raise MalformedError(f"{field}: non-canonical base64", reason="bad_base64")
    return data


def b64url_encode_nopad(data: bytes) -> str:
    """URL-safe base64 without padding (PASETO's encoding)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode_nopad(text: str, *, field: str = "base64url") -> bytes:
    """Decode URL-safe base64 without padding; the standard alphabet or '=' is refused."""
    if "=" in text or "+" in text or "/" in text:
        raise MalformedError(f"{field}: not unpadded base64url", reason="bad_base64")
    return b64decode_strict(text, field=field)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # dict() in C; a duplicate shows as fewer keys than pairs, and only then is the key looked for.
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:  # pragma: no branch - a duplicate is found before the end
            if key in seen:
                raise MalformedError(f"duplicate JSON key {key[:40]!r}", reason="bad_json")
            seen.add(key)
    return out


def _no_constants(name: str) -> Any:
    raise MalformedError(f"JSON constant {name} is not allowed", reason="bad_json")


def _finite_float(text: str) -> float:
    # "1e400" parses to infinity, which dumps() (allow_nan=False) then cannot write back.
    value = float(text)
    if not math.isfinite(value):
        raise MalformedError(f"JSON number {text[:40]} is out of range", reason="bad_json")
    return value


def _check(value: Any, limit: int, text: str) -> None:
    """Nesting depth and text that cannot be written back as UTF-8 (keys and strings)."""
    # A lone surrogate gets into the decoded value only from the text itself or from a \uD800..
    # \uDFFF escape: without either (two scans in C), the per-string look is skipped.
    strings = has_lone_surrogate(text) or _SURROGATE_ESCAPE.search(text) is not None
    # Level by level, so that a hostile document cannot exhaust the Python stack here either.
    level, depth = [value], 1
    while level:
        if depth > limit:
            raise MalformedError(f"JSON nested deeper than {limit}", reason="bad_json")
        children = [child for item in level for child in (item.values() if type(item) is dict else item)]
        if strings:
            keys = [key for item in level if type(item) is dict for key in item]
            if any(type(text) is str and has_lone_surrogate(text) for text in (*keys, *children)):
                raise MalformedError("JSON string holds a lone surrogate escape", reason="bad_json")
        level, depth = [child for child in children if type(child) is dict or type(child) is list], depth + 1


def _keep_last(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    return dict(pairs)


def loads_strict(
    data: bytes | str,
    *,
    max_bytes: int | None = None,
    max_depth: int = MAX_JSON_DEPTH,
    allow_duplicate_keys: bool = False,
) -> Any:
    """Parse JSON that can be written back unchanged; MalformedError (``bad_json``) otherwise.

    Refused: duplicate keys (unless ``allow_duplicate_keys``: the last wins, for devices whose
    firmware repeats a key), NaN/Infinity, numbers beyond a float's range (``1e400``), lone
    surrogate escapes (``"\\ud800"``) in keys or strings, invalid UTF-8 and nesting deeper than
    ``max_depth``. TooLargeError when ``data`` is longer than ``max_bytes``.
    """
    if max_bytes is not None and len(data) > max_bytes:
        raise TooLargeError(f"JSON document of {len(data)} bytes is over the cap of {max_bytes}")
    if isinstance(data, (bytes, bytearray, memoryview)):
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedError("JSON is not valid UTF-8", reason="bad_json") from None
    else:
        text = data
    try:
        value = json.loads(
            text,
            object_pairs_hook=_keep_last if allow_duplicate_keys else _no_duplicates,
            parse_constant=_no_constants,
            parse_float=_finite_float,
        )
    except MalformedError:
        raise
    except RecursionError:
        raise MalformedError("JSON nested too deeply", reason="bad_json") from None
    except ValueError as exc:
        raise MalformedError(f"not valid JSON: {str(exc)[:120]}", reason="bad_json") from None
    if isinstance(value, str):
        if has_lone_surrogate(value):
            raise MalformedError("JSON string holds a lone surrogate escape", reason="bad_json")
    elif isinstance(value, dict | list):
        _check(value, max_depth, text)
    return value


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON, the form we sign.

    ValueError for NaN or infinity; MalformedError (``bad_text``) for text that UTF-8 cannot
    hold (a lone surrogate), where ``str.encode`` would raise UnicodeEncodeError deep inside a
    caller that only expects the project's errors.
    """
    text = _COMPACT.encode(value)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise MalformedError("text holds a lone surrogate and cannot be encoded", reason="bad_text") from None

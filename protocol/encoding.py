"""Strict decoding of base64 and JSON, the two text formats on the wire.

Python's defaults are lenient in ways an attacker can use: ``b64decode`` drops characters
outside the alphabet, ``json.loads`` keeps the last of duplicate keys and accepts NaN.
Everything that reads wire input goes through these functions instead.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from .errors import MalformedError, TooLargeError

__all__ = [
    "MAX_JSON_DEPTH",
    "b64decode_strict",
    "b64encode",
    "b64url_decode_nopad",
    "b64url_encode_nopad",
    "dumps",
    "loads_strict",
]

MAX_JSON_DEPTH = 32

_URLSAFE_TO_STD = bytes.maketrans(b"-_", b"+/")


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
    raw = raw.translate(_URLSAFE_TO_STD)
    stripped = raw.rstrip(b"=")
    if len(raw) - len(stripped) > 2 or len(stripped) % 4 == 1:
        raise MalformedError(f"{field}: bad base64 length or padding", reason="bad_base64")
    padded = stripped + b"=" * (-len(stripped) % 4)
    try:
        data = base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        raise MalformedError(f"{field}: not valid base64", reason="bad_base64") from None
    if base64.b64encode(data).rstrip(b"=") != stripped:
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
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise MalformedError(f"duplicate JSON key {key[:40]!r}", reason="bad_json")
        out[key] = value
    return out


def _no_constants(name: str) -> Any:
    raise MalformedError(f"JSON constant {name} is not allowed", reason="bad_json")


def _depth(value: Any, limit: int) -> None:
    # Iterative, so that a hostile document cannot exhaust the Python stack here either.
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if level > limit:
            raise MalformedError(f"JSON nested deeper than {limit}", reason="bad_json")
        stack.extend((child, level + 1) for child in children)


def loads_strict(data: bytes | str, *, max_bytes: int | None = None, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse JSON refusing duplicate keys, NaN/Infinity, invalid UTF-8 and deep nesting."""
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
        value = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    except MalformedError:
        raise
    except RecursionError:
        raise MalformedError("JSON nested too deeply", reason="bad_json") from None
    except ValueError as exc:
        raise MalformedError(f"not valid JSON: {str(exc)[:120]}", reason="bad_json") from None
    _depth(value, max_depth)
    return value


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON, the form we sign. NaN is refused here too."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")

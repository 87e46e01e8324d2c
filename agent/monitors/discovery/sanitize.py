"""Hostile-input hardening for mDNS data: safe decoding and hard length caps.

Names and TXT values arrive as any bytes of any length (RFC 6763 allows binary TXT values);
everything that enters the inventory goes through here first.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping

MAX_NAME_CHARS = 96
MAX_HOST_CHARS = 128
MAX_TXT_KEYS = 32
MAX_TXT_KEY_CHARS = 32
MAX_TXT_VALUE_CHARS = 200
MAX_ADDRESSES = 4


def clean_text(value: bytes | str | None, limit: int) -> str:
    """Decode bytes as UTF-8 (invalid bytes replaced), drop control and format characters, cap length."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        # Cap before decoding so a 9 KB value costs no more than a short one.
        value = value[: limit * 4].decode("utf-8", errors="replace")
    else:
        value = value[: limit * 4]
    cleaned = value if value.isprintable() else "".join(ch for ch in value if _not_control(ch))
    return cleaned.strip()[:limit]


def _not_control(ch: str) -> bool:
    """Whether ``ch`` is outside Unicode's "C" categories (control, format, surrogate, private, unassigned).

    The same answer as ``unicodedata.category(ch)[0] != "C"`` for every code point
    (tests/site/test_sanitize.py checks them all), from ``str`` methods: the non-printable
    characters are the C categories and the separators (Z*), and the separators are the
    whitespace outside C0/C1. unicodedata's tables are not touched at run time: looking
    characters up there kept 0.24 MiB of its shared library resident in the agent.
    """
    if ch.isprintable():
        return True
    code = ord(ch)
    return ch.isspace() and code >= 0x20 and not 0x7F <= code <= 0x9F


def clean_properties(raw: Mapping[bytes, bytes | None] | None) -> dict[str, str]:
    """TXT properties as a small str → str dict: keys lower-cased, both sides decoded and capped."""
    result: dict[str, str] = {}
    if not raw:
        return result
    for key, value in raw.items():
        if len(result) >= MAX_TXT_KEYS:
            break
        name = clean_text(key, MAX_TXT_KEY_CHARS).lower()
        if not name or name in result:
            continue
        result[sys.intern(name)] = sys.intern(clean_text(value, MAX_TXT_VALUE_CHARS))
    return result


def instance_label(full_name: str, service_type: str) -> str:
    """The instance part of a service name ("Raum 12" of "Raum 12._airplay._tcp.local.")."""
    if full_name.endswith("." + service_type):
        full_name = full_name[: -len(service_type) - 1]
    return clean_text(full_name, MAX_NAME_CHARS)

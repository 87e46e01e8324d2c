"""Hostile-input hardening for mDNS data: safe decoding and hard length caps.

Names and TXT values arrive as any bytes of any length (RFC 6763 allows binary TXT values);
everything that enters the inventory goes through here first.
"""

from __future__ import annotations

import sys
import unicodedata
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
    cleaned = "".join(ch for ch in value if unicodedata.category(ch)[0] != "C")
    return cleaned.strip()[:limit]


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

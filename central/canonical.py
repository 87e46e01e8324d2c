"""``Event.canonical_parts()`` for central's hot path: the same three texts, encoded in C when it can.

An event's stored body and its digest are its sorted-key compact JSON (``protocol.schema``),
written by ``json``'s encoder. msgspec, asked for sorted keys, writes the same bytes for every
string (each escape spelled the same: checked for every code point), integer of any size, true,
false, null, object and array, several times faster. Floats it spells the same way only where
both write them without an exponent: zero and magnitudes from 1e-4 to below 1e16 (the same
shortest digits; checked on millions of floats). Outside that range it writes ``1e16`` where
``json`` writes ``1e+16`` and ``0.00001`` for ``1e-05``: data holding such a float, or anything
but these types, and events with extra members take ``Event.canonical_parts()`` itself. Old
digests therefore keep matching byte for byte.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import msgspec

from protocol.schema import Event

__all__ = ["canonical_parts"]

_SORTED = msgspec.json.Encoder(order="sorted")
_quote = json.encoder.encode_basestring  # what the sorted-key encoder writes for a string, non-ASCII kept
_SCALARS = frozenset({str, int, bool, type(None)})


def _spelled_alike(data: dict[str, Any]) -> bool:
    """Whether ``data`` holds only objects, arrays, strings, integers, booleans, nulls and floats
    that both encoders write without an exponent (0, and 1e-4 <= magnitude < 1e16)."""
    stack: list[Any] = [data]
    while stack:
        item = stack.pop()
        for child in item.values() if type(item) is dict else item:
            kind = type(child)
            if kind is dict or kind is list:
                stack.append(child)
            elif kind is float:
                if child != 0.0 and not 1e-4 <= abs(child) < 1e16:
                    return False
            elif kind not in _SCALARS:
                return False
    return True


def canonical_parts(event: Event) -> tuple[str, str, str]:
    """``event.canonical_parts()``: (sorted-key JSON of the event, its SHA-256 hex, sorted-key JSON of ``data``)."""
    data = event.data
    if (
        event.extra
        or type(data) is not dict
        or type(event.seq) is not int
        or type(event.at) is not str
        or type(event.kind) is not str
        or not _spelled_alike(data)
    ):
        return event.canonical_parts()
    data_text = _SORTED.encode(data).decode("utf-8")
    # Members sorted: at, data, kind, seq (as Event.canonical_parts writes them around the data).
    text = f'{{"at":{_quote(event.at)},"data":{data_text},"kind":{_quote(event.kind)},"seq":{event.seq}}}'
    return text, hashlib.sha256(text.encode("utf-8")).hexdigest(), data_text

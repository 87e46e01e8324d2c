"""``loads_strict`` for central's hot path: the same values and refusals, decoded in C when it can.

msgspec decodes JSON several times faster than ``json`` with our hooks, but keeps the last of
duplicate keys and knows no depth cap of ours. So its value is taken only when writing it back
with msgspec gives exactly the input bytes: a dropped duplicate, an infinity (``1e400``), a
non-canonical number or escape all change the bytes. A ``\\uD800``-``\\uDFFF`` escape in the
input also sends the text to the strict path: msgspec 0.23 refuses a lone one itself, but that
is its behaviour, not its promise. Raw surrogate bytes are invalid UTF-8, which msgspec refuses.
Nesting is checked here.
Anything else takes ``protocol.encoding.loads_strict``, which decides, so a refusal is its
refusal word for word. Agents send compact UTF-8 JSON, which round-trips.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from protocol.encoding import MAX_JSON_DEPTH, loads_strict
from protocol.errors import MalformedError

__all__ = ["loads"]

_DECODER = msgspec.json.Decoder()
_ENCODER = msgspec.json.Encoder()
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abcdefABCDEF]")


def _too_deep(value: Any, limit: int) -> bool:
    """Whether lists and objects nest deeper than ``limit`` (the value itself is level 1)."""
    level, depth = [value], 1
    while level:
        if depth > limit:
            return True
        deeper = []
        for item in level:
            for child in item.values() if type(item) is dict else item:
                if type(child) is dict or type(child) is list:
                    deeper.append(child)
        level, depth = deeper, depth + 1
    return False


def loads(data: bytes, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """What ``loads_strict(data, max_depth=max_depth)`` returns, or its MalformedError.

    ``data`` is the UTF-8 JSON text as received (bytes).
    """
    if _SURROGATE_ESCAPE.search(data) is None:
        try:
            value = _DECODER.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
            # Not necessarily a refusal (NaN, 1e400, nesting past msgspec's own limit, which it
            # raises as RecursionError): the strict path decides and says why.
            value = None
        else:
            if _ENCODER.encode(value) == data:
                if (type(value) is dict or type(value) is list) and _too_deep(value, max_depth):
                    raise MalformedError(f"JSON nested deeper than {max_depth}", reason="bad_json")
                return value
    return loads_strict(data, max_depth=max_depth)

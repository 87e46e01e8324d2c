"""Field checks shared by the payload schemas and the event payloads.

Each check reads one field of a decoded JSON object and raises ``MalformedError``
(reason ``bad_payload``) for a wrong type or value, or ``TooLargeError`` for a value over
its cap. ``where`` is prepended to every message so that a refusal names the field's
place in the document (``events[3].id must be a string``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, cast

from .errors import MalformedError, TooLargeError

__all__ = [
    "ID_RE",
    "MAX_KEYS",
    "MAX_LIST",
    "MAX_SEQ",
    "MAX_STRING",
    "bounded",
    "enum_field",
    "extra_fields",
    "ident_field",
    "int_field",
    "require_obj",
    "slot_setter",
    "str_field",
]

MAX_SEQ = 2**63 - 1
MAX_STRING = 4096
MAX_LIST = 2000
MAX_KEYS = 256

ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}")


def require_obj(value: Any, what: str) -> dict[str, Any]:
    """``value`` itself if it is a JSON object; MalformedError naming ``what`` otherwise."""
    if not isinstance(value, dict):
        raise MalformedError(f"{what} must be a JSON object", reason="bad_payload")
    return value


def int_field(obj: Mapping[str, Any], key: str, *, low: int = 0, high: int = MAX_SEQ, where: str = "") -> int:
    """An integer in ``low..high``; a bool is refused although Python counts it as an int."""
    value = obj.get(key)
    if type(value) is not int:  # bool is an int subclass and is refused here on purpose
        raise MalformedError(f"{where}{key} must be an integer", reason="bad_payload")
    if not low <= value <= high:
        raise MalformedError(f"{where}{key}={value} is outside {low}..{high}", reason="bad_payload")
    return value


def str_field(
    obj: Mapping[str, Any], key: str, *, max_len: int = 200, optional: bool = False, where: str = ""
) -> str | None:
    """A string of at most ``max_len`` characters; with ``optional``, absent or null gives None."""
    value = obj.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise MalformedError(f"{where}{key} must be a string", reason="bad_payload")
    if len(value) > max_len:
        raise TooLargeError(f"{where}{key} is longer than {max_len} characters")
    return value


def ident_field(obj: Mapping[str, Any], key: str, where: str = "") -> str:
    """An identifier: 1 to 128 characters of ``[A-Za-z0-9._:@-]``, not starting with punctuation."""
    value = str_field(obj, key, max_len=128, where=where)
    assert value is not None
    if not ID_RE.fullmatch(value):
        raise MalformedError(f"{where}{key} has characters outside [A-Za-z0-9._:@-]", reason="bad_payload")
    return value


def enum_field(obj: Mapping[str, Any], key: str, allowed: frozenset[str], where: str = "") -> str:
    """One of the ``allowed`` strings."""
    value = obj.get(key)
    # The type test first: a JSON list or object is unhashable, and a set lookup would raise TypeError.
    if not isinstance(value, str) or value not in allowed:
        raise MalformedError(f"{where}{key} must be one of {sorted(allowed)}", reason="bad_payload")
    return value


def bounded(value: Any, where: str) -> None:
    """Cap every string, list and object inside free-form data (TooLargeError past a cap)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if len(item) > MAX_STRING:
                raise TooLargeError(f"{where}: a string is longer than {MAX_STRING} characters")
        elif isinstance(item, list):
            if len(item) > MAX_LIST:
                raise TooLargeError(f"{where}: a list has more than {MAX_LIST} items")
            stack.extend(item)
        elif isinstance(item, dict):
            if len(item) > MAX_KEYS:
                raise TooLargeError(f"{where}: an object has more than {MAX_KEYS} keys")
            for key in item:
                if len(key) > 128:
                    raise TooLargeError(f"{where}: a key is longer than 128 characters")
            stack.extend(item.values())


def extra_fields(doc: Mapping[str, Any], known: Iterable[str]) -> dict[str, Any]:
    """The members of ``doc`` not named in ``known``, in their original order."""
    known_set = set(known)
    return {k: v for k, v in doc.items() if k not in known_set}


def slot_setter(cls: type, name: str) -> Callable[[object, Any], None]:
    """The setter of the slot ``name`` of the slotted class ``cls`` (its member descriptor's ``__set__``).

    For building a frozen dataclass on a hot path: a frozen dataclass's ``__init__`` sets each
    field through ``object.__setattr__`` by name, a lookup on the type per field.
    KeyError when ``cls`` itself has no such slot.
    """
    return cast("Callable[[object, Any], None]", vars(cls)[name].__set__)

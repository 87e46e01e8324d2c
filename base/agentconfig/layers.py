"""Layered configuration documents: carrier, then school (central's layers), then the school's own file.

A layer is a parsed TOML document (nested dicts). Later layers win key by key: tables merge
recursively, every other value (a string, a number, an array — also an array of tables such as
``[[cabinets.cabinet]]``) replaces the earlier one whole, so a school's cabinet list is never a
mix of two lists.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import date, datetime, time
from typing import Any

__all__ = ["json_document", "merge_layers", "overridden_keys"]


def merge_layers(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """The documents merged, later ones winning key by key (tables merge, other values replace)."""
    merged: dict[str, Any] = {}
    for layer in layers:
        _merge_into(merged, layer)
    return merged


def _merge_into(target: dict[str, Any], layer: Mapping[str, Any]) -> None:
    for key, value in layer.items():
        if isinstance(value, Mapping) and isinstance(target.get(key), dict):
            _merge_into(target[key], value)
        else:
            target[key] = _copy(value)


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _leaves(doc: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in doc.items():
        if isinstance(value, Mapping):
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def overridden_keys(local: Mapping[str, Any], central: Mapping[str, Any]) -> list[str]:
    """Dotted keys (``cabinets.window``) the local file sets to another value than central does, sorted.

    Both documents as JSON-ready values (see :func:`json_document`); a key only one side sets is
    no override.
    """
    central_leaves = dict(_leaves(central))
    return sorted(key for key, value in _leaves(local) if key in central_leaves and central_leaves[key] != value)


def json_document(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A TOML document with its dates and times as the ISO text the quoted form gives (for JSON)."""
    return {key: _jsonable(value) for key, value in doc.items()}


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return json_document(value)
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, time):
        return value.strftime("%H:%M")
    return value

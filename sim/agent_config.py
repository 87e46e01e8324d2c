"""Writes the agent's site configuration (TOML) that matches a simulated school."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # JSON string escapes are valid TOML basic-string escapes
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{k} = {_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, Sequence):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def _table(header: str, values: Mapping[str, Any]) -> list[str]:
    lines = [header]
    lines.extend(f"{key} = {_value(value)}" for key, value in values.items() if value is not None)
    return [*lines, ""]


def render(
    *,
    school: str,
    discovery: Mapping[str, Any],
    wlan: Mapping[str, Any],
    controller: Mapping[str, Any] | None,
    aps: Sequence[Mapping[str, Any]],
    cabinets: Mapping[str, Any],
    cabinet_list: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]],
) -> str:
    """The [discovery], [wlan] and [cabinets] sections as TOML text."""
    lines = [f"# Site monitoring for the simulated school {school!r}, written by schulwart-sim.", ""]
    lines += _table("[discovery]", discovery)
    lines += _table("[wlan]", wlan)
    if controller:
        lines += _table("[wlan.controller]", controller)
    for ap in aps:
        lines += _table("[[wlan.aps]]", ap)
    lines += _table("[cabinets]", cabinets)
    for cabinet, meter in cabinet_list:
        lines += _table("[[cabinets.cabinet]]", cabinet)
        lines += _table("[cabinets.cabinet.meter]", meter)
    return "\n".join(lines)

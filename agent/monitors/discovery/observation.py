"""One resolved mDNS service, sanitised, and what it says about its device (id, class, name, model)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from agent.monitors.discovery.classes import CLASS_TABLE, NAME_ID_BEFORE_AT, OTHER, ClassRule, match_rule
from agent.monitors.discovery.sanitize import MAX_HOST_CHARS, MAX_NAME_CHARS, clean_text

MAX_ID_CHARS = 80
_HEX12 = re.compile(r"[0-9a-f]{12}")
_SEPARATORS = re.compile(r"[:\-.]")


@dataclass(frozen=True, slots=True)
class Observation:
    """A resolved service as the agent keeps it: every string already decoded and capped."""

    service_type: str
    service_name: str
    instance: str
    host: str
    addresses: tuple[str, ...]
    port: int
    properties: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DeviceIdentity:
    """What one observation says about its device."""

    device_id: str
    strong: bool
    device_class: str
    priority: int
    name: str
    model: str | None


def normalise_mac(text: str) -> str | None:
    """'90DD5D8B4C23', '90-dd-5d-8b-4c-23' or '90:DD:…' → '90:dd:5d:8b:4c:23'; None if not a MAC."""
    compact = _SEPARATORS.sub("", text.strip().lower())
    if not _HEX12.fullmatch(compact):
        return None
    return ":".join(compact[i : i + 2] for i in range(0, 12, 2))


# Values devices put where a unique id belongs when they have none: shared by many devices, so
# taking them as ids would merge distinct devices into one.
_PLACEHOLDER_IDS = frozenset({"0", "-", "none", "null", "nil", "unknown", "n/a", "default", "undefined"})


def _id_from_value(value: str) -> str | None:
    """A device id from a TXT value or name part; None for empty values and placeholders
    (all-zero or all-F MACs, multicast MACs, all-zero UUIDs, words like 'unknown')."""
    value = value.strip()
    if not value or value.lower() in _PLACEHOLDER_IDS:
        return None
    mac = normalise_mac(value)
    if mac:
        compact = mac.replace(":", "")
        if len(set(compact)) == 1 or int(compact[:2], 16) & 1:  # 00…/ff… or the multicast bit: no one device's
            return None
        return f"mac:{mac}"
    if set(value.replace("-", "")) <= {"0"}:
        return None
    return f"id:{value.lower()}"[:MAX_ID_CHARS]


def host_label(host: str) -> str:
    """'Lenas-iPad.local.' → 'Lenas-iPad'."""
    host = host.rstrip(".")
    if host.lower().endswith(".local"):
        host = host[: -len(".local")]
    return host


def identify(obs: Observation, table: Iterable[ClassRule] = CLASS_TABLE) -> DeviceIdentity:
    """The best device id the announcement offers (TXT id or MAC, else host, else instance), class, name, model."""
    rule = match_rule(obs.service_type, obs.instance, obs.properties, table)
    props = obs.properties
    device_id: str | None = None
    if rule is not None:
        for key in rule.id_keys:
            device_id = _id_from_value(props.get(key.lower(), ""))
            if device_id:
                break
        if device_id is None and rule.id_from_name == NAME_ID_BEFORE_AT and "@" in obs.instance:
            device_id = _id_from_value(obs.instance.split("@", 1)[0])
    strong = device_id is not None
    if device_id is None and obs.host:
        device_id = f"host:{host_label(obs.host).lower()}"[:MAX_ID_CHARS]
    if device_id is None:
        device_id = f"svc:{obs.service_name.lower()}"[:MAX_ID_CHARS]
    return DeviceIdentity(
        device_id=device_id,
        strong=strong,
        device_class=rule.device_class if rule else OTHER,
        priority=rule.priority if rule else 0,
        name=_display_name(obs, rule),
        model=_model(props, rule),
    )


def _display_name(obs: Observation, rule: ClassRule | None) -> str:
    if rule is not None:
        for key in rule.name_keys:
            value = obs.properties.get(key.lower())
            if value:
                return value[:MAX_NAME_CHARS]
        if rule.name_after_at and "@" in obs.instance:
            return obs.instance.split("@", 1)[1][:MAX_NAME_CHARS] or obs.instance
        if rule.id_from_name and "@" in obs.instance and obs.host:
            # apple-mobdev2 names are "<mac>@<ipv6>": the host name is the readable part.
            return clean_text(host_label(obs.host), MAX_HOST_CHARS)[:MAX_NAME_CHARS]
    return obs.instance or clean_text(host_label(obs.host), MAX_NAME_CHARS)


def _model(props: Mapping[str, str], rule: ClassRule | None) -> str | None:
    if rule is None:
        return None
    for key in rule.model_keys:
        value = props.get(key.lower())
        if value:
            return value.strip("()")[:MAX_NAME_CHARS] or None
    return None

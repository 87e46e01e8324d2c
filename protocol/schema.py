"""Payload schemas v1: reports, state, agent configuration and export bundles.

Hand-written validators over plain dataclasses: the shapes are small, the rules
(sequence continuity, caps) are ours, and a validation library would add a dependency
to the agent's install for a few dozen lines. The data of each event kind (and of the
state's open incidents and devices) is checked by its payload class in
``protocol.events``; the kind, category and severity sets are re-exported from there.
Unknown fields of a known version are kept in ``extra`` (forward compatibility); an
unknown major version is refused.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .encoding import dumps, loads_strict
from .errors import MalformedError, TooLargeError, UnsupportedError
from .events import (
    CATEGORIES,
    DEVICE_KINDS,
    EVENT_KINDS,
    INCIDENT_KINDS,
    SEVERITIES,
    DeviceSeen,
    EventPayload,
    IncidentOpened,
    parse_event_data,
)
from .fields import (
    MAX_KEYS,
    MAX_LIST,
    MAX_SEQ,
    MAX_STRING,
    bounded,
    extra_fields,
    ident_field,
    int_field,
    require_obj,
    slot_setter,
    str_field,
)

__all__ = [
    "BUNDLE_TYPE",
    "CATEGORIES",
    "CONFIG_CENTRAL_KEYS",
    "CONFIG_CENTRAL_STEPS",
    "CONFIG_SECTIONS",
    "CONFIG_TYPE",
    "DEVICE_KINDS",
    "EVENT_KINDS",
    "INCIDENT_KINDS",
    "MAX_EVENTS",
    "MAX_KEYS",
    "MAX_LIST",
    "MAX_SEQ",
    "MAX_STATE_ITEMS",
    "MAX_STRING",
    "REPORT_TYPE",
    "SCHEMA_VERSION",
    "SEVERITIES",
    "STATE_TYPE",
    "BundlePayload",
    "ConfigPayload",
    "ConfigReport",
    "Event",
    "Report",
    "StatePayload",
    "build_bundle",
    "build_config_payload",
    "build_report",
    "build_state",
    "canonical_event",
    "event_digest",
    "format_time",
    "make_event",
    "parse_bundle",
    "parse_config_payload",
    "parse_report",
    "parse_state",
    "parse_time",
]

SCHEMA_VERSION = 1
REPORT_TYPE = "application/vnd.schulwart.report+json;v=1"
STATE_TYPE = "application/vnd.schulwart.state+json;v=1"
CONFIG_TYPE = "application/vnd.schulwart.config+json;v=1"
# The member of a config payload's ``settings`` that holds the agent config sections central sets
# (``{"cabinets": {...}, "wlan": {...}}``, the TOML tables as JSON).
CONFIG_SECTIONS = "sections"
# The member that carries central staff's acks and notes on the agent's incidents, oldest first:
# ``[{"incident": id, "action": "acknowledged" | "note", "by", "at", "text" (notes only)}]``.
CONFIG_CENTRAL_STEPS = "central_steps"
# The member that names the central keys an agent is to trust from now on (raw base64 public keys):
# ``{"config": [...], "token": [...]}``, the keys in force first, then a next key during a
# rotation's grace period, then (tokens) a retired issuer key while its tokens may still live.
CONFIG_CENTRAL_KEYS = "central_keys"
BUNDLE_TYPE = "application/vnd.schulwart.bundle+json;v=1"

MAX_EVENTS = 2000
MAX_STATE_ITEMS = 5000

# Built once: json.dumps() with options builds a new encoder on every call.
_CANONICAL = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
_EVENT_FIELDS = ("seq", "at", "kind", "data")
_quote = json.encoder.encode_basestring  # a JSON string literal, non-ASCII kept: what _CANONICAL writes
_TIME_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})")


# --------------------------------------------------------------------------- time


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with a trailing Z, to the microsecond when there is one."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: pass an aware one")
    text = moment.astimezone(UTC).isoformat()
    return text.replace("+00:00", "Z")


def parse_time(text: str, *, field_name: str = "time") -> datetime:
    """Parse an RFC 3339 timestamp with an offset; a bare local time is refused."""
    match = _TIME_RE.fullmatch(text) if isinstance(text, str) and len(text) <= 40 else None
    if match is None:
        raise MalformedError(f"{field_name}: not an RFC 3339 timestamp", reason="bad_time")
    fraction, offset = match.group(1, 2)
    if fraction is not None and len(fraction) == 7:
        fixed = text  # microseconds, the form agents send: fromisoformat() (3.11) reads it as it is, Z included
    else:
        # Python 3.11 takes at most 6 fractional digits; "Z" is spelled as the offset it means.
        fixed = (
            text[:19]
            + ("." + fraction[1:7].ljust(6, "0") if fraction else "")
            + ("+00:00" if offset == "Z" else offset)
        )
    try:
        return datetime.fromisoformat(fixed)
    except ValueError:
        raise MalformedError(f"{field_name}: not a valid date or time", reason="bad_time") from None


# --------------------------------------------------------------------------- field checks


def _version(doc: Mapping[str, Any]) -> None:
    version = doc.get("v")
    if type(version) is not int:
        raise MalformedError("payload has no integer version 'v'", reason="bad_payload")
    if version != SCHEMA_VERSION:
        raise UnsupportedError(
            f"payload major version {version} is not supported (this side speaks {SCHEMA_VERSION})",
            reason="unsupported_version",
        )


# --------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class Event:
    """One numbered event of an agent's history.

    ``data`` is the data object exactly as received (it is what gets stored and digested);
    ``payload`` is the same data parsed into its kind's class (see ``protocol.events``);
    ``moment`` is ``at`` parsed (aware, in the offset the agent wrote), so that readers need not
    parse it again.
    """

    seq: int
    at: str
    kind: str
    data: Mapping[str, Any]
    extra: Mapping[str, Any] = field(default_factory=dict)
    payload: EventPayload = field(kw_only=True)
    moment: datetime = field(kw_only=True)

    def to_json(self) -> dict[str, Any]:
        """The event as it appears on the wire, extras included."""
        return {**self.extra, "seq": self.seq, "at": self.at, "kind": self.kind, "data": dict(self.data)}

    def canonical(self) -> tuple[str, str]:
        """``canonical_event`` of the event as it appeared on the wire: (sorted-key JSON, SHA-256 hex)."""
        text, digest, _ = self.canonical_parts()
        return text, digest

    def canonical_parts(self) -> tuple[str, str, str]:
        """``canonical()`` and the sorted-key JSON of ``data`` alone: (text, SHA-256 hex, data text).

        The data text is the part of the event's text that spells ``data``, so a reader that
        stores the data object on its own (central's device rows) need not encode it again.
        """
        if self.extra or type(self.seq) is not int or type(self.at) is not str or type(self.kind) is not str:
            # No copy of ``data``: the encoder only reads it.
            text, digest = canonical_event(
                {**self.extra, "seq": self.seq, "at": self.at, "kind": self.kind, "data": self.data}
            )
            return text, digest, _CANONICAL.encode(self.data)
        # Without extras the members sort as at, data, kind, seq: the same text as canonical_event()
        # gives, written around the data's own without building and sorting the outer object.
        data = _CANONICAL.encode(self.data)
        text = f'{{"at":{_quote(self.at)},"data":{data},"kind":{_quote(self.kind)},"seq":{self.seq}}}'
        return text, hashlib.sha256(text.encode("utf-8")).hexdigest(), data


_new = object.__new__
_set_seq = slot_setter(Event, "seq")
_set_at = slot_setter(Event, "at")
_set_kind = slot_setter(Event, "kind")
_set_data = slot_setter(Event, "data")
_set_extra = slot_setter(Event, "extra")
_set_payload = slot_setter(Event, "payload")
_set_moment = slot_setter(Event, "moment")


def make_event(seq: int, at: datetime | str, kind: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """A wire event dict, validated, ready for an outbox row.

    MalformedError or TooLargeError (messages start with ``event: ``) when central would refuse it.
    """
    at_text = at if isinstance(at, str) else format_time(at)
    doc = {"seq": seq, "at": at_text, "kind": kind, "data": dict(data)}
    _parse_event(doc, "event: ")
    return doc


def canonical_event(event: Mapping[str, Any]) -> tuple[str, str]:
    """The event's JSON with sorted keys (compact, UTF-8 text) and the SHA-256 hex digest of it.

    Equal content gives equal text and digest whatever the key order or spacing on the wire:
    central stores the text and compares the digest, so one serialisation serves both.
    ValueError for NaN or infinity; UnicodeEncodeError for a lone surrogate (the strict reader
    refuses both before an event gets here).
    """
    text = _CANONICAL.encode(event)
    return text, hashlib.sha256(text.encode("utf-8")).hexdigest()


def event_digest(event: Mapping[str, Any]) -> str:
    """SHA-256 over the event's JSON with sorted keys: equal content, equal digest."""
    return canonical_event(event)[1]


def _parse_event(doc: Any, where: str) -> Event:
    obj = doc if type(doc) is dict else require_obj(doc, where.rstrip(": ") or "event")
    seq: Any = obj.get("seq")
    at: Any = obj.get("at")
    # The common case checked inline; the field checks run only to refuse, with their messages.
    if type(seq) is not int or not 1 <= seq <= MAX_SEQ:
        int_field(obj, "seq", low=1, where=where)  # raises
    if type(at) is not str or len(at) > 40:
        str_field(obj, "at", max_len=40, where=where)  # raises
    try:
        moment = parse_time(at)
    except MalformedError:  # again, to name the field: the name is built only for a refusal
        moment = parse_time(at, field_name=f"{where}at")
    payload = parse_event_data(obj.get("kind"), obj.get("data"), where=where)
    # Event(...) field by field without the frozen dataclass __init__ (see slot_setter): the same object.
    event = _new(Event)
    _set_seq(event, seq)
    _set_at(event, at)
    _set_kind(event, str(obj["kind"]))  # a known kind by now; str() of a plain string is itself, unlike EventKind.value
    _set_data(event, obj["data"])
    # seq, at, kind and data are all there by now: four members leave no extras.
    _set_extra(event, extra_fields(obj, _EVENT_FIELDS) if len(obj) > len(_EVENT_FIELDS) else {})
    _set_payload(event, payload)
    _set_moment(event, moment)
    return event


# --------------------------------------------------------------------------- report


@dataclass(frozen=True, slots=True)
class Report:
    """A signed batch of consecutive events of one agent."""

    agent_id: str
    school_id: str
    seq_from: int
    seq_to: int
    sent_at: str
    events: tuple[Event, ...]
    extra: Mapping[str, Any] = field(default_factory=dict)


_REPORT_FIELDS = ("v", "agent_id", "school_id", "seq_from", "seq_to", "sent_at", "events")


def build_report(
    agent_id: str,
    school_id: str,
    events: Sequence[Mapping[str, Any]],
    sent_at: datetime | str,
    *,
    agent_version: str | None = None,
) -> bytes:
    """The payload bytes of a report over the given consecutive events.

    ``agent_version`` adds the sender's version as the field ``agent_version`` (an added field:
    readers keep it in ``extra``).
    """
    if not events:
        raise ValueError("a report needs at least one event")
    doc: dict[str, Any] = {
        "v": SCHEMA_VERSION,
        "agent_id": agent_id,
        "school_id": school_id,
        "seq_from": events[0]["seq"],
        "seq_to": events[-1]["seq"],
        "sent_at": sent_at if isinstance(sent_at, str) else format_time(sent_at),
        "events": [dict(e) for e in events],
    }
    if agent_version is not None:
        doc["agent_version"] = agent_version
    return dumps(doc)


def parse_report(payload: bytes | Mapping[str, Any], *, max_events: int = MAX_EVENTS) -> Report:
    """Validate report payload bytes: types, ranges, caps and seq_from..seq_to continuity."""
    doc = require_obj(loads_strict(payload) if not isinstance(payload, Mapping) else payload, "report")
    _version(doc)
    agent_id = ident_field(doc, "agent_id")
    school_id = ident_field(doc, "school_id")
    seq_from = int_field(doc, "seq_from", low=1)
    seq_to = int_field(doc, "seq_to", low=1)
    sent_at = str_field(doc, "sent_at", max_len=40)
    assert sent_at is not None
    parse_time(sent_at, field_name="sent_at")
    if seq_to < seq_from:
        raise MalformedError("seq_to is below seq_from", reason="bad_payload")
    raw_events = doc.get("events")
    if not isinstance(raw_events, list):
        raise MalformedError("events must be a list", reason="bad_payload")
    if len(raw_events) > max_events:
        raise TooLargeError(f"{len(raw_events)} events is over the cap of {max_events}")
    if len(raw_events) != seq_to - seq_from + 1:
        raise MalformedError(f"{len(raw_events)} events do not fill seq {seq_from}..{seq_to}", reason="bad_sequence")
    events = []
    for index, raw in enumerate(raw_events):
        event = _parse_event(raw, f"events[{index}].")
        if event.seq != seq_from + index:
            raise MalformedError(
                f"events[{index}].seq is {event.seq}, expected {seq_from + index}", reason="bad_sequence"
            )
        events.append(event)
    return Report(
        agent_id=agent_id,
        school_id=school_id,
        seq_from=seq_from,
        seq_to=seq_to,
        sent_at=sent_at,
        events=tuple(events),
        extra=extra_fields(doc, _REPORT_FIELDS),
    )


# --------------------------------------------------------------------------- state


@dataclass(frozen=True, slots=True)
class StatePayload:
    """An agent's present: open incidents, latest snapshot, device summary; outside the sequence.

    ``open_incidents`` and ``devices`` are the objects as received; ``incidents`` and
    ``device_payloads`` are the same objects parsed as incident.opened and device.seen data.
    """

    agent_id: str
    school_id: str
    last_seq: int
    made_at: str
    open_incidents: tuple[Mapping[str, Any], ...]
    snapshot: Mapping[str, Any] | None
    devices: tuple[Mapping[str, Any], ...]
    extra: Mapping[str, Any] = field(default_factory=dict)
    incidents: tuple[IncidentOpened, ...] = field(kw_only=True)
    device_payloads: tuple[DeviceSeen, ...] = field(kw_only=True)
    dropped_events: int = field(default=0, kw_only=True)
    config: ConfigReport | None = field(default=None, kw_only=True)


@dataclass(frozen=True, slots=True)
class ConfigReport:
    """Which central configuration an agent runs: its ``version`` and the dotted keys its own file overrides."""

    version: int
    overrides: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """As the state payload carries it: ``{"version": N, "overrides": ["cabinets.window", ...]}``."""
        return {"version": self.version, "overrides": list(self.overrides)}


MAX_OVERRIDES = 200
_STATE_FIELDS = (
    "v", "agent_id", "school_id", "last_seq", "made_at", "open_incidents", "snapshot", "devices", "dropped_events",
    "config",
)


def build_state(
    agent_id: str,
    school_id: str,
    last_seq: int,
    made_at: datetime | str,
    open_incidents: Sequence[Mapping[str, Any]],
    snapshot: Mapping[str, Any] | None,
    devices: Sequence[Mapping[str, Any]] = (),
    *,
    agent_version: str | None = None,
    dropped_events: int = 0,
    config: ConfigReport | None = None,
) -> bytes:
    """The payload bytes of a state report; ``agent_version`` as in :func:`build_report`.

    ``dropped_events`` counts what the agent's outbox could not hold (a full disk): it travels
    here because the state is built in memory, while the outbox is the thing that is full.
    ``config`` says which central configuration version runs and what the school's file overrides.
    """
    doc: dict[str, Any] = {
        "v": SCHEMA_VERSION,
        "agent_id": agent_id,
        "school_id": school_id,
        "last_seq": last_seq,
        "made_at": made_at if isinstance(made_at, str) else format_time(made_at),
        "open_incidents": [dict(i) for i in open_incidents],
        "snapshot": dict(snapshot) if snapshot is not None else None,
        "devices": [dict(d) for d in devices],
    }
    if agent_version is not None:
        doc["agent_version"] = agent_version
    if dropped_events:  # only when there is something to say: a state without drops keeps its old bytes
        doc["dropped_events"] = dropped_events
    if config is not None:
        doc["config"] = config.to_json()
    return dumps(doc)


def parse_state(payload: bytes | Mapping[str, Any]) -> StatePayload:
    """Validate a state payload; each open incident must look like incident.opened data."""
    doc = require_obj(loads_strict(payload) if not isinstance(payload, Mapping) else payload, "state")
    _version(doc)
    agent_id = ident_field(doc, "agent_id")
    school_id = ident_field(doc, "school_id")
    last_seq = int_field(doc, "last_seq", low=0)
    made_at = str_field(doc, "made_at", max_len=40)
    assert made_at is not None
    parse_time(made_at, field_name="made_at")
    incidents = doc.get("open_incidents")
    devices = doc.get("devices", [])
    snapshot = doc.get("snapshot")
    if not isinstance(incidents, list) or not isinstance(devices, list):
        raise MalformedError("open_incidents and devices must be lists", reason="bad_payload")
    if len(incidents) > MAX_STATE_ITEMS or len(devices) > MAX_STATE_ITEMS:
        raise TooLargeError(f"state lists are capped at {MAX_STATE_ITEMS} items")
    parsed_incidents = []
    for index, incident in enumerate(incidents):
        where = f"open_incidents[{index}]."
        bounded(require_obj(incident, where), where)
        parsed_incidents.append(IncidentOpened.from_data(incident, where=where))
    parsed_devices = []
    for index, device in enumerate(devices):
        where = f"devices[{index}]."
        bounded(require_obj(device, where), where)
        parsed_devices.append(DeviceSeen.from_data(device, where=where))
    if snapshot is not None:
        bounded(require_obj(snapshot, "snapshot"), "snapshot")
    # Added in 0.2; an older agent does not send it (then: nothing known to be dropped).
    dropped = int_field(doc, "dropped_events", low=0) if "dropped_events" in doc else 0
    return StatePayload(
        config=_config_report(doc["config"]) if "config" in doc else None,
        agent_id=agent_id,
        school_id=school_id,
        last_seq=last_seq,
        made_at=made_at,
        open_incidents=tuple(incidents),
        snapshot=snapshot,
        devices=tuple(devices),
        extra=extra_fields(doc, _STATE_FIELDS),
        incidents=tuple(parsed_incidents),
        device_payloads=tuple(parsed_devices),
        dropped_events=dropped,
    )


def _config_report(raw: Any) -> ConfigReport:
    doc = require_obj(raw, "config")
    overrides = doc.get("overrides", [])
    if not isinstance(overrides, list) or not all(isinstance(k, str) and 0 < len(k) <= 200 for k in overrides):
        raise MalformedError("config.overrides must be a list of dotted keys", reason="bad_payload")
    if len(overrides) > MAX_OVERRIDES:
        raise TooLargeError(f"config.overrides is capped at {MAX_OVERRIDES} keys")
    return ConfigReport(version=int_field(doc, "version", low=0, where="config."), overrides=tuple(overrides))


# --------------------------------------------------------------------------- config


@dataclass(frozen=True, slots=True)
class ConfigPayload:
    """Agent settings pushed by central, signed with central's configuration key."""

    agent_id: str
    version: int
    issued_at: str
    settings: Mapping[str, Any]
    extra: Mapping[str, Any] = field(default_factory=dict)


def build_config_payload(agent_id: str, version: int, issued_at: datetime | str, settings: Mapping[str, Any]) -> bytes:
    """The payload bytes of an agent configuration."""
    return dumps(
        {
            "v": SCHEMA_VERSION,
            "agent_id": agent_id,
            "version": version,
            "issued_at": issued_at if isinstance(issued_at, str) else format_time(issued_at),
            "settings": dict(settings),
        }
    )


def parse_config_payload(payload: bytes | Mapping[str, Any]) -> ConfigPayload:
    """Validate a configuration payload."""
    doc = require_obj(loads_strict(payload) if not isinstance(payload, Mapping) else payload, "config")
    _version(doc)
    issued_at = str_field(doc, "issued_at", max_len=40)
    assert issued_at is not None
    parse_time(issued_at, field_name="issued_at")
    settings = require_obj(doc.get("settings"), "settings")
    bounded(settings, "settings")
    return ConfigPayload(
        agent_id=ident_field(doc, "agent_id"),
        version=int_field(doc, "version", low=0),
        issued_at=issued_at,
        settings=settings,
        extra=extra_fields(doc, ("v", "agent_id", "version", "issued_at", "settings")),
    )


# --------------------------------------------------------------------------- bundle


@dataclass(frozen=True, slots=True)
class BundlePayload:
    """Signed report envelopes carried by hand from an offline school."""

    agent_id: str
    school_id: str
    made_at: str
    envelopes: tuple[str, ...]
    extra: Mapping[str, Any] = field(default_factory=dict)


MAX_BUNDLE_ENVELOPES = 100_000


def build_bundle(agent_id: str, school_id: str, made_at: datetime | str, envelopes: Sequence[bytes]) -> bytes:
    """The payload bytes of an export bundle; each envelope is kept as its exact JSON text."""
    return dumps(
        {
            "v": SCHEMA_VERSION,
            "agent_id": agent_id,
            "school_id": school_id,
            "made_at": made_at if isinstance(made_at, str) else format_time(made_at),
            "envelopes": [e.decode("utf-8") for e in envelopes],
        }
    )


def parse_bundle(payload: bytes | Mapping[str, Any]) -> BundlePayload:
    """Validate a bundle payload; the inner envelopes are verified one by one by the importer."""
    doc = require_obj(loads_strict(payload) if not isinstance(payload, Mapping) else payload, "bundle")
    _version(doc)
    made_at = str_field(doc, "made_at", max_len=40)
    assert made_at is not None
    parse_time(made_at, field_name="made_at")
    envelopes = doc.get("envelopes")
    if not isinstance(envelopes, list) or not all(isinstance(e, str) for e in envelopes):
        raise MalformedError("envelopes must be a list of strings", reason="bad_payload")
    if len(envelopes) > MAX_BUNDLE_ENVELOPES:
        raise TooLargeError(f"bundle holds more than {MAX_BUNDLE_ENVELOPES} envelopes")
    return BundlePayload(
        agent_id=ident_field(doc, "agent_id"),
        school_id=ident_field(doc, "school_id"),
        made_at=made_at,
        envelopes=tuple(envelopes),
        extra=extra_fields(doc, ("v", "agent_id", "school_id", "made_at", "envelopes")),
    )

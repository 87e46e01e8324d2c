"""Event payloads v1: the ``data`` of each event kind as a frozen, typed class.

An event on the wire is ``{"seq": int, "at": RFC 3339 UTC, "kind": str, "data": object}``.
This module owns ``kind`` and ``data``: the kinds, the incident categories and severities,
and one payload class per kind that checks and parses a data object (``from_data``) and
writes it back (``to_data``). The rules, v1:

* every data object is capped: strings at 4096 characters, lists at 2000 items, objects
  at 256 keys, keys at 128 characters (``TooLargeError``);
* ``incident.opened``: ``id`` (identifier), ``key`` (≤ 256), ``category``, ``severity``,
  ``title`` (≤ 300) and ``subject`` (≤ 256, required but may be null);
* ``incident.opened`` and ``incident.updated`` may carry ``code`` (a string) and ``params``
  (an object) from which a reader renders the title in its own language
  (``protocol.messages``); ``title`` stays the English fallback;
* ``incident.updated``, ``incident.resolved``, ``incident.acknowledged`` and ``note.added``
  name the incident by ``id``; an update may carry a new ``severity`` and ``title``, an
  acknowledgement and a note a ``by`` (≤ 128, may be null or absent), a note its ``text``
  (≤ 4000);
* ``device.seen``, ``device.changed``, ``device.lost``: a pseudonymous ``id`` and the
  device ``class`` (≤ 32);
* ``health.snapshot``: named sections; ``host``, ``wlan``, ``cabinets``, ``counts`` and
  ``outbox`` must be objects or lists when present.

Everything else is forward compatible: fields this version does not know are kept in
``extra`` and written back unchanged, so a newer agent's additions pass through. The
optional fields the agent writes but nobody refuses (``opened_at``, ``flap_count``, a
device's ``model``...) are typed when their value has the expected type and kept in
``extra`` otherwise; ``from_data(d).to_data() == d`` for every ``d`` that is accepted.
Refusals raise ``MalformedError`` (reason ``bad_payload``) or ``TooLargeError``, their
messages prefixed with ``where`` (e.g. ``events[3].``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar, Literal, Self, TypeVar, cast, get_args

from .errors import MalformedError
from .fields import ID_RE, MAX_STRING, bounded, enum_field, ident_field, require_obj, slot_setter, str_field

__all__ = [
    "CATEGORIES",
    "DEVICE_KINDS",
    "EVENT_KINDS",
    "INCIDENT_KINDS",
    "SEVERITIES",
    "Category",
    "DeviceChanged",
    "DeviceLost",
    "DevicePayload",
    "DeviceSeen",
    "EventKind",
    "EventPayload",
    "HealthSnapshot",
    "IncidentAcknowledged",
    "IncidentOpened",
    "IncidentPayload",
    "IncidentResolved",
    "IncidentUpdated",
    "NoteAdded",
    "Severity",
    "parse_event_data",
]


class EventKind(StrEnum):
    """The kinds of event; a member compares and serialises as its wire string."""

    HEALTH_SNAPSHOT = "health.snapshot"
    DEVICE_SEEN = "device.seen"
    DEVICE_CHANGED = "device.changed"
    DEVICE_LOST = "device.lost"
    INCIDENT_OPENED = "incident.opened"
    INCIDENT_UPDATED = "incident.updated"
    INCIDENT_RESOLVED = "incident.resolved"
    INCIDENT_ACKNOWLEDGED = "incident.acknowledged"
    NOTE_ADDED = "note.added"

    @property
    def action(self) -> str:
        """The part after the dot: ``opened`` for ``incident.opened``."""
        return self.value.partition(".")[2]


Category = Literal["wlan", "cabinet", "device", "host", "agent"]
Severity = Literal["info", "warning", "critical"]

CATEGORIES: frozenset[str] = frozenset(get_args(Category))
SEVERITIES: frozenset[str] = frozenset(get_args(Severity))


# --------------------------------------------------------------------------- reading


class _Reader:
    """One data object being parsed: remembers which members became typed attributes."""

    __slots__ = ("data", "taken", "where")

    def __init__(self, data: object, where: str) -> None:
        self.where = where
        self.data = require_obj(data, f"{where}data")
        bounded(self.data, f"{where}data")
        self.taken: set[str] = set()

    def ident(self, key: str) -> str:
        self.taken.add(key)
        return ident_field(self.data, key, self.where)

    def text(self, key: str, max_len: int, *, optional: bool = False) -> str | None:
        value = str_field(self.data, key, max_len=max_len, optional=optional, where=self.where)
        if key in self.data:
            self.taken.add(key)
        return value

    def required_text(self, key: str, max_len: int) -> str:
        value = self.text(key, max_len)
        assert value is not None
        return value

    def choice(self, key: str, allowed: frozenset[str]) -> str:
        self.taken.add(key)
        return enum_field(self.data, key, allowed, self.where)

    def _loose(self, key: str, accept: Callable[[Any], bool]) -> Any:
        # Not checked on the wire: a value of another type is kept in extra, not refused.
        value = self.data.get(key)
        if value is None or not accept(value):
            return None
        self.taken.add(key)
        return value

    def loose_str(self, key: str) -> str | None:
        return cast("str | None", self._loose(key, lambda v: isinstance(v, str)))

    def loose_int(self, key: str) -> int | None:
        return cast("int | None", self._loose(key, lambda v: type(v) is int))

    def loose_bool(self, key: str) -> bool | None:
        return cast("bool | None", self._loose(key, lambda v: isinstance(v, bool)))

    def loose_obj(self, key: str) -> dict[str, Any] | None:
        return cast("dict[str, Any] | None", self._loose(key, lambda v: isinstance(v, dict)))

    def loose_strs(self, key: str) -> tuple[str, ...] | None:
        value = self._loose(key, lambda v: isinstance(v, list) and all(isinstance(i, str) for i in v))
        return None if value is None else tuple(value)

    def nullable_str(self, key: str) -> str | None:
        """A member the agent always writes, null or a string; absent or other types are omitted."""
        value = self.data.get(key)
        if key in self.data and (value is None or isinstance(value, str)):
            self.taken.add(key)
            return value
        return None

    def omitted(self, *keys: str) -> frozenset[str]:
        return frozenset(k for k in keys if k not in self.taken)

    def extra(self) -> dict[str, Any]:
        return {k: v for k, v in self.data.items() if k not in self.taken}


def _write(known: dict[str, Any], optional: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """Known members first (optional ones only when set), then the extras they do not shadow."""
    out = dict(known)
    out.update((k, v) for k, v in optional.items() if v is not None)
    out.update((k, v) for k, v in extra.items() if k not in out)
    return out


def _nullable(out: dict[str, Any], omitted: frozenset[str], **members: Any) -> dict[str, Any]:
    out.update((k, v) for k, v in members.items() if k not in omitted)
    return out


# --------------------------------------------------------------------------- incidents


@dataclass(frozen=True, slots=True, kw_only=True)
class IncidentOpened:
    """``incident.opened``: a new incident, and the shape of an open incident in the state payload.

    ``key`` and ``subject`` are already pseudonymised when device names may not be shared.
    Times are RFC 3339 UTC strings; ``details`` holds numbers and booleans only unless
    names may be shared.
    """

    kind: ClassVar[EventKind] = EventKind.INCIDENT_OPENED

    id: str
    key: str
    category: Category
    severity: Severity
    title: str
    subject: str | None
    opened_at: str | None = None
    last_seen: str | None = None
    flap_count: int | None = None
    acknowledged: bool | None = None
    details: Mapping[str, Any] | None = None
    code: str | None = None
    params: Mapping[str, Any] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_data(cls, data: object, *, where: str = "") -> Self:
        """Check and parse ``incident.opened`` data; MalformedError or TooLargeError if refused."""
        if _plain_opened(data):
            # What nearly every incident.opened is, checked in one pass with the same outcome as
            # the general path below (which also gives the refusals their messages).
            assert isinstance(data, dict)
            # cls(id=..., subject=...) with the rest at their defaults, set slot by slot (see slot_setter).
            opened = _new(cls)
            for set_slot, name in _OPENED_REQUIRED:
                set_slot(opened, data[name])
            for set_slot in _OPENED_UNSET:
                set_slot(opened, None)
            _set_opened_extra(opened, {})
            return opened
        return cls._read(data, where)

    @classmethod
    def _read(cls, data: object, where: str) -> Self:
        r = _Reader(data, where)
        id_ = r.ident("id")
        key = r.required_text("key", 256)
        category = cast(Category, r.choice("category", CATEGORIES))
        severity = cast(Severity, r.choice("severity", SEVERITIES))
        title = r.required_text("title", 300)
        if "subject" not in r.data:
            raise MalformedError(f"{where}subject is required (may be null)", reason="bad_payload")
        subject = r.text("subject", 256, optional=True)
        return cls(
            id=id_,
            key=key,
            category=category,
            severity=severity,
            title=title,
            subject=subject,
            opened_at=r.loose_str("opened_at"),
            last_seen=r.loose_str("last_seen"),
            flap_count=r.loose_int("flap_count"),
            acknowledged=r.loose_bool("acknowledged"),
            details=r.loose_obj("details"),
            code=r.loose_str("code"),
            params=r.loose_obj("params"),
            extra=r.extra(),
        )

    def to_data(self) -> dict[str, Any]:
        """The data object as the agent writes it."""
        known = {
            "id": self.id,
            "key": self.key,
            "category": self.category,
            "severity": self.severity,
            "title": self.title,
            "subject": self.subject,
        }
        optional = {
            "opened_at": self.opened_at,
            "last_seen": self.last_seen,
            "flap_count": self.flap_count,
            "acknowledged": self.acknowledged,
            "details": None if self.details is None else dict(self.details),
            "code": self.code,
            "params": None if self.params is None else dict(self.params),
        }
        return _write(known, optional, self.extra)


@dataclass(frozen=True, slots=True, kw_only=True)
class IncidentUpdated:
    """``incident.updated``: an open incident's severity or title changed (None: unchanged)."""

    kind: ClassVar[EventKind] = EventKind.INCIDENT_UPDATED

    id: str
    severity: Severity | None = None
    title: str | None = None
    last_seen: str | None = None
    flap_count: int | None = None
    code: str | None = None
    params: Mapping[str, Any] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_data(cls, data: object, *, where: str = "") -> Self:
        """Check and parse ``incident.updated`` data; MalformedError or TooLargeError if refused."""
        r = _Reader(data, where)
        id_ = r.ident("id")
        severity = cast(Severity, r.choice("severity", SEVERITIES)) if "severity" in r.data else None
        title = r.required_text("title", 300) if "title" in r.data else None
        return cls(
            id=id_,
            severity=severity,
            title=title,
            last_seen=r.loose_str("last_seen"),
            flap_count=r.loose_int("flap_count"),
            code=r.loose_str("code"),
            params=r.loose_obj("params"),
            extra=r.extra(),
        )

    def to_data(self) -> dict[str, Any]:
        """The data object as the agent writes it."""
        optional = {
            "severity": self.severity,
            "title": self.title,
            "last_seen": self.last_seen,
            "flap_count": self.flap_count,
            "code": self.code,
            "params": None if self.params is None else dict(self.params),
        }
        return _write({"id": self.id}, optional, self.extra)


@dataclass(frozen=True, slots=True, kw_only=True)
class IncidentResolved:
    """``incident.resolved``: the incident is over; times are RFC 3339 UTC strings."""

    kind: ClassVar[EventKind] = EventKind.INCIDENT_RESOLVED

    id: str
    resolved_at: str | None = None
    opened_at: str | None = None
    flap_count: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_data(cls, data: object, *, where: str = "") -> Self:
        """Check and parse ``incident.resolved`` data; MalformedError or TooLargeError if refused."""
        if _plain_resolved(data):
            # The agent's own shape, checked in one pass with the general path's outcome.
            assert isinstance(data, dict)
            get = data.get
            resolved = _new(cls)
            _set_resolved_id(resolved, data["id"])
            _set_resolved_at(resolved, get("resolved_at"))
            _set_resolved_opened_at(resolved, get("opened_at"))
            _set_resolved_flap_count(resolved, get("flap_count"))
            _set_resolved_extra(resolved, {})
            return resolved
        return cls._read(data, where)

    @classmethod
    def _read(cls, data: object, where: str) -> Self:
        r = _Reader(data, where)
        return cls(
            id=r.ident("id"),
            resolved_at=r.loose_str("resolved_at"),
            opened_at=r.loose_str("opened_at"),
            flap_count=r.loose_int("flap_count"),
            extra=r.extra(),
        )

    def to_data(self) -> dict[str, Any]:
        """The data object as the agent writes it."""
        optional = {"resolved_at": self.resolved_at, "opened_at": self.opened_at, "flap_count": self.flap_count}
        return _write({"id": self.id}, optional, self.extra)


@dataclass(frozen=True, slots=True, kw_only=True)
class IncidentAcknowledged:
    """``incident.acknowledged``: a technician (``by``, may be unknown) took the incident on.

    The agent always writes ``by``, null when unknown; ``omitted`` holds ``"by"`` for data
    that left it out, so that it stays out when written back.
    """

    kind: ClassVar[EventKind] = EventKind.INCIDENT_ACKNOWLEDGED

    id: str
    by: str | None = None
    at: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    omitted: frozenset[str] = frozenset()

    @classmethod
    def from_data(cls, data: object, *, where: str = "") -> Self:
        """Check and parse ``incident.acknowledged`` data; MalformedError or TooLargeError if refused."""
        r = _Reader(data, where)
        id_ = r.ident("id")
        by = r.text("by", 128, optional=True)
        return cls(id=id_, by=by, at=r.loose_str("at"), extra=r.extra(), omitted=r.omitted("by"))

    def to_data(self) -> dict[str, Any]:
        """The data object as the agent writes it."""
        return _write(_nullable({"id": self.id}, self.omitted, by=self.by), {"at": self.at}, self.extra)


@dataclass(frozen=True, slots=True, kw_only=True)
class NoteAdded:
    """``note.added``: a technician's note (``text``) on an incident; ``by`` as for acknowledgements."""

    kind: ClassVar[EventKind] = EventKind.NOTE_ADDED

    id: str
    text: str
    by: str | None = None
    at: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    omitted: frozenset[str] = frozenset()

    @classmethod
    def from_data(cls, data: object, *, where: str = "") -> Self:
        """Check and parse ``note.added`` data; MalformedError or TooLargeError if refused."""
        r = _Reader(data, where)
        id_ = r.ident("id")
        by = r.text("by", 128, optional=True)
        text = r.required_text("text", 4000)
        return cls(id=id_, text=text, by=by, at=r.loose_str("at"), extra=r.extra(), omitted=r.omitted("by"))

    def to_data(self) -> dict[str, Any]:
        """The data object as the agent writes it."""
        known = _nullable({"id": self.id}, self.omitted, by=self.by)
        known["text"] = self.text
        return _write(known, {"at": self.at}, self.extra)


_OPENED_KEYS = frozenset({"id", "key", "category", "severity", "title", "subject"})


def _plain_opened(data: object) -> bool:
    """True for ``incident.opened`` data of exactly its six required members, each valid: ``id`` an
    identifier, ``key`` (≤ 256) and ``title`` (≤ 300) strings, a known category and severity,
    ``subject`` null or a string (≤ 256). Such data parses without extras; anything else takes
    the general path."""
    if type(data) is not dict or data.keys() != _OPENED_KEYS:
        return False
    id_, key, title, subject = data["id"], data["key"], data["title"], data["subject"]
    category, severity = data["category"], data["severity"]
    return (
        type(id_) is str
        and ID_RE.fullmatch(id_) is not None
        and type(key) is str
        and len(key) <= 256
        and type(title) is str
        and len(title) <= 300
        and (subject is None or (type(subject) is str and len(subject) <= 256))
        # The type first: a JSON list or object is unhashable, and a set lookup would raise TypeError.
        and type(category) is str
        and category in CATEGORIES
        and type(severity) is str
        and severity in SEVERITIES
    )


_RESOLVED_TEXTS = frozenset({"resolved_at", "opened_at"})
_RESOLVED_KEYS = frozenset({"id", "flap_count"}) | _RESOLVED_TEXTS


def _plain_resolved(data: object) -> bool:
    """True for ``incident.resolved`` data of ``id`` (an identifier) and, each optional,
    ``resolved_at`` and ``opened_at`` (strings within MAX_STRING) and ``flap_count`` (an int,
    not a bool): such data parses without extras; anything else takes the general path."""
    if type(data) is not dict or not data.keys() <= _RESOLVED_KEYS:
        return False
    id_ = data.get("id")
    if type(id_) is not str or ID_RE.fullmatch(id_) is None:
        return False
    for key in _RESOLVED_TEXTS:
        if key in data and (type(data[key]) is not str or len(data[key]) > MAX_STRING):
            return False
    return "flap_count" not in data or type(data["flap_count"]) is int


_new = object.__new__
# IncidentOpened's six required members in the one-pass path, the optional ones left None.
_OPENED_REQUIRED = tuple(
    (slot_setter(IncidentOpened, name), name) for name in ("id", "key", "category", "severity", "title", "subject")
)
_OPENED_UNSET = tuple(
    slot_setter(IncidentOpened, name)
    for name in ("opened_at", "last_seen", "flap_count", "acknowledged", "details", "code", "params")
)
_set_opened_extra = slot_setter(IncidentOpened, "extra")
_set_resolved_id = slot_setter(IncidentResolved, "id")
_set_resolved_at = slot_setter(IncidentResolved, "resolved_at")
_set_resolved_opened_at = slot_setter(IncidentResolved, "opened_at")
_set_resolved_flap_count = slot_setter(IncidentResolved, "flap_count")
_set_resolved_extra = slot_setter(IncidentResolved, "extra")


IncidentPayload = IncidentOpened | IncidentUpdated | IncidentResolved | IncidentAcknowledged | NoteAdded


# --------------------------------------------------------------------------- devices


_DEVICE_TEXTS = frozenset({"id", "class", "model", "state", "name", "local_id"})
_NOTHING_OMITTED: frozenset[str] = frozenset()
_MODEL_OMITTED = frozenset({"model"})


def _plain_device(data: object) -> bool:
    """True for device data of text members only, each valid: ``id`` an identifier, ``class`` at
    most 32 characters, ``model`` a string or null, the others strings, all within MAX_STRING.

    Such data parses without extras, whatever the agent's version; anything else (addresses,
    an unknown member, a null state, a refusal) takes the general path.
    """
    if type(data) is not dict or not data.keys() <= _DEVICE_TEXTS:
        return False
    id_, device_class = data.get("id"), data.get("class")
    if type(id_) is not str or ID_RE.fullmatch(id_) is None or type(device_class) is not str or len(device_class) > 32:
        return False
    for key, value in data.items():
        if type(value) is not str or len(value) > MAX_STRING:
            if value is not None or key != "model":
                return False
    return True


@dataclass(frozen=True, slots=True, kw_only=True)
class DevicePayload:
    """A device as it leaves the school; the base of the three ``device.*`` payloads.

    ``id`` is the pseudonym (``d-`` and 32 hex digits) unless names may be shared;
    ``name``, ``local_id`` and ``addresses`` go along only then. The agent always writes
    ``model``, null when unknown; ``omitted`` holds ``"model"`` for data without one.
    """

    kind: ClassVar[EventKind]

    id: str
    device_class: str
    model: str | None = None
    state: str | None = None
    name: str | None = None
    local_id: str | None = None
    addresses: tuple[str, ...] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    omitted: frozenset[str] = frozenset()

    @classmethod
    def from_data(cls, data: object, *, where: str = "") -> Self:
        """Check and parse ``device.*`` data; MalformedError or TooLargeError if refused."""
        if _plain_device(data):
            # What nearly every device event is, checked in one pass with the same outcome as
            # the general path below (which also gives the refusals their messages).
            assert isinstance(data, dict)
            get = data.get
            return _device(
                cls,
                data["id"],
                data["class"],
                get("model"),
                get("state"),
                get("name"),
                get("local_id"),
                _NOTHING_OMITTED if "model" in data else _MODEL_OMITTED,
            )
        return cls._read(data, where)

    @classmethod
    def _read(cls, data: object, where: str) -> Self:
        r = _Reader(data, where)
        return cls(
            id=r.ident("id"),
            device_class=r.required_text("class", 32),
            model=r.nullable_str("model"),
            state=r.loose_str("state"),
            name=r.loose_str("name"),
            local_id=r.loose_str("local_id"),
            addresses=r.loose_strs("addresses"),
            extra=r.extra(),
            omitted=r.omitted("model"),
        )

    def to_data(self) -> dict[str, Any]:
        """The data object as the agent writes it."""
        known = _nullable({"id": self.id, "class": self.device_class}, self.omitted, model=self.model)
        optional = {
            "state": self.state,
            "name": self.name,
            "local_id": self.local_id,
            "addresses": None if self.addresses is None else list(self.addresses),
        }
        return _write(known, optional, self.extra)


_D = TypeVar("_D", bound=DevicePayload)


# The slots' own setters: a frozen dataclass's __init__ sets each field through object.__setattr__
# by name (a type lookup per field), which was half the cost of a parsed device event.
_set_id = slot_setter(DevicePayload, "id")
_set_class = slot_setter(DevicePayload, "device_class")
_set_model = slot_setter(DevicePayload, "model")
_set_state = slot_setter(DevicePayload, "state")
_set_name = slot_setter(DevicePayload, "name")
_set_local_id = slot_setter(DevicePayload, "local_id")
_set_addresses = slot_setter(DevicePayload, "addresses")
_set_extra = slot_setter(DevicePayload, "extra")
_set_omitted = slot_setter(DevicePayload, "omitted")


def _device(
    cls: type[_D],
    id_: str,
    device_class: str,
    model: str | None,
    state: str | None,
    name: str | None,
    local_id: str | None,
    omitted: frozenset[str],
) -> _D:
    """``cls(id=id_, device_class=..., omitted=omitted)`` without addresses or extras: the same
    object (equal, same type, same slots), built without the dataclass __init__."""
    device = _new(cls)
    _set_id(device, id_)
    _set_class(device, device_class)
    _set_model(device, model)
    _set_state(device, state)
    _set_name(device, name)
    _set_local_id(device, local_id)
    _set_addresses(device, None)
    _set_extra(device, {})
    _set_omitted(device, omitted)
    return device


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceSeen(DevicePayload):
    """``device.seen``: a device found for the first time (or seen again after it was lost)."""

    kind: ClassVar[EventKind] = EventKind.DEVICE_SEEN


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceChanged(DevicePayload):
    """``device.changed``: a known device's model, state or addresses changed."""

    kind: ClassVar[EventKind] = EventKind.DEVICE_CHANGED


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceLost(DevicePayload):
    """``device.lost``: a device is gone."""

    kind: ClassVar[EventKind] = EventKind.DEVICE_LOST


# --------------------------------------------------------------------------- snapshot


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthSnapshot:
    """``health.snapshot``: the agent's periodic health, as named sections kept in their order.

    Free form within the caps; only ``CHECKED_SECTIONS`` must be objects or lists when present.
    """

    kind: ClassVar[EventKind] = EventKind.HEALTH_SNAPSHOT
    CHECKED_SECTIONS: ClassVar[tuple[str, ...]] = ("host", "wlan", "cabinets", "counts", "outbox")

    sections: Mapping[str, Any] = field(default_factory=dict)

    @property
    def extra(self) -> dict[str, Any]:
        """The sections this version does not check."""
        return {k: v for k, v in self.sections.items() if k not in self.CHECKED_SECTIONS}

    @classmethod
    def from_data(cls, data: object, *, where: str = "") -> Self:
        """Check and parse ``health.snapshot`` data; MalformedError or TooLargeError if refused."""
        r = _Reader(data, where)
        for section in cls.CHECKED_SECTIONS:
            if section in r.data and not isinstance(r.data[section], (dict, list)):
                raise MalformedError(f"{where}{section} must be an object or list", reason="bad_payload")
        return cls(sections=r.data)

    def to_data(self) -> dict[str, Any]:
        """The data object as the agent writes it."""
        return dict(self.sections)


# --------------------------------------------------------------------------- dispatch

EventPayload = (
    HealthSnapshot
    | DeviceSeen
    | DeviceChanged
    | DeviceLost
    | IncidentOpened
    | IncidentUpdated
    | IncidentResolved
    | IncidentAcknowledged
    | NoteAdded
)

_INCIDENT_TYPES = (IncidentOpened, IncidentUpdated, IncidentResolved, IncidentAcknowledged, NoteAdded)
_DEVICE_TYPES = (DeviceSeen, DeviceChanged, DeviceLost)
_PARSERS: dict[str, Callable[..., EventPayload]] = {
    cls.kind.value: cls.from_data for cls in (HealthSnapshot, *_DEVICE_TYPES, *_INCIDENT_TYPES)
}

INCIDENT_KINDS: frozenset[str] = frozenset(cls.kind.value for cls in _INCIDENT_TYPES)
DEVICE_KINDS: frozenset[str] = frozenset(cls.kind.value for cls in _DEVICE_TYPES)
EVENT_KINDS: frozenset[str] = frozenset(_PARSERS)


def parse_event_data(kind: object, data: object, *, where: str = "") -> EventPayload:
    """Check and parse an event's data by its kind.

    ``kind`` is the event's ``kind`` member as decoded (anything; unknown kinds are refused
    with MalformedError, reason ``bad_payload``); ``data`` its ``data`` member.
    """
    parser = _PARSERS.get(kind) if isinstance(kind, str) else None
    if parser is None:
        raise MalformedError(f"{where}kind {str(kind)[:40]!r} is not a known event kind", reason="bad_payload")
    return parser(data, where=where)

"""One declarative TOML loader: sections are frozen dataclasses, their fields say what a key may hold.

A config file is described by a *document* dataclass whose fields are its sections; each
section is a frozen dataclass whose fields are its keys. What a key accepts follows from the
field's type annotation:

    bool                    true or false (nothing else)
    int                     an integer; never a bool, never 1.5
    float                   an integer or a float; never a bool
    str                     a string
    datetime.time           "HH:MM" or a TOML local time
    Literal["a", "b"]       one of the choices
    tuple[str, ...]         an array of strings
    X | None                X, or absent (None is the default: TOML has no null)
    a dataclass             a nested table, checked like a section
    tuple[<dataclass>, ...] an array of tables ([[section.key]]), each entry checked
    timedelta               a duration (see below)

Durations have key names without a unit (``interval``, ``timeout``) and take either a string
as ``base.cli.parse_duration`` reads it ('30s', '5m', '1h30m') or a number of seconds. A field
declared with ``duration()`` holds seconds as ``float`` (or ``int``: then whole seconds only);
a ``timedelta`` field holds a timedelta. Durations must be positive unless ``zero_ok``.

Field metadata (``setting``/``duration``) adds bounds (``low``/``high``, inclusive), a
``coerce`` hook run on the raw value first (e.g. a host string into a table), a ``check``
(raises ValueError with the problem), a ``convert`` (returns the value to store) and ``old``:
a former key name still accepted with a deprecation warning. A dataclass's ``__post_init__``
may raise ``InvalidValueError(problem, key)`` for checks that span several keys.

Every refusal is one ``ConfigError`` line naming the file, the section and the key::

    config /etc/schulwart/agent.toml: [wlan] window must be an integer (got 'ten')
    config agent.toml: [cabinets.cabinet #2] meter.timeout must be seconds or a duration like '5m' (got true)
    config agent.toml: unknown key(s) in [wlan]: intervall (known: interval, window, ...)
"""

from __future__ import annotations

import dataclasses
import logging
import types
from collections.abc import Callable, Mapping
from datetime import time, timedelta
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from base.cmdline import parse_duration, read_toml
from base.errors import ConfigError

__all__ = [
    "check_http_url",
    "check_timezone",
    "InvalidValueError",
    "describe",
    "duration",
    "load_document",
    "parse_document",
    "parse_section",
    "read_toml",
    "setting",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

_MISSING: Any = dataclasses.MISSING
_DURATION_HINT = "must be seconds or a duration like '5m'"


class InvalidValueError(ValueError):
    """A value a ``check``/``__post_init__`` refuses; ``key`` names it when the section is the subject.

    ``problem`` reads after the key, e.g. "must look like 15:00-07:00 (got 'late')".
    """

    def __init__(self, problem: str, key: str | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.key = key


def setting(
    default: Any = _MISSING,
    *,
    default_factory: Callable[[], Any] | None = None,
    low: float | None = None,
    high: float | None = None,
    coerce: Callable[[Any], Any] | None = None,
    check: Callable[[Any], None] | None = None,
    convert: Callable[[Any], Any] | None = None,
    old: str | None = None,
    required: bool = False,
) -> Any:
    """A dataclass field with loader metadata (see the module docstring).

    ``required`` makes the key mandatory in the file while the Python default stays usable
    in code; a field without any default is always required.
    """
    meta = {
        "low": low, "high": high, "coerce": coerce, "check": check, "convert": convert,
        "old": old, "required": required,
    }
    return _field(default, default_factory, meta)


def duration(
    default: Any = _MISSING,
    *,
    low: float | None = None,
    high: float | None = None,
    zero_ok: bool = False,
    old: str | None = None,
) -> Any:
    """A duration field: '30s', '5m', '1h30m' or a number of seconds; bounds are in seconds.

    The field's type decides what is stored: float seconds, int (whole) seconds or a timedelta.
    """
    return _field(default, None, {"low": low, "high": high, "old": old, "duration": True, "zero_ok": zero_ok})


def _field(default: Any, default_factory: Callable[[], Any] | None, meta: dict[str, Any]) -> Any:
    if default_factory is not None:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def describe(value: Any) -> str:
    """A raw value for a message, short: true, 'text', 5, a table, an array."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# -- validators several sections share --------------------------------------------------------


def check_timezone(name: str) -> None:
    """An IANA time zone name ('Europe/Berlin'); ValueError if the system does not know it."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidValueError(f"{name!r} is not a known time zone (e.g. Europe/Berlin)") from None


def check_http_url(url: str) -> None:
    """An http:// or https:// URL; ValueError otherwise."""
    if not url.startswith(("http://", "https://")):
        raise InvalidValueError(f"must start with http:// or https:// (got {url!r})")


# -- loading documents -----------------------------------------------------------------------


def load_document(cls: type[T], path: Path | None) -> T:
    """Read ``path`` (None: defaults) into the document dataclass ``cls``; ConfigError on any refusal."""
    if path is None:
        return cls()
    return parse_document(cls, read_toml(path), source=str(path))


def parse_document(cls: type[T], doc: Mapping[str, Any], *, source: str | None = None) -> T:
    """A parsed TOML document into ``cls``, whose fields are the sections (each a dataclass).

    ``source`` names the file in messages. Unknown sections, unknown keys, wrong types and
    values outside their bounds raise ConfigError.
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(doc) - set(fields))
    if unknown:
        raise ConfigError(f"{_prefix(source)}unknown section(s): {', '.join(unknown)} (known: {', '.join(fields)})")
    hints = _hints(cls)
    values = {}
    for name, raw in doc.items():
        values[name] = parse_section(hints[name], raw, section=name, source=source)
    return _construct(cls, values, _Where(source, "", ""))


def parse_section(cls: type[T], raw: Any, *, section: str, source: str | None = None) -> T:
    """One section (a TOML table) into the dataclass ``cls``; ConfigError naming ``[section]`` on refusal."""
    where = _Where(source, section, "")
    if not isinstance(raw, dict):
        raise where.error(f"must be a table (got {describe(raw)})")
    result: T = _table(cls, raw, where)
    return result


# -- the loader ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class _Where:
    """Where a value sits: file, section ('wlan', 'cabinets.cabinet #2') and dotted key prefix."""

    source: str | None
    section: str
    key: str

    def child(self, name: str) -> _Where:
        return _Where(self.source, self.section, f"{self.key}{name}")

    def error(self, problem: str, key: str | None = None) -> ConfigError:
        path = (self.key + (key or "")).rstrip(".")
        head = f"[{self.section}] " if self.section else ""
        return ConfigError(f"{_prefix(self.source)}{head}{path + ' ' if path else ''}{problem}")


def _prefix(source: str | None) -> str:
    return f"config {source}: " if source else "config: "


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = get_type_hints(cls)
    return hints


def _table(cls: type[T], raw: Mapping[str, Any], where: _Where) -> T:
    fields = [f for f in dataclasses.fields(cls) if f.init]  # type: ignore[arg-type]
    by_name = {f.name: f for f in fields}
    olds = {f.metadata["old"]: f.name for f in fields if f.metadata.get("old")}
    unknown = sorted(k for k in raw if k not in by_name and k not in olds)
    if unknown:
        shown = ", ".join(where.key + k for k in unknown)
        section = f"[{where.section}]" if where.section else "the file"
        raise ConfigError(
            f"{_prefix(where.source)}unknown key(s) in {section}: {shown} (known: {', '.join(by_name)})"
        )
    hints = _hints(cls)
    values: dict[str, Any] = {}
    for old, new in olds.items():
        if old not in raw:
            continue
        if new in raw:
            problem = f"and {where.key}{old} are the same key (give only {new}; {old} is its old spelling)"
            raise where.error(problem, new)
        log.warning(
            "%s[%s] %s%s is deprecated: write %s%s (the old spelling is accepted until the next release)",
            _prefix(where.source), where.section, where.key, old, where.key, new,
        )
    for f in fields:
        key = f.name if f.name in raw else next((o for o, n in olds.items() if n == f.name and o in raw), None)
        if key is None:
            no_default = f.default is _MISSING and f.default_factory is _MISSING
            if no_default or f.metadata.get("required"):
                raise where.error("is missing (required)", f.name)
            continue
        values[f.name] = _value(hints[f.name], raw[key], f.metadata, where.child(key))
    return _construct(cls, values, where)


def _construct(cls: type[T], values: dict[str, Any], where: _Where) -> T:
    try:
        return cls(**values)
    except InvalidValueError as exc:
        raise where.error(exc.problem, exc.key) from None
    except ValueError as exc:
        raise where.error(str(exc)) from None


def _value(tp: Any, raw: Any, meta: Mapping[str, Any], where: _Where) -> Any:
    coerce = meta.get("coerce")
    try:
        value = _typed(tp, coerce(raw) if coerce is not None else raw, meta, where)
    except ValueError as exc:  # InvalidValueError, or a coerce hook's refusal: the problem reads after the key
        raise where.error(getattr(exc, "problem", str(exc))) from None
    check, convert = meta.get("check"), meta.get("convert")
    try:
        if check is not None:
            check(value)
        if convert is not None:
            value = convert(value)
    except ValueError as exc:
        raise where.error(getattr(exc, "problem", str(exc))) from None
    except ConfigError as exc:  # a shared parser (parse_listen, ...) that words its own refusal
        raise where.error(f"is refused: {exc.message}") from None
    return value


def _optional_arg(tp: Any) -> Any:
    if get_origin(tp) in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"config fields may only be X | None, not {tp}")
        return args[0]
    return tp


def _typed(tp: Any, raw: Any, meta: Mapping[str, Any], where: _Where) -> Any:
    tp = _optional_arg(tp)
    origin = get_origin(tp)
    if meta.get("duration") or tp is timedelta:
        return _duration(tp, raw, meta)
    if origin is Literal:
        choices = get_args(tp)
        if isinstance(raw, bool) or raw not in choices:
            raise InvalidValueError(f"must be one of {', '.join(map(str, choices))} (got {describe(raw)})")
        return raw
    if origin is tuple:
        elem = get_args(tp)[0]
        if dataclasses.is_dataclass(elem):
            return _array_of_tables(elem, raw, where)  # type: ignore[arg-type]
        if not isinstance(raw, list):
            raise InvalidValueError(f"must be an array of strings (got {describe(raw)})")
        for index, item in enumerate(raw, 1):
            if not isinstance(item, str):
                raise InvalidValueError(f"must be an array of strings (item {index} is {describe(item)})")
        return tuple(raw)
    if dataclasses.is_dataclass(tp):
        if not isinstance(raw, dict):
            raise InvalidValueError(f"must be a table (got {describe(raw)})")
        return _table(tp, raw, _Where(where.source, where.section, where.key + "."))  # type: ignore[arg-type]
    if tp is bool:
        if not isinstance(raw, bool):
            raise InvalidValueError(f"must be true or false (got {describe(raw)})")
        return raw
    if tp is int:
        if type(raw) is not int:
            raise InvalidValueError(f"must be an integer (got {describe(raw)})")
        return _bounded(raw, meta)
    if tp is float:
        if type(raw) not in (int, float):
            raise InvalidValueError(f"must be a number (got {describe(raw)})")
        return float(_bounded(raw, meta))
    if tp is str:
        if not isinstance(raw, str):
            raise InvalidValueError(f"must be a string (got {describe(raw)})")
        return raw
    if tp is time:
        return _clock_time(raw)
    raise TypeError(f"config fields of type {tp} are not supported")


def _bounded(number: float, meta: Mapping[str, Any]) -> float:
    low, high = meta.get("low"), meta.get("high")
    if (low is not None and number < low) or (high is not None and number > high):
        low_text = "-∞" if low is None else f"{low:g}"
        high_text = "∞" if high is None else f"{high:g}"
        raise InvalidValueError(f"= {number:g} is outside {low_text}..{high_text}")
    return number


def _duration(tp: Any, raw: Any, meta: Mapping[str, Any]) -> Any:
    if isinstance(raw, str):
        try:
            seconds = parse_duration(raw).total_seconds()
        except ConfigError:
            raise InvalidValueError(f"{_DURATION_HINT}: {raw!r} is not a duration (e.g. 30s, 15m, 1h30m, 7d)") from None
    elif type(raw) in (int, float):
        seconds = float(raw)
    else:
        raise InvalidValueError(f"{_DURATION_HINT} (got {describe(raw)})")
    if seconds < 0 or (seconds == 0 and not meta.get("zero_ok")):
        raise InvalidValueError(f"must be {'zero or ' if meta.get('zero_ok') else ''}positive (got {describe(raw)})")
    _bounded(seconds, meta)
    if tp is timedelta:
        return timedelta(seconds=seconds)
    if tp is int:
        if seconds != int(seconds):
            raise InvalidValueError(f"must be whole seconds (got {describe(raw)})")
        return int(seconds)
    return seconds


def _clock_time(raw: Any) -> time:
    if isinstance(raw, time):
        return raw.replace(second=0, microsecond=0)
    if isinstance(raw, str):
        hh, sep, mm = raw.partition(":")
        ascii_digits = (hh + mm).isascii() and hh.isdigit() and mm.isdigit()
        if sep and len(mm) == 2 and ascii_digits and int(hh) < 24 and int(mm) < 60:
            return time(int(hh), int(mm))
    raise InvalidValueError(f"must be HH:MM (got {describe(raw)})")


def _array_of_tables(cls: type, raw: Any, where: _Where) -> tuple[Any, ...]:
    key = where.key
    if not isinstance(raw, list):
        raise InvalidValueError(f"must be an array of tables ([[{where.section}.{key}]]) (got {describe(raw)})")
    entries: list[Any] = []
    for index, entry in enumerate(raw, 1):
        at = _Where(where.source, f"{where.section}.{key} #{index}", "")
        if not isinstance(entry, dict):
            raise at.error(f"must be a table (got {describe(entry)})")
        entries.append(_table(cls, entry, at))
    return tuple(entries)

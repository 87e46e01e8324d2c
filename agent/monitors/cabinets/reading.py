"""One meter as the config names it (``MeterSpec``) and what reading it gives (``MeterReading``, ``MeterError``).

Apart from the HTTP clients in ``meters``: the config and the cabinet rules use these types, and a
school without cabinets never loads the clients.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args

from base.config import InvalidValueError, check_http_url, duration, setting

DEFAULT_USER = "admin"  # the only user of Shelly Gen2+ and of Tasmota's web login; Gen1's default

MeterKind = Literal["shelly-gen2", "shelly-gen1", "tasmota", "http-json"]
EnergyUnit = Literal["wh", "kwh", "wmin", "mwh"]
KINDS: tuple[str, ...] = get_args(MeterKind)
_NO_ANSWER_REASONS = frozenset({"timeout", "unreachable"})


class MeterError(Exception):
    """A meter that could not be read or answered nonsense; ``reason`` is a short counter name.

    Reasons: ``timeout``, ``unreachable``, ``http-<status>``, ``redirect``, ``too-large``,
    ``not-json`` (from the HTTP reader); ``auth-refused`` (wrong or missing credentials, whatever
    the status the device answers with); ``unsupported-model`` and ``wrong-kind`` (the device
    answered, but it measures no power on that channel, or it is another kind than configured:
    the message names the model and the setting that works); ``missing-field``, ``bad-value``,
    ``bad-shape``, ``negative-power``, ``implausible`` (a reply that is not what the kind sends).
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message

    @property
    def answered(self) -> bool:
        """False when nothing usable came back from the device (no connection, timeout, HTTP 5xx);
        True when it answered and the answer cannot be used (login, model, kind, reply shape)."""
        return not (self.reason in _NO_ANSWER_REASONS or self.reason.startswith("http-5"))


@dataclass(frozen=True, slots=True)
class MeterReading:
    """One reading, in W, Wh, V and °C; None where the device does not say."""

    power_w: float
    energy_wh: float | None = None
    switch_on: bool | None = None
    temperature_c: float | None = None
    voltage_v: float | None = None
    errors: tuple[str, ...] = ()


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _check_username(value: str | None) -> None:
    if value is not None and ":" in value:
        raise InvalidValueError("cannot contain ':' (HTTP Basic and Digest separate user and password with it)")


@dataclass(frozen=True, slots=True)
class MeterSpec:
    """How to reach and read one meter: a cabinet's ``meter`` table.

    ``timeout`` is in seconds; ``energy_unit`` is what ``energy_path`` reports (any case in the file).
    ``channel`` is the 0-based relay/meter index (Shelly ``switch:N``/``em1:N``, Gen1
    ``meters[N]``, Tasmota ``POWER<N+1>`` and the N-th value of array-valued ENERGY fields).
    ``username`` defaults to ``admin`` when only a password is given.
    The path keys are dotted JSON paths for ``http-json`` meters ('data.0.power', list indices allowed).
    """

    kind: MeterKind = "shelly-gen2"
    url: str = setting("", required=True, check=check_http_url)
    channel: int = setting(0, low=0)
    username: str | None = setting(None, check=_check_username)
    password: str | None = None
    timeout: float = duration(5.0, old="timeout_s")
    power_path: str = "power"
    energy_path: str | None = None
    energy_unit: EnergyUnit = setting("wh", coerce=_lower)
    switch_path: str | None = None
    temperature_path: str | None = None

    @property
    def user(self) -> str | None:
        """The user name to log in with: the configured one, ``admin`` with only a password, else None."""
        if self.username:
            return self.username
        return DEFAULT_USER if self.password else None

"""What reading a meter gives (``MeterReading``) or why it could not be read (``MeterError``).

Apart from the HTTP clients in ``meters``: the cabinet rules use these types without loading the
clients. How a meter is configured (``MeterSpec``) is config, in ``base.agentconfig.cabinets``.
"""

from __future__ import annotations

from dataclasses import dataclass

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

"""The cabinet rules: one cabinet's configuration and the verdicts over one meter reading.

Rules (evaluated with the time passed in, in the cabinet's time zone): no power or meter
unreachable during the window; a meter that answers but cannot be read (wrong login, a model
without a meter on that channel, another kind than configured: any time, since it is a setup
problem); switched off during the window; still drawing charging power after the window ended;
over-temperature (any time).

Every signal's subject is the cabinet id (the same id its snapshot entry has); the cabinet's name
is in the title and in ``details["name"]`` for the technician on site, and is replaced by the
pseudonym in what leaves the school.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from agent.monitors.cabinets.reading import MeterError, MeterReading
from agent.monitors.interface import Severity, Signal
from base.agentconfig.cabinets import CabinetConfig


@dataclass(slots=True)
class CabinetState:
    """What the rules remember between readings of one cabinet."""

    still_charging: bool = False
    errors: dict[str, int] = field(default_factory=dict)
    last_reading: MeterReading | None = None
    last_error: str | None = None


# Details that the title shows as well, and so may go along as its params.
_TITLE_PARAMS = frozenset({"reason", "power_w", "temperature_c"})


def evaluate(
    cab: CabinetConfig,
    reading: MeterReading | None,
    error: MeterError | None,
    now: datetime,
    tz: ZoneInfo,
    state: CabinetState,
) -> list[Signal]:
    """The verdicts of all cabinet rules for one reading (or one failed read) at ``now``."""
    local = now.astimezone(tz)
    window = cab.window.current(local)
    label = cab.name + (f" ({cab.room})" if cab.room else "")
    signals: list[Signal] = []

    def signal(kind: str, bad: bool, severity: Severity, title: str, **details: Any) -> None:
        signals.append(
            Signal(
                key=f"cabinet-{kind}:{cab.id}",
                bad=bad,
                category="cabinet",
                severity=severity,
                title=title,
                subject=cab.id,
                at=now,
                details={"cabinet": cab.id, "name": cab.name, "in_window": window is not None, **details},
                code="cabinet." + kind.replace("-", "_"),
                params={"cabinet": label, **{k: v for k, v in details.items() if k in _TITLE_PARAMS}},
            )
        )

    answered = error is not None and error.answered
    unreachable = reading is None and window is not None and not answered
    reason = error.reason if error else None
    signal(
        "meter-unreachable", unreachable, "warning",
        f"Cabinet {label}: power meter unreachable during the charging window ({reason})"
        if unreachable else f"Cabinet {label}: power meter answers",
        reason=reason,
    )
    # A device that answered is never "unreachable": it says why it cannot be read instead.
    signal(
        "meter-unreadable", answered, "warning",
        f"Cabinet {label}: power meter answers but cannot be read ({reason}: {error.message})"
        if answered and error is not None else f"Cabinet {label}: power meter readable",
        reason=reason,
    )
    if reading is None:
        return signals  # no verdict on power, switch or temperature without a reading

    switched_off = window is not None and reading.switch_on is False
    signal(
        "switched-off", switched_off, "critical",
        f"Cabinet {label} switched off during its charging window" if switched_off
        else f"Cabinet {label} switched on",
        switch_on=reading.switch_on,
    )
    no_power = window is not None and not switched_off and reading.power_w < cab.no_power_below_w
    signal(
        "no-power", no_power, "critical",
        f"Cabinet {label} has no power during its charging window ({reading.power_w:.1f} W)" if no_power
        else f"Cabinet {label} has power",
        power_w=round(reading.power_w, 1),
    )
    signals.append(_still_charging(cab, reading, local, window is not None, state, now, label))
    temp = reading.temperature_c
    hot = (temp is not None and temp > cab.max_temperature_c) or any(
        e in ("overtemp", "overtemperature") for e in reading.errors
    )
    signal(
        "over-temperature", hot, "critical",
        f"Cabinet {label} over temperature ({temp if temp is not None else '?'} °C)" if hot
        else f"Cabinet {label} temperature normal",
        temperature_c=temp, errors=list(reading.errors),
    )
    return signals


def _still_charging(
    cab: CabinetConfig,
    reading: MeterReading,
    local: datetime,
    in_window: bool,
    state: CabinetState,
    now: datetime,
    label: str,
) -> Signal:
    """Bad when power is still above the charging level after the window ended; stays bad until it drops."""
    drawing = reading.power_w > cab.charging_above_w
    if in_window:
        state.still_charging = False
    else:
        ended = cab.window.last_end(local)
        just_ended = ended is not None and local - ended <= cab.still_charging_check
        state.still_charging = drawing and (just_ended or state.still_charging)
    bad = state.still_charging
    return Signal(
        key=f"cabinet-still-charging:{cab.id}",
        bad=bad,
        category="cabinet",
        severity="warning",
        title=f"Cabinet {label} still drawing {reading.power_w:.0f} W after its charging window"
        if bad else f"Cabinet {label} not charging outside its window",
        subject=cab.id,
        at=now,
        details={
            "cabinet": cab.id, "name": cab.name, "power_w": round(reading.power_w, 1),
            "threshold_w": cab.charging_above_w,
        },
        code="cabinet.still_charging",
        params={"cabinet": label, "power_w": round(reading.power_w)},
    )



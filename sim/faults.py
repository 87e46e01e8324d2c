"""Faults the simulated school can suffer, switched at start (--faults) or at run time (POST /faults)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

# name: (takes an index, what it does)
FAULTS: dict[str, tuple[bool, str]] = {
    "cabinet-no-power": (True, "the cabinet's meter reads 0 W with its relay on (breaker behind the plug)"),
    "cabinet-switched-off": (True, "the cabinet's plug relay is off (someone switched it off)"),
    "cabinet-overtemp": (True, "the meter reports 85 °C and an overtemp error"),
    "cabinet-still-charging": (True, "the cabinet keeps drawing full charging power"),
    "meter-down": (True, "the cabinet's meter does not answer HTTP"),
    "meter-nonsense": (True, "the cabinet's meter answers nonsense (strings, NaN, negative power)"),
    "ap-down": (True, "the AP stops answering probes and the controller reports it disconnected"),
    "ap-overloaded": (True, "the controller reports 60 clients and 30 % satisfaction for the AP"),
    "receiver-gone": (True, "the AirPlay receiver says goodbye on mDNS and stops listening"),
    "receiver-unplugged": (True, "the AirPlay receiver loses power: it stops listening and says no goodbye"),
    "printer-gone": (True, "the printer says goodbye on mDNS and stops listening"),
    "mac-gone": (True, "a Mac announcing AirPlay goes home: goodbye on mDNS, port closed (never 'missing')"),
    "controller-down": (False, "the WLAN controller answers 503"),
    "controller-sessions-expire": (False, "one-shot: the controller forgets every login session (a restart)"),
    "gateway-down": (False, "the gateway stops answering probes"),
    "dns-down": (False, "the DNS resolver stops answering probes"),
    "flood": (False, "one-shot: a flood of hostile mDNS announcements (count, default 5000)"),
}

_FAULT_RE = re.compile(r"^([a-z-]+)(?::(\d+))?$")

Listener = Callable[[str, bool], None]


class FaultError(ValueError):
    """A fault name the simulator does not know."""


def parse_fault(text: str) -> tuple[str, int | None]:
    """'cabinet-no-power:2' → ('cabinet-no-power', 2); FaultError on unknown names or missing index."""
    match = _FAULT_RE.match(text.strip())
    if not match or match.group(1) not in FAULTS:
        raise FaultError(f"unknown fault {text!r} (known: {', '.join(sorted(FAULTS))})")
    name, index = match.group(1), match.group(2)
    takes_index = FAULTS[name][0]
    if takes_index and index is None:
        raise FaultError(f"fault {name} needs an index, e.g. {name}:1")
    if not takes_index and index is not None:
        raise FaultError(f"fault {name} takes no index")
    return name, int(index) if index is not None else None


class FaultBoard:
    """The set of active faults; listeners hear every switch."""

    def __init__(self, initial: Iterable[str] = ()) -> None:
        self._active: set[str] = set()
        self._listeners: list[Listener] = []
        for fault in initial:
            parse_fault(fault)
            self._active.add(fault.strip())

    def subscribe(self, listener: Listener) -> None:
        """Call ``listener(fault, active)`` on every change."""
        self._listeners.append(listener)

    def set(self, fault: str, active: bool) -> bool:
        """Switch a fault; returns whether anything changed."""
        parse_fault(fault)
        fault = fault.strip()
        if (fault in self._active) == active:
            return False
        if active:
            self._active.add(fault)
        else:
            self._active.discard(fault)
        for listener in self._listeners:
            listener(fault, active)
        return True

    def active(self, name: str, index: int | None = None) -> bool:
        """Is this fault (for this index) on?"""
        return (name if index is None else f"{name}:{index}") in self._active

    def list(self) -> list[str]:
        """Active faults, sorted."""
        return sorted(self._active)

"""The seam between what the agent watches and what it concludes.

A monitor runs on a schedule (``interval_s``); each ``collect`` returns a
``MonitorReport``: a snapshot section for the periodic health snapshot, the signals the
incident engine turns into incidents (with hysteresis), and, for discovery, the device
changes the inventory records. Monitors never write to the store themselves and never
read the wall clock: the runner passes ``now`` in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

# Category and Severity are the wire's incident enums; monitors import them from here.
from protocol.events import Category, Severity

__all__ = ["Category", "Device", "DeviceChange", "Monitor", "MonitorReport", "Severity", "Signal"]


@dataclass(frozen=True, slots=True)
class Signal:
    """A rule's verdict on one incident key at one moment: the problem is present (bad) or not.

    The engine opens an incident after ``open_after`` bad signals in a row and resolves it
    after ``resolve_after`` good ones (None: the engine's configured defaults). ``code`` and
    ``params`` name the title in ``protocol.messages``' catalogue, so that each reader renders
    it in its own language; ``title`` is the English text for readers without the code.
    ``params`` must say nothing the title does not (it leaves the school as it is).
    """

    key: str
    bad: bool
    category: Category
    severity: Severity
    title: str
    subject: str | None
    at: datetime
    details: Mapping[str, Any] = field(default_factory=dict)
    open_after: int | None = None
    resolve_after: int | None = None
    code: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Device:
    """One device in the inventory, as the agent knows it locally (real names included)."""

    id: str
    device_class: str
    name: str
    model: str | None
    addresses: tuple[str, ...]
    services: tuple[str, ...]
    first_seen: datetime
    last_seen: datetime
    state: str = "present"
    properties: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DeviceChange:
    """A change to the inventory: a device seen for the first time, changed, or lost."""

    change: Literal["seen", "changed", "lost"]
    device: Device


@dataclass(frozen=True, slots=True)
class MonitorReport:
    """What one collect round of one monitor found."""

    section: str
    snapshot: Mapping[str, Any]
    signals: Sequence[Signal] = ()
    device_changes: Sequence[DeviceChange] = ()


class Monitor(Protocol):
    """Something the agent runs on a schedule that turns the world into observations."""

    name: str
    interval_s: float

    async def start(self) -> None:
        """Open sockets, start browsers; called once before the first collect."""

    async def collect(self, now: datetime) -> MonitorReport:
        """Observe once; must not block the event loop (slow work goes to a thread)."""

    async def stop(self) -> None:
        """Release everything start() took."""

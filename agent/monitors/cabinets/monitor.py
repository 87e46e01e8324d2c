"""The cabinet monitor: polls every cabinet's meter concurrently and applies the cabinet rules."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp

from agent.monitors.cabinets.meters import Meter
from agent.monitors.cabinets.reading import MeterError, MeterReading
from agent.monitors.cabinets.rules import CabinetState, evaluate
from agent.monitors.interface import MonitorReport, Signal
from base.agentconfig.cabinets import CabinetConfig, CabinetsConfig

log = logging.getLogger(__name__)


class CabinetMonitor:
    """Polls every cabinet's meter (concurrently) and applies the cabinet rules."""

    name = "cabinets"

    def __init__(self, config: CabinetsConfig, *, school: str = "school") -> None:
        self.interval_s = config.interval
        self._cabinets = config.cabinets
        self._school = school
        self._tz = ZoneInfo(config.timezone)
        self._meters = {cab.id: Meter(cab.meter) for cab in self._cabinets}
        self._state = {cab.id: CabinetState() for cab in self._cabinets}
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Open the HTTP session the meters share."""
        # One connection per meter at a time: Shelly Gen2 allows only a handful of RPC channels.
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit_per_host=1))

    async def stop(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _read(self, cab: CabinetConfig) -> tuple[MeterReading | None, MeterError | None]:
        assert self._session is not None
        try:
            return await self._meters[cab.id].read(self._session), None
        except MeterError as exc:
            return None, exc

    async def collect(self, now: datetime) -> MonitorReport:
        """Read all meters, apply the rules, report."""
        if self._session is None:
            await self.start()
        results = await asyncio.gather(*(self._read(cab) for cab in self._cabinets))
        signals: list[Signal] = []
        snapshot: dict[str, Any] = {}
        for cab, (reading, error) in zip(self._cabinets, results, strict=True):
            state = self._state[cab.id]
            if error is not None:
                state.errors[error.reason] = state.errors.get(error.reason, 0) + 1
                if state.last_error != error.reason:
                    log.warning(
                        "cabinet meter error school=%s cabinet=%s reason=%s detail=%s",
                        self._school, cab.name, error.reason, error.message,
                    )
                state.last_error = error.reason
            else:
                if state.last_error is not None:
                    log.info("cabinet meter answers again school=%s cabinet=%s", self._school, cab.name)
                state.last_error = None
                state.last_reading = reading
            signals.extend(evaluate(cab, reading, error, now, self._tz, state))
            local = now.astimezone(self._tz)
            snapshot[cab.id] = {
                "name": cab.name,
                "room": cab.room,
                "slots": cab.slots,
                "meter": cab.meter.kind,
                "in_window": cab.window.current(local) is not None,
                "ok": reading is not None,
                "power_w": None if reading is None else round(reading.power_w, 1),
                "energy_wh": None if reading is None or reading.energy_wh is None else round(reading.energy_wh, 1),
                "switch_on": None if reading is None else reading.switch_on,
                "temperature_c": None if reading is None else reading.temperature_c,
                "error": None if error is None else error.reason,
                "errors": dict(state.errors),
            }
        return MonitorReport(section="cabinets", snapshot={"cabinets": snapshot}, signals=signals)

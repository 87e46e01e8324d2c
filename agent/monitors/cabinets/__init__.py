"""Charging cabinets: the charging window, the rules, the ``[cabinets]`` config, meters and the monitor."""

from agent.monitors.cabinets.meters import Meter, MeterError, MeterReading
from agent.monitors.cabinets.monitor import CabinetMonitor
from agent.monitors.cabinets.rules import CabinetState, evaluate
from base.agentconfig.cabinets import CabinetConfig, CabinetEntry, CabinetsConfig, MeterSpec, parse_cabinets
from base.agentconfig.window import ChargingWindow, parse_days, parse_window

__all__ = [
    "CabinetConfig",
    "CabinetEntry",
    "CabinetMonitor",
    "CabinetState",
    "CabinetsConfig",
    "ChargingWindow",
    "Meter",
    "MeterError",
    "MeterReading",
    "MeterSpec",
    "evaluate",
    "parse_cabinets",
    "parse_days",
    "parse_window",
]

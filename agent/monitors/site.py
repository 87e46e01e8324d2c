"""Builds the site monitors (mDNS discovery, WLAN, charging cabinets) from the agent config.

The agent's runner calls ``build_monitors`` with the raw TOML mapping; this module owns its
``[discovery]``, ``[wlan]`` and ``[cabinets]`` sections (every key has a working default, see
docs/site-monitoring.md). Bad values raise ConfigError, which the CLI shows as one line.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agent.monitors.base import Monitor
from agent.monitors.cabinets import CabinetMonitor, parse_cabinets
from agent.monitors.discovery.config import parse_discovery
from agent.monitors.discovery.monitor import DiscoveryMonitor
from agent.monitors.wlan import WlanMonitor, parse_wlan


def school_label(config: Mapping[str, Any], data_dir: Path) -> str:
    """The school id for log lines: from the config if it names one, else the data dir's name."""
    for section in ("agent", "school"):
        table = config.get(section)
        if isinstance(table, Mapping):
            for key in ("school_id", "id"):
                if isinstance(table.get(key), str):
                    return str(table[key])
    if isinstance(config.get("school_id"), str):
        return str(config["school_id"])
    return data_dir.name or "school"


def build_monitors(config: Mapping[str, Any], data_dir: Path) -> list[Monitor]:
    """Monitors for the ``[discovery]``, ``[wlan]`` and ``[cabinets]`` sections of the config."""
    school = school_label(config, data_dir)
    monitors: list[Monitor] = []
    discovery = parse_discovery(config)
    if discovery.enabled:
        monitors.append(DiscoveryMonitor(discovery, school=school))
    wlan = parse_wlan(config)
    if wlan.targets or wlan.controller is not None:
        monitors.append(WlanMonitor(wlan, school=school))
    cabinets = parse_cabinets(config)
    if cabinets.cabinets:
        monitors.append(CabinetMonitor(cabinets, school=school))
    return monitors

"""Builds the site monitors (mDNS discovery, WLAN, charging cabinets) from the agent config.

The ``[discovery]``, ``[wlan]`` and ``[cabinets]`` sections arrive typed and checked (see
``agent.config`` and docs/site-monitoring.md); a section that configures nothing adds no monitor.
"""

from __future__ import annotations

from pathlib import Path

from agent.config import AgentConfig
from agent.monitors.interface import Monitor
from base.clock import Clock, SystemClock


def school_label(school: str | None, data_dir: Path) -> str:
    """The school id for log lines: the enrolled school's id if known, else the data dir's name."""
    return school or data_dir.name or "school"


def build_monitors(
    config: AgentConfig, data_dir: Path, *, school: str | None = None, clock: Clock | None = None
) -> list[Monitor]:
    """Monitors for the site sections: discovery unless disabled, WLAN and cabinets when they have targets.

    Each monitor's module is imported only when its section configures something: a school
    without cabinets never loads the meter clients, one without mDNS never loads zeroconf.
    """
    label = school_label(school, data_dir)
    monitors: list[Monitor] = []
    if config.discovery.enabled:
        from agent.monitors.discovery.monitor import DiscoveryMonitor

        monitors.append(DiscoveryMonitor(config.discovery, school=label, clock=(clock or SystemClock()).now))
    if config.wlan.targets or config.wlan.controller is not None:
        from agent.monitors.wlan.monitor import WlanMonitor

        monitors.append(WlanMonitor(config.wlan, school=label))
    if config.cabinets.cabinet:
        from agent.monitors.cabinets.monitor import CabinetMonitor

        monitors.append(CabinetMonitor(config.cabinets, school=label))
    return monitors

"""WLAN monitoring: the ``[wlan]`` config, active probes, the UniFi controller adapter and the monitor."""

from agent.monitors.wlan.config import ControllerConfig, ProbeTarget, TargetTable, WlanConfig, parse_wlan
from agent.monitors.wlan.monitor import WlanMonitor

__all__ = ["ControllerConfig", "ProbeTarget", "TargetTable", "WlanConfig", "WlanMonitor", "parse_wlan"]

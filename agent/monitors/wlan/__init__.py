"""WLAN monitoring: the ``[wlan]`` config, active probes, the UniFi controller adapter and the monitor."""

from agent.monitors.wlan.monitor import WlanMonitor
from base.agentconfig.wlan import ControllerConfig, ProbeTarget, TargetTable, WlanConfig, parse_wlan

__all__ = ["ControllerConfig", "ProbeTarget", "TargetTable", "WlanConfig", "WlanMonitor", "parse_wlan"]

"""mDNS discovery: the class table, the hardened browser, the device tracker and its presence rules."""

from agent.monitors.discovery.classes import CLASS_TABLE, DEVICE_CLASSES, ClassRule, browse_types, match_rule
from agent.monitors.discovery.config import DiscoveryConfig, parse_discovery
from agent.monitors.discovery.monitor import DiscoveryMonitor
from agent.monitors.discovery.observation import Observation, identify
from agent.monitors.discovery.tracker import DeviceTracker

__all__ = [
    "CLASS_TABLE",
    "DEVICE_CLASSES",
    "ClassRule",
    "DiscoveryConfig",
    "DiscoveryMonitor",
    "DeviceTracker",
    "Observation",
    "browse_types",
    "identify",
    "match_rule",
    "parse_discovery",
]

"""mDNS discovery: the class table, the hardened browser, the inventory and its presence rules."""

from agent.discovery.classes import CLASS_TABLE, DEVICE_CLASSES, ClassRule, browse_types, match_rule
from agent.discovery.config import DiscoveryConfig, parse_discovery
from agent.discovery.inventory import Inventory
from agent.discovery.monitor import DiscoveryMonitor
from agent.discovery.observation import Observation, identify

__all__ = [
    "CLASS_TABLE",
    "DEVICE_CLASSES",
    "ClassRule",
    "DiscoveryConfig",
    "DiscoveryMonitor",
    "Inventory",
    "Observation",
    "browse_types",
    "identify",
    "match_rule",
    "parse_discovery",
]

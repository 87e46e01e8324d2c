"""Builds the site monitors (mDNS discovery, WLAN, charging cabinets) from the agent config.

The agent's runner calls ``build_monitors`` with the raw TOML sections it does not own.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agent.monitor import Monitor


def build_monitors(config: Mapping[str, Any], data_dir: Path) -> list[Monitor]:
    """Monitors for the ``[discovery]``, ``[wlan]`` and ``[cabinets]`` sections of the config."""
    del config, data_dir
    return []

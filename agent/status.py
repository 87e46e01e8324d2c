"""What `status --json` and the technician API's status report: one dict, read from the store.

With the agent's configuration it reports the *effective* settings — the central URL and
sync settings in use (config file over central's signed config over enrollment), and the
interfaces discovery listens on — not merely what enrollment wrote down.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent.config import AgentConfig
from agent.identity import Identity, load_identity, time_floor
from agent.monitors.discovery.interfaces import choose_interfaces, interfaces_json
from agent.store import Store
from agent.store.outbox import Outbox
from agent.sync.client import SyncSettings
from base.clock import SystemClock
from base.version import version
from protocol.schema import CONFIG_SECTIONS


def effective_central_url(config: AgentConfig | None, identity: Identity) -> tuple[str, str]:
    """(the URL reports go to, where it comes from: "config" for ``[sync] central_url``, else "enrollment")."""
    if config is not None and config.sync.central_url:
        return config.sync.central_url.rstrip("/"), "config"
    return identity.central_url, "enrollment"


def _held_config(store: Store) -> dict[str, Any] | None:
    """The central configuration held: its version, when central issued it, the sections it sets."""
    held = store.get_setting("central_config")
    if not isinstance(held, dict) or not isinstance(held.get("version"), int):
        return None
    settings = held.get("settings")
    sections = settings.get(CONFIG_SECTIONS) if isinstance(settings, dict) else None
    return {
        "version": held["version"],
        "issued_at": held.get("issued_at"),
        "sections": sorted(sections) if isinstance(sections, dict) else [],
    }


def status_info(directory: Path, store: Store, config: AgentConfig | None = None) -> dict[str, Any]:
    """Identity, outbox counters, last sync, open incidents and devices, time floor, version,
    and the central configuration held (``central_config``: version, issued_at, sections; None before one).

    Given ``config``, also ``sync`` (the effective sync settings, seconds and counts) and
    ``discovery`` (the interfaces listened on and those ignored); ``identity.central_url`` is
    then the URL in use, ``identity.enrolled_central_url`` the one enrollment wrote.
    """
    identity = load_identity(store)
    stats = Outbox(store, SystemClock()).stats()
    open_count = store.query("SELECT count(*) FROM incidents WHERE resolved_at IS NULL")[0][0]
    ident: dict[str, Any] | None = None
    if identity is not None:
        url, source = effective_central_url(config, identity)
        ident = {
            "agent_id": identity.agent_id,
            "school_id": identity.school_id,
            "school_name": identity.school_name,
            "carrier": identity.carrier,
            "central_url": url,
            "central_url_from": source,
            "enrolled_central_url": identity.central_url,
            "enrolled_at": identity.enrolled_at,
        }
    info: dict[str, Any] = {
        "version": version(),
        "data_dir": str(directory),
        "enrolled": identity is not None,
        "identity": ident,
        "outbox": stats.to_json(),
        "last_sync_at": store.get_setting("last_sync_at"),
        "open_incidents": open_count,
        "devices": store.query("SELECT count(*) FROM inventory")[0][0],
        "time_floor": time_floor(store),
        "clock_offset_s": store.get_setting("clock_offset_s"),
        "central_config": _held_config(store),
    }
    if config is not None:
        central = store.get_setting("central_config") or {}
        settings = SyncSettings.resolve(
            config.sync, identity.sync if identity else {}, central.get("settings") or {}
        )
        info["sync"] = {
            "report_interval_s": settings.report_interval,
            "max_batch_events": settings.max_batch_events,
            "max_batch_bytes": settings.max_batch_bytes,
            "max_bytes_per_s": settings.max_bytes_per_s,
        }
        info["discovery"] = (
            interfaces_json(choose_interfaces(config.discovery.interfaces))
            if config.discovery.enabled
            else {"mode": "disabled"}
        )
    return info

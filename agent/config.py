"""The agent's TOML configuration: one frozen dataclass per section, every key with a working default.

The file is read by the declarative loader of ``base.config``: unknown sections and keys, wrong
types (a bool is never a number) and values out of bounds are refused with one line naming the
file, the section and the key. Durations are written without a unit in the key name and take
'30s', '5m', '1h30m' or a number of seconds; here they are held as float seconds.

The site sections ``[discovery]``, ``[wlan]`` and ``[cabinets]`` are typed by their monitors'
packages and checked the same way, when the file is read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from agent.monitors.discovery.config import DiscoveryConfig
from base.agentconfig import AgentSection, CentralSettings, HostSection, IncidentSection, PrivacySection
from base.agentconfig.cabinets import CabinetsConfig
from base.agentconfig.layers import json_document, merge_layers, overridden_keys
from base.agentconfig.wlan import WlanConfig
from base.config import duration, load_document, parse_document, setting
from base.errors import ConfigError

MB = 1024 * 1024


def parse_listen(text: str) -> tuple[str, int]:
    """'HOST:PORT' (IPv6 in brackets) into its parts; port 0 means any free port. ConfigError if malformed."""
    host, sep, port = text.rpartition(":")
    if not sep or not (port.isascii() and port.isdigit()) or int(port) > 65535:
        raise ConfigError(f"listen address {text!r} must be HOST:PORT")
    host = host.strip("[]") or "0.0.0.0"  # noqa: S104
    return host, int(port)


def _check_listen(text: str) -> None:
    try:
        parse_listen(text)
    except ConfigError:
        raise ValueError(f"must be HOST:PORT, e.g. 0.0.0.0:8401 (got {text!r})") from None


@dataclass(frozen=True, slots=True)
class SyncSection:
    """[sync]: how reports reach central (durations in seconds). Unset batch/interval keys come from enrollment."""

    central_url: str = ""
    report_interval: float | None = duration(None)
    max_batch_events: int | None = setting(None, low=1, high=2000)
    max_batch_bytes: int | None = setting(None, low=4096, high=700_000)
    max_bytes_per_s: int = setting(32_768, low=0)  # upload rate cap in bytes per second; 0: none
    request_timeout: float = duration(30.0)
    backoff_max: float = duration(60.0)
    revoked_retry: float = duration(3600.0)
    config_interval: float = duration(300.0)


@dataclass(frozen=True, slots=True)
class ApiSection:
    """[api]: the local technician API; ``listen`` is HOST:PORT, the TLS keys are PEM file paths."""

    listen: str = setting("0.0.0.0:8401", check=_check_listen)  # the school LAN is where technicians are
    tls_cert: str = ""  # PEM certificate chain; with tls_key, the API speaks HTTPS
    tls_key: str = ""


@dataclass(frozen=True, slots=True)
class AgentConfig:
    """The whole configuration: one field per TOML section."""

    agent: AgentSection = field(default_factory=AgentSection)
    sync: SyncSection = field(default_factory=SyncSection)
    host: HostSection = field(default_factory=HostSection)
    incidents: IncidentSection = field(default_factory=IncidentSection)
    api: ApiSection = field(default_factory=ApiSection)
    privacy: PrivacySection = field(default_factory=PrivacySection)
    discovery: DiscoveryConfig = field(default_factory=DiscoveryConfig)
    wlan: WlanConfig = field(default_factory=WlanConfig)
    cabinets: CabinetsConfig = field(default_factory=CabinetsConfig)

    @property
    def outbox_max_bytes(self) -> int:
        """The outbox cap in bytes."""
        return self.agent.outbox_max_mb * MB


def parse_config(doc: Mapping[str, Any], *, source: str | None = None) -> AgentConfig:
    """Build the configuration from a parsed TOML document; ConfigError (one line) on any refusal."""
    return parse_document(AgentConfig, doc, source=source)


def load_config(path: Path | None) -> AgentConfig:
    """Read and check a config file; None gives the defaults. ConfigError names the file, section and key."""
    return load_document(AgentConfig, path)


# The sections central's signed configuration may set (the others are the school's own).
CENTRAL_SECTIONS = frozenset(f.name for f in fields(CentralSettings))


@dataclass(frozen=True, slots=True)
class Layered:
    """The configuration in force: central's sections with the school's file over them.

    ``overrides`` are the dotted keys (``cabinets.window``) the file sets to another value than
    central does; the agent reports them, so central shows which schools deviate.
    """

    config: AgentConfig
    overrides: tuple[str, ...] = ()


def layer_config(
    local_doc: Mapping[str, Any], central_sections: Mapping[str, Any], *, source: str | None = None
) -> Layered:
    """Central's sections (only those in ``CENTRAL_SECTIONS``) under the school's parsed file.

    Raises ConfigError (one line naming the key) when the combination is refused; ``source``
    names the file in that line.
    """
    central = {k: v for k, v in central_sections.items() if k in CENTRAL_SECTIONS}
    config = parse_config(merge_layers(central, local_doc), source=source)
    return Layered(config, tuple(overridden_keys(json_document(local_doc), central)))

"""The agent configuration central holds and signs: layers per carrier and per school, versions, ETags.

Staff set a layer with ``schulwart-central config set --carrier NAME|--school ID`` (TOML, checked
with the agent's own section types from ``base.agentconfig``). A school's agents get the carrier
layer with the school layer over it (later layers win key by key, ``base.agentconfig.layers``),
plus central's sync policy and the revoked technician tokens, as one config payload signed with
central's configuration key, together with central staff's acks and notes on the agent's
incidents (so the technician on site sees what the hotline did).

The payload's ``version`` is ``[central] config_version`` plus the newest layer version that
applies, so it only grows while staff change things; raising ``config_version`` moves every
agent past what it holds (e.g. after a database was restored from a backup). ``issued_at`` is
central's time rounded down to ``ISSUED_STEP``: while nothing changes, the payload's bytes and
so its ETag stay the same for that long (agents get ``304``), and the agents' trusted time
floor still moves up at least that often.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from base.agentconfig import parse_central_settings
from base.agentconfig.layers import json_document, merge_layers
from base.errors import ConfigError
from central.config import CentralConfig
from central.errors import NotFoundError
from central.keystore import Keystore
from central.storage.interface import ConfigLayer, SchoolRow, Storage
from central.timestamps import iso
from protocol.encoding import dumps
from protocol.envelope import sign_envelope
from protocol.schema import (
    CONFIG_CENTRAL_KEYS,
    CONFIG_CENTRAL_STEPS,
    CONFIG_SECTIONS,
    CONFIG_TYPE,
    build_config_payload,
)

ISSUED_STEP = timedelta(minutes=15)
STEPS_KEPT = timedelta(days=7)  # staff steps on incidents resolved longer ago no longer travel
MAX_LAYER_BYTES = 256 * 1024


def scope_of(school: str | None, carrier: str | None) -> str:
    """``school:ID`` or ``carrier:NAME`` from the command's options; ConfigError unless exactly one is given."""
    if (school is None) == (carrier is None):
        raise ConfigError("give exactly one of --school ID or --carrier NAME")
    return f"school:{school}" if school is not None else f"carrier:{carrier}"


def check_layer(text: str) -> dict[str, Any]:
    """A layer's TOML text, checked as the agent would check it; the document as JSON-ready values.

    Raises ConfigError, one line: not TOML, too large, or a key the agent's types refuse
    (``config: [cabinets] window must look like 15:00-07:00 (got 'late')``); ``[sync]``, ``[api]``
    and ``[discovery]`` are the school's own and refused as unknown sections.
    """
    if len(text.encode("utf-8")) > MAX_LAYER_BYTES:
        raise ConfigError(f"config: the layer is larger than {MAX_LAYER_BYTES // 1024} KiB")
    try:
        doc = tomllib.loads(text.removeprefix("\ufeff"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config: not valid TOML: {exc}") from None
    parse_central_settings(doc)
    return json_document(doc)


async def require_scope(store: Storage, scope: str) -> None:
    """NotFoundError unless the school or carrier the scope names exists."""
    kind, _, name = scope.partition(":")
    if kind == "school" and await store.get_school(name) is None:
        raise NotFoundError(f"no school with id {name!r}")
    if kind == "carrier" and not await store.carrier_exists(name):
        raise NotFoundError(f"no school belongs to carrier {name!r}")


def school_scopes(school: SchoolRow) -> list[str]:
    """The layers that apply to a school, earliest (weakest) first."""
    return [f"carrier:{school.carrier}", f"school:{school.id}"]


@dataclass(frozen=True, slots=True)
class Effective:
    """A school's configuration from central: the merged sections and the version they make."""

    version: int
    sections: dict[str, Any]
    layers: tuple[ConfigLayer, ...]


async def effective_for(store: Storage, config: CentralConfig, school: SchoolRow) -> Effective:
    """The merged layers of a school and their version (``config_version`` + the newest layer's)."""
    layers = await store.config_layers(school_scopes(school))
    sections = merge_layers(*(json.loads(layer.settings) for layer in layers))
    newest = max((layer.version for layer in layers), default=0)
    return Effective(config.config_version + newest, sections, tuple(layers))


def issued_at(now: datetime) -> datetime:
    """``now`` rounded down to ``ISSUED_STEP`` (so an unchanged configuration keeps its bytes)."""
    step = int(ISSUED_STEP.total_seconds())
    return datetime.fromtimestamp(int(now.timestamp()) // step * step, tz=now.tzinfo)


@dataclass(frozen=True, slots=True)
class SignedConfig:
    """A config payload ready to serve: its ETag (quoted hex SHA-256 of the payload) and the envelope."""

    etag: str
    version: int
    payload: bytes

    def envelope(self, key: Ed25519PrivateKey) -> bytes:
        """The DSSE envelope of the payload, signed with ``key``."""
        return dumps(sign_envelope(self.payload, CONFIG_TYPE, key))


async def config_for_agent(
    store: Storage, config: CentralConfig, keys: Keystore, agent_id: str, school: SchoolRow, now: datetime
) -> SignedConfig:
    """The payload for one agent: sync policy, silent window, revoked tokens, staff steps, central's keys to
    trust and the layered sections. Sign it with ``keys.at(now).config_key``."""
    effective = await effective_for(store, config, school)
    settings: dict[str, Any] = {
        **config.sync.to_json(),
        "silent_window_s": int(config.silent_window.total_seconds()),
        # Technician tokens revoked with `token revoke` (and not expired): the agent refuses them.
        "revoked_tokens": await store.revoked_token_ids(iso(now)),
        CONFIG_SECTIONS: effective.sections,
        # During a key rotation's grace period agents learn the next key here, signed by the current one.
        CONFIG_CENTRAL_KEYS: keys.announced(now),
        # Staff acks and notes at central, so the technician on site sees what the hotline did.
        CONFIG_CENTRAL_STEPS: [_step(row) for row in await store.staff_steps(
            school.id, agent_id, iso(now - STEPS_KEPT))],
    }
    payload = build_config_payload(agent_id, effective.version, issued_at(now), settings)
    return SignedConfig(f'"{hashlib.sha256(payload).hexdigest()}"', effective.version, payload)


def _step(row: Mapping[str, Any]) -> dict[str, Any]:
    step = {"incident": row["incident_id"], "by": row["by"], "at": row["at"]}
    if row["action"] == "staff-ack":
        return {**step, "action": "acknowledged"}
    return {**step, "action": "note", "text": row["text"]}


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an ``If-None-Match`` header (RFC 9110 §13.1.2: a list of tags or ``*``) names ``etag``."""
    if if_none_match is None:
        return False
    tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
    return "*" in tags or etag in tags


def layer_sections(layer: ConfigLayer) -> Mapping[str, Any]:
    """A stored layer's sections (JSON object)."""
    value = json.loads(layer.settings)
    return value if isinstance(value, dict) else {}

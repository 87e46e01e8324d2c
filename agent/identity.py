"""Who this agent is: the enrollment record in the store and the signing key on disk."""

from __future__ import annotations

import sqlite3
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from agent.store import Store
from base.errors import ConfigError
from base.secretfile import read_secret_file
from base.version import version
from protocol.errors import ProtocolError
from protocol.keys import keyid, load_public_key_b64, private_key_from_pem
from protocol.schema import CONFIG_CENTRAL_KEYS

KEY_FILE = "agent-key.pem"
NEXT_KEY_FILE = "agent-key.next.pem"  # a rotation under way (schulwart-agent rotate-key)
ADMIN_TOKEN_FILE = "admin-token"  # noqa: S105 - a file name, not a secret
_SETTING = "identity"


def agent_version() -> str:
    """The installed schulwart version (``base.version``: one place for all three commands)."""
    return version()


@dataclass(frozen=True, slots=True)
class Identity:
    """What enrollment gave us."""

    agent_id: str
    school_id: str
    carrier: str | None
    school_name: str | None
    central_url: str
    central_public_key: str
    token_public_key: str
    keyid: str
    enrolled_at: str
    sync: dict[str, Any] = field(default_factory=dict)

    def central_key(self) -> Ed25519PublicKey:
        """Central's configuration-signing key (refuses weak keys)."""
        return load_public_key_b64(self.central_public_key)

    def to_json(self) -> dict[str, Any]:
        """For the store and `status --json`."""
        return asdict(self)


def load_identity(store: Store) -> Identity | None:
    """The enrollment record, or None before enrollment."""
    raw = store.get_setting(_SETTING)
    return Identity(**raw) if raw else None


def save_identity(store: Store, conn: sqlite3.Connection, identity: Identity) -> None:
    """Record the enrollment inside the caller's transaction."""
    store.set_setting(conn, _SETTING, identity.to_json())


def load_agent_key(data_dir: Path, identity: Identity) -> Ed25519PrivateKey:
    """The agent's signing key; it must be the one central enrolled (or took in a key rotation).

    A rotation that stopped after the store named the new key but before its file replaced the
    old one is finished here: the waiting file becomes the key file.
    """
    path = data_dir / KEY_FILE
    try:
        key = private_key_from_pem(read_secret_file(path))
    except OSError as exc:
        raise ConfigError(f"cannot read the agent key {path}: {exc.strerror}") from None
    if keyid(key) == identity.keyid:
        return key
    waiting = data_dir / NEXT_KEY_FILE
    try:
        new = private_key_from_pem(read_secret_file(waiting))
    except (OSError, ProtocolError):
        new = None
    if new is not None and keyid(new) == identity.keyid:
        waiting.replace(path)
        return new
    raise ConfigError(f"the agent key {path} is not the enrolled one: enroll again with --force")


def read_admin_token(data_dir: Path) -> str | None:
    """The local admin token that enroll wrote (0600), or None when there is none."""
    try:
        token = read_secret_file(data_dir / ADMIN_TOKEN_FILE).decode("ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return token or None


def trusted_central_keys(store: Store, role: str) -> list[Ed25519PublicKey]:
    """Central's keys of ``role`` (``config`` or ``token``) its newest signed config told us to trust.

    Empty before a config that names them (an older central): then the keys enrollment gave are
    the ones. Entries that are not usable keys are skipped.
    """
    held = store.get_setting("central_config")
    settings = held.get("settings") if isinstance(held, dict) else None
    announced = settings.get(CONFIG_CENTRAL_KEYS) if isinstance(settings, dict) else None
    listed = announced.get(role) if isinstance(announced, dict) else None
    keys = []
    for text in listed if isinstance(listed, list) else []:
        try:
            keys.append(load_public_key_b64(text) if isinstance(text, str) else None)
        except ProtocolError:
            continue
    return [k for k in keys if k is not None]


_FLOOR = "time_floor"


def time_floor(store: Store) -> str | None:
    """The newest central-signed time seen (RFC 3339); local 'now' must never be taken below it."""
    value = store.get_setting(_FLOOR)
    return value if isinstance(value, str) else None


def raise_time_floor(store: Store, conn: sqlite3.Connection, issued_at: str) -> str:
    """Move the floor up to ``issued_at`` (never down); returns the floor now in force."""
    from protocol.schema import parse_time

    current = time_floor(store)
    if current is None or parse_time(issued_at) > parse_time(current):
        store.set_setting(conn, _FLOOR, issued_at)
        return issued_at
    return current

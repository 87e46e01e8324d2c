"""Central's two Ed25519 keys: the one that signs agent configuration and the token issuer.

They are separate keys on purpose (docs/protocol.md, "Technician tokens"): a leaked token-issuer key lets someone mint
technician tokens, never push configuration. Created on first use, PEM files mode 0600.

Either key can be rotated with a grace period (``schulwart-central keys rotate config|token``):
the next key waits beside the current one (``<name>.next.pem`` and ``<name>.next-at``, the
switch time) while agents learn it from their signed configuration (``central_keys``), and is
used from the switch time on. The token issuer's old key stays announced for ``TOKEN_OVERLAP``
after the switch, so tokens issued just before it keep working. Files are moved at the first
load after the switch; until then :meth:`Keystore.at` gives the keys in force at any moment.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from base.errors import ConfigError
from base.secretfile import ensure_private_dir, read_secret_file, write_secret_file
from protocol.errors import MalformedError
from protocol.keys import generate_private_key, private_key_from_pem, private_key_to_pem, public_key_b64

log = logging.getLogger(__name__)

CONFIG_KEY_FILE = "config-signing.pem"
TOKEN_KEY_FILE = "token-issuer.pem"  # noqa: S105 - a file name, not a secret
ROLES = {"config": CONFIG_KEY_FILE, "token": TOKEN_KEY_FILE}
TOKEN_OVERLAP = timedelta(hours=12)  # a technician token lives at most 12 h


class KeystoreError(ConfigError):
    """A key file that exists but cannot be read or is not an Ed25519 key."""

    reason = "keystore"


@dataclass(frozen=True, slots=True)
class Pending:
    """A next key waiting for its switch time (UTC)."""

    key: Ed25519PrivateKey
    switch_at: datetime


@dataclass(frozen=True, slots=True)
class Retired:
    """A token issuer key replaced at a rotation, still announced until ``until`` (UTC)."""

    key: Ed25519PrivateKey
    until: datetime


@dataclass(frozen=True, slots=True)
class Keystore:
    """The config-signing key and the technician-token issuer key, with the rotations under way."""

    config_key: Ed25519PrivateKey
    token_key: Ed25519PrivateKey
    config_next: Pending | None = None
    token_next: Pending | None = None
    token_retired: Retired | None = None

    def at(self, now: datetime) -> Keystore:
        """The keys in force at ``now``: a next key whose switch time has come is the current one."""
        keys = self
        if keys.config_next is not None and now >= keys.config_next.switch_at:
            keys = replace(keys, config_key=keys.config_next.key, config_next=None)
        if keys.token_next is not None and now >= keys.token_next.switch_at:
            retired = Retired(keys.token_key, keys.token_next.switch_at + TOKEN_OVERLAP)
            keys = replace(keys, token_key=keys.token_next.key, token_next=None, token_retired=retired)
        return keys

    def announced(self, now: datetime) -> dict[str, list[str]]:
        """The public keys (raw base64) agents are to trust at ``now``: ``{"config": [...], "token": [...]}``.

        The keys in force first, then a next key waiting for its switch, then (tokens) the
        retired issuer key until its overlap ends.
        """
        keys = self.at(now)
        config = [keys.config_key] + ([keys.config_next.key] if keys.config_next else [])
        token = [keys.token_key] + ([keys.token_next.key] if keys.token_next else [])
        if keys.token_retired is not None and now < keys.token_retired.until:
            token.append(keys.token_retired.key)
        return {"config": [public_key_b64(k) for k in config], "token": [public_key_b64(k) for k in token]}

    @property
    def config_public_b64(self) -> str:
        """The config-signing public key, raw base64 (sent at enrollment)."""
        return public_key_b64(self.config_key)

    @property
    def token_public_b64(self) -> str:
        """The token-issuer public key, raw base64 (sent at enrollment)."""
        return public_key_b64(self.token_key)


def _load_or_create(path: Path) -> Ed25519PrivateKey:
    if path.exists():
        return _read_key(path)
    key = generate_private_key()
    try:
        write_secret_file(path, private_key_to_pem(key), exclusive=True)
    except FileExistsError:
        return _load_or_create(path)  # another process created it a moment ago: its key is the key
    except OSError as exc:
        raise KeystoreError(f"cannot write key file {path}: {exc.strerror}") from None
    log.info("created key file %s", path)
    return key


def _read_key(path: Path) -> Ed25519PrivateKey:
    try:
        return private_key_from_pem(read_secret_file(path))
    except OSError as exc:
        raise KeystoreError(f"cannot read key file {path}: {exc.strerror}") from None
    except MalformedError as exc:
        raise KeystoreError(f"key file {path} is unusable: {exc.message}") from None


def _read_time(path: Path) -> datetime | None:
    try:
        moment = datetime.fromisoformat(path.read_text("ascii").strip())
    except FileNotFoundError:
        return None
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise KeystoreError(f"cannot read {path}: {exc}") from None
    if moment.tzinfo is None:
        raise KeystoreError(f"{path} holds a time without a time zone")
    return moment


def _pending(keys_dir: Path, name: str) -> Pending | None:
    switch_at = _read_time(keys_dir / _next_at(name))
    if switch_at is None:
        return None
    return Pending(_read_key(keys_dir / _next(name)), switch_at)


def _next(name: str) -> str:
    return name.replace(".pem", ".next.pem")


def _next_at(name: str) -> str:
    return name.replace(".pem", ".next-at")


def _retired(name: str) -> str:
    return name.replace(".pem", ".retired.pem")


def _retired_until(name: str) -> str:
    return name.replace(".pem", ".retired-until")


def _promote(keys_dir: Path, name: str, pending: Pending, retire_until: datetime | None) -> None:
    """The next key becomes the current one on disk; the old one is kept as ``.retired.pem``."""
    (keys_dir / name).replace(keys_dir / _retired(name))
    if retire_until is not None:
        write_secret_file(keys_dir / _retired_until(name), retire_until.isoformat().encode("ascii"))
    (keys_dir / _next(name)).replace(keys_dir / name)
    (keys_dir / _next_at(name)).unlink()
    log.warning("key %s rotated: the next key is in force since %s", name, pending.switch_at.isoformat())


def load_keystore(data_dir: Path, now: datetime | None = None) -> Keystore:
    """Load both keys from <data_dir>/keys, creating missing ones; a rotation due at ``now`` is finished on disk."""
    keys_dir = data_dir / "keys"
    try:
        ensure_private_dir(keys_dir, tighten=True)
    except OSError as exc:
        raise KeystoreError(f"cannot create key directory {keys_dir}: {exc.strerror}") from None
    config_key = _load_or_create(keys_dir / CONFIG_KEY_FILE)
    token_key = _load_or_create(keys_dir / TOKEN_KEY_FILE)
    moment = now or datetime.now().astimezone()
    config_next, token_next = _pending(keys_dir, CONFIG_KEY_FILE), _pending(keys_dir, TOKEN_KEY_FILE)
    try:
        if config_next is not None and moment >= config_next.switch_at:
            _promote(keys_dir, CONFIG_KEY_FILE, config_next, None)
            config_key, config_next = config_next.key, None
        if token_next is not None and moment >= token_next.switch_at:
            _promote(keys_dir, TOKEN_KEY_FILE, token_next, token_next.switch_at + TOKEN_OVERLAP)
            token_key, token_next = token_next.key, None
    except OSError as exc:
        raise KeystoreError(f"cannot finish a key rotation in {keys_dir}: {exc.strerror}") from None
    retired = None
    until = _read_time(keys_dir / _retired_until(TOKEN_KEY_FILE))
    if until is not None and moment < until:
        retired = Retired(_read_key(keys_dir / _retired(TOKEN_KEY_FILE)), until)
    return Keystore(config_key, token_key, config_next, token_next, retired)


def start_rotation(data_dir: Path, role: str, grace: timedelta, now: datetime) -> Pending:
    """Make the next key of ``role`` (``config`` or ``token``), in force from ``now + grace``.

    KeystoreError when a rotation of that key is under way already.
    """
    name = ROLES[role]
    keys_dir = data_dir / "keys"
    load_keystore(data_dir, now)  # the current key exists, and a rotation that is due is finished first
    if (keys_dir / _next_at(name)).exists():
        raise KeystoreError(f"a rotation of the {role} key is under way already (see `schulwart-central keys list`)")
    key = generate_private_key()
    switch_at = now + grace
    try:
        write_secret_file(keys_dir / _next(name), private_key_to_pem(key), exclusive=True)
        write_secret_file(keys_dir / _next_at(name), switch_at.isoformat().encode("ascii"))
    except OSError as exc:
        raise KeystoreError(f"cannot write the next {role} key in {keys_dir}: {exc.strerror}") from None
    log.warning("next %s key made; in force from %s", role, switch_at.isoformat())
    return Pending(key, switch_at)

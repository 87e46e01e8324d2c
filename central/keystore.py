"""Central's two Ed25519 keys: the one that signs agent configuration and the token issuer.

They are separate keys on purpose (docs/protocol.md, "Technician tokens"): a leaked token-issuer key lets someone mint
technician tokens, never push configuration. Created on first use, PEM files mode 0600.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from base.errors import ConfigError
from base.secretfile import ensure_private_dir, read_secret_file, write_secret_file
from protocol.errors import MalformedError
from protocol.keys import generate_private_key, private_key_from_pem, private_key_to_pem, public_key_b64

log = logging.getLogger(__name__)

CONFIG_KEY_FILE = "config-signing.pem"
TOKEN_KEY_FILE = "token-issuer.pem"  # noqa: S105 - a file name, not a secret


class KeystoreError(ConfigError):
    """A key file that exists but cannot be read or is not an Ed25519 key."""

    reason = "keystore"


@dataclass(frozen=True, slots=True)
class Keystore:
    """The config-signing key and the technician-token issuer key."""

    config_key: Ed25519PrivateKey
    token_key: Ed25519PrivateKey

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
        try:
            return private_key_from_pem(read_secret_file(path))
        except OSError as exc:
            raise KeystoreError(f"cannot read key file {path}: {exc.strerror}") from None
        except MalformedError as exc:
            raise KeystoreError(f"key file {path} is unusable: {exc.message}") from None
    key = generate_private_key()
    try:
        write_secret_file(path, private_key_to_pem(key), exclusive=True)
    except FileExistsError:
        return _load_or_create(path)  # another process created it a moment ago: its key is the key
    except OSError as exc:
        raise KeystoreError(f"cannot write key file {path}: {exc.strerror}") from None
    log.info("created key file %s", path)
    return key


def load_keystore(data_dir: Path) -> Keystore:
    """Load both keys from <data_dir>/keys, creating missing ones."""
    keys_dir = data_dir / "keys"
    try:
        ensure_private_dir(keys_dir, tighten=True)
    except OSError as exc:
        raise KeystoreError(f"cannot create key directory {keys_dir}: {exc.strerror}") from None
    return Keystore(
        config_key=_load_or_create(keys_dir / CONFIG_KEY_FILE),
        token_key=_load_or_create(keys_dir / TOKEN_KEY_FILE),
    )

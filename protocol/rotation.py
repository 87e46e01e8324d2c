"""An agent's key rotation: the new key announced in a payload signed by the old one.

The envelope (``ROTATION_TYPE``) is signed by the agent's current, enrolled key; its payload is
``{"v": 1, "agent_id", "school_id", "new_public_key" (base64 raw 32 bytes), "made_at",
"proof"}``. ``proof`` is the new key's signature (base64) over ``PROOF_DOMAIN ‖ agent_id ‖ 0x00 ‖
old keyid`` — proof that the sender holds the new key, so nobody can announce someone else's
public key as theirs. Pure functions, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .encoding import b64decode_strict, b64encode, dumps, loads_strict
from .errors import BadSignatureError, MalformedError
from .fields import ident_field, require_obj, str_field
from .keys import keyid, load_public_key_b64, public_key_b64
from .schema import SCHEMA_VERSION, format_time, parse_time

__all__ = ["PROOF_DOMAIN", "ROTATION_TYPE", "Rotation", "build_rotation", "parse_rotation"]

ROTATION_TYPE = "application/vnd.schulwart.key-rotation+json;v=1"
PROOF_DOMAIN = b"schulwart key rotation v1\x00"
_FIELDS = ("v", "agent_id", "school_id", "new_public_key", "made_at", "proof")


@dataclass(frozen=True, slots=True)
class Rotation:
    """A checked announcement: who, the new key (weak keys refused) and when the agent made it."""

    agent_id: str
    school_id: str
    new_key: Ed25519PublicKey
    made_at: str

    @property
    def new_keyid(self) -> str:
        """The hex SHA-256 of the new raw public key."""
        return keyid(self.new_key)


def _proof_message(agent_id: str, old_keyid: str) -> bytes:
    return PROOF_DOMAIN + agent_id.encode("utf-8") + b"\x00" + old_keyid.encode("ascii")


def build_rotation(
    agent_id: str, school_id: str, old_keyid: str, new_key: Ed25519PrivateKey, made_at: datetime
) -> bytes:
    """The payload bytes announcing ``new_key``; sign them with the old key (``ROTATION_TYPE``)."""
    proof = new_key.sign(_proof_message(agent_id, old_keyid))
    return dumps(
        {
            "v": SCHEMA_VERSION,
            "agent_id": agent_id,
            "school_id": school_id,
            "new_public_key": public_key_b64(new_key),
            "made_at": format_time(made_at),
            "proof": b64encode(proof),
        }
    )


def parse_rotation(payload: bytes, old_keyid: str) -> Rotation:
    """Check a rotation payload whose envelope verified with the key ``old_keyid``.

    Raises MalformedError (shape, unknown fields), WeakKeyError (the new key) and
    BadSignatureError (the proof does not verify with the new key).
    """
    doc = require_obj(loads_strict(payload), "key rotation")
    unknown = sorted(set(doc) - set(_FIELDS))
    if unknown or doc.get("v") != SCHEMA_VERSION:
        raise MalformedError(f"key rotation: unknown fields {unknown} or version", reason="bad_payload")
    agent_id = ident_field(doc, "agent_id")
    made_at = str_field(doc, "made_at", max_len=40)
    new_text = str_field(doc, "new_public_key", max_len=64)
    proof_text = str_field(doc, "proof", max_len=100)
    assert made_at is not None and new_text is not None and proof_text is not None
    parse_time(made_at, field_name="made_at")
    new_key = load_public_key_b64(new_text)
    try:
        new_key.verify(b64decode_strict(proof_text, field="proof"), _proof_message(agent_id, old_keyid))
    except InvalidSignature:
        raise BadSignatureError("the new key's proof does not verify", reason="bad_proof") from None
    return Rotation(agent_id=agent_id, school_id=ident_field(doc, "school_id"), new_key=new_key, made_at=made_at)

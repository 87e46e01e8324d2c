"""``schulwart-agent rotate-key``: a new key pair, announced to central in a payload signed by the old key.

Steps, each safe to repeat after a crash or a lost answer:

1. the new key is written to ``agent-key.next.pem`` (0600), or the one already there is used;
2. the announcement (``protocol.rotation``), signed with the current key, goes to
   ``POST /v1/agents/{id}/key``; central answers with the keyid now in force;
3. the identity in the store names the new keyid, then ``agent-key.next.pem`` replaces
   ``agent-key.pem``. A crash between the two is finished by ``identity.load_agent_key``.

A running agent picks the new key up when central first refuses the old one (it reads key and
identity again), so the service need not stop.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import aiohttp

from agent.identity import KEY_FILE, NEXT_KEY_FILE, Identity, load_agent_key, load_identity, save_identity
from agent.store import Store
from base.clock import Clock
from base.secretfile import read_secret_file, write_secret_file
from protocol.encoding import loads_strict
from protocol.envelope import sign
from protocol.errors import ProtocolError, SchulwartError
from protocol.keys import generate_private_key, keyid, private_key_from_pem, private_key_to_pem
from protocol.rotation import ROTATION_TYPE, build_rotation

log = logging.getLogger(__name__)


class RotationError(SchulwartError):
    """The key could not be rotated (central refused, unreachable, not enrolled)."""

    reason = "rotate"


async def rotate_key(data_dir: Path, store: Store, clock: Clock, *, central_url: str, timeout: float = 30.0) -> str:
    """Rotate the agent's key with central; returns the new keyid. RotationError (one line) on refusal."""
    identity = load_identity(store)
    if identity is None:
        raise RotationError("not enrolled: nothing to rotate (run `schulwart-agent enroll` first)")
    old = load_agent_key(data_dir, identity)
    next_path = data_dir / NEXT_KEY_FILE
    if next_path.exists():
        new = private_key_from_pem(read_secret_file(next_path))  # a rotation that did not finish: the same key
    else:
        new = generate_private_key()
        write_secret_file(next_path, private_key_to_pem(new), exclusive=True)
    payload = build_rotation(identity.agent_id, identity.school_id, identity.keyid, new, clock.now())
    answer = await _post(f"{central_url.rstrip('/')}/v1/agents/{identity.agent_id}/key",
                         sign(payload, ROTATION_TYPE, old), timeout)  # fmt: skip
    if answer != keyid(new):
        raise RotationError(f"central holds key {answer[:16]}… for this agent, not the new one")
    finish(data_dir, store, identity, answer)
    log.warning("school=%s agent %s rotated its key: %s… retired, %s… in force",
                identity.school_id, identity.agent_id, identity.keyid[:16], answer[:16])  # fmt: skip
    return answer


def finish(data_dir: Path, store: Store, identity: Identity, new_keyid: str) -> None:
    """Name the new keyid in the store, then put the new key file in place (a crash between is finished later)."""
    with store.transaction() as conn:
        save_identity(store, conn, replace(identity, keyid=new_keyid))
    (data_dir / NEXT_KEY_FILE).replace(data_dir / KEY_FILE)


async def _post(url: str, envelope: bytes, timeout: float) -> str:
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
            session.post(url, data=envelope, headers={"Content-Type": "application/json"}) as resp,
        ):
            raw = await resp.content.read(64 * 1024)
            status = resp.status
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise RotationError(f"cannot reach central: {exc or type(exc).__name__} (nothing changed; run again)") from None
    try:
        doc = loads_strict(raw)
    except ProtocolError:
        doc = None
    if status != 200:
        reason = doc.get("error") if isinstance(doc, dict) else None
        raise RotationError(f"central refused the new key ({status}): {reason or 'no reason given'}")
    new_keyid = doc.get("keyid") if isinstance(doc, dict) else None
    if not isinstance(new_keyid, str) or len(new_keyid) != 64:
        raise RotationError("central's answer names no keyid")
    return new_keyid

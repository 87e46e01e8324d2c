"""An agent rotates its key: the announcement signed by the old key, checked and applied in one transaction.

``POST /v1/agents/{id}/key`` takes a DSSE envelope of ``protocol.rotation.ROTATION_TYPE`` signed
with the agent's enrolled key. Central checks it in the envelope's order (size, strict JSON, the
key by keyid, the signature, the type), then the payload: the agent and school the key was
enrolled for, the new key (not weak, never enrolled anywhere, with the proof that the sender
holds it). In one transaction the agent's key becomes the new one and the old is retired:
reports signed with it are refused from then on (``401 unknown_key``). The same announcement
sent again after it was applied (an agent that did not hear the answer) gets the same answer;
any other use of a retired key is refused.
"""

from __future__ import annotations

import logging
from datetime import datetime

from central.errors import KeyEnrolledError
from central.storage.interface import Storage
from central.timestamps import iso
from protocol.envelope import verify
from protocol.errors import IdentityError, RevokedKeyError, UnknownKeyError
from protocol.keys import public_key_raw, stored_public_key
from protocol.rotation import ROTATION_TYPE, parse_rotation

log = logging.getLogger(__name__)

MAX_ROTATION_BODY = 16 * 1024


async def rotate_key(store: Storage, agent_id: str, body: bytes, now: datetime) -> dict[str, str]:
    """Apply a key announcement for ``agent_id``; the answer ``{"agent_id", "keyid"}`` (the key now in force).

    Raises the protocol's errors (mapped to 400/401/403 by ``central.errors``) and
    KeyEnrolledError (409) for a new key that some agent holds or held.
    """
    async with store.transaction() as tx:
        agent = await tx.get_agent(agent_id)
        if agent is None:
            raise UnknownKeyError("no agent of that id")
        if agent.revoked:
            raise RevokedKeyError(f"agent {agent_id} is revoked: enroll again")
        retired = {kid: (raw, successor) for kid, raw, successor in await tx.retired_keys(agent_id)}
        keys = {agent.keyid: stored_public_key(agent.public_key)}
        keys.update({kid: stored_public_key(raw) for kid, (raw, _successor) in retired.items()})
        verified = verify(body, keys, [ROTATION_TYPE], max_bytes=MAX_ROTATION_BODY)
        rotation = parse_rotation(verified.payload, verified.keyid)
        if (rotation.agent_id, rotation.school_id) != (agent.agent_id, agent.school_id):
            raise IdentityError("the announcement names another agent or school than its key")
        if verified.keyid in retired:
            if retired[verified.keyid][1] == rotation.new_keyid == agent.keyid:
                return {"agent_id": agent_id, "keyid": agent.keyid}  # heard again: already in force
            raise UnknownKeyError("the announcement is signed with a retired key")
        if await tx.keyid_enrolled(rotation.new_keyid):
            raise KeyEnrolledError("the new key is (or was) enrolled already: make a fresh one")
        await tx.rotate_agent_key(agent_id, rotation.new_keyid, public_key_raw(rotation.new_key), iso(now))
    log.info("school=%s agent=%s rotated its key: %s… retired, %s… in force",
             agent.school_id, agent_id, agent.keyid[:16], rotation.new_keyid[:16])  # fmt: skip
    return {"agent_id": agent_id, "keyid": rotation.new_keyid}

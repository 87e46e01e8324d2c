"""`schulwart-agent rotate-key` against a real central: the new key in force, the old one refused for good.

Central runs in-process on 127.0.0.1 over its SQLite file; the command runs as a real process
while the agent keeps running (it takes the new key at central's first refusal of the old one).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.config import parse_config
from agent.enroll import enroll
from agent.identity import KEY_FILE, NEXT_KEY_FILE, Identity, load_agent_key
from agent.wiring import build_agent
from base.clock import SystemClock
from central.enrollment import create_code
from central.keystore import load_keystore
from protocol.envelope import sign
from protocol.keys import generate_private_key, keyid, private_key_from_pem, public_key_b64
from protocol.rotation import ROTATION_TYPE, build_rotation
from protocol.schema import REPORT_TYPE, build_report
from tests.agent.test_central_config import Central, _until, central  # noqa: F401 - the fixture

AGENT_CLI = str(Path(sys.executable).parent / "schulwart-agent")
pytestmark = pytest.mark.timeout(120)


async def _post(url: str, body: bytes) -> tuple[int, dict[str, object]]:
    async with aiohttp.ClientSession() as session, session.post(
        url, data=body, headers={"Content-Type": "application/json"}
    ) as resp:
        return resp.status, await resp.json()


def _report(agent_id: str, school_id: str, seq: int, key: object) -> bytes:
    event = {"seq": seq, "at": "2026-01-01T00:00:00Z", "kind": "health.snapshot", "data": {"host": {}}}
    return sign(build_report(agent_id, school_id, [event], datetime.now(UTC)), REPORT_TYPE, key)  # type: ignore[arg-type]


async def _enrolled(central: Central, data_dir: Path) -> tuple[Identity, Ed25519PrivateKey]:  # noqa: F811
    """A freshly enrolled agent of gs-nord: its identity and its key."""
    code = await create_code(central.store, "gs-nord", timedelta(hours=1), datetime.now(UTC),
                             load_keystore(central.data_dir))  # fmt: skip
    identity = await enroll(central.url, code, data_dir, SystemClock())
    return identity, load_agent_key(data_dir, identity)


async def test_rotate_key_while_the_agent_runs(central: Central, tmp_path: Path) -> None:  # noqa: F811
    data_dir = tmp_path / "agent"
    identity, old = await _enrolled(central, data_dir)
    config = parse_config({
        "discovery": {"enabled": False}, "agent": {"snapshot_interval": 0.3},
        "sync": {"report_interval": 0.2, "max_bytes_per_s": 0}, "host": {"interval": 0.3},
    })  # fmt: skip
    agent = build_agent(config, data_dir, SystemClock(), listen="127.0.0.1:0")
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    try:
        async def acked() -> int:
            row = await central.store.get_agent(identity.agent_id)
            return row.acked_seq if row else 0

        before = await _until(acked)
        done = await asyncio.to_thread(
            subprocess.run, [AGENT_CLI, "rotate-key", "--data-dir", str(data_dir)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "key rotated" in done.stderr and done.stdout == ""
        new = private_key_from_pem((data_dir / KEY_FILE).read_bytes())
        assert not (data_dir / NEXT_KEY_FILE).exists()
        row = await central.store.get_agent(identity.agent_id)
        assert row is not None and row.keyid == keyid(new) != keyid(old)

        # The running agent goes on: its reports verify with the new key, and central holds them.
        async def moved_on() -> bool:
            return await acked() > before + 3

        await _until(moved_on)
        assert not task.done()
    finally:
        stop.set()
        assert await asyncio.wait_for(task, 15) is True

    # The old key is refused for reports, for configuration and for another announcement; the new one works.
    reports = f"{central.url}/v1/reports"
    next_seq = (await acked()) + 1
    assert await _post(reports, _report(identity.agent_id, "gs-nord", next_seq, old)) == (401, {"error": "unknown_key"})
    status, _ = await _post(reports, _report(identity.agent_id, "gs-nord", next_seq, new))
    assert status == 200
    third = generate_private_key()
    again = sign(build_rotation(identity.agent_id, "gs-nord", keyid(old), third, datetime.now(UTC)), ROTATION_TYPE, old)
    assert await _post(f"{central.url}/v1/agents/{identity.agent_id}/key", again) == (
        401, {"error": "unknown_key"})  # fmt: skip
    # An old key can never be enrolled again.
    keys = load_keystore(central.data_dir)
    code = await create_code(central.store, "gs-nord", timedelta(hours=1), datetime.now(UTC), keys)
    body = {"code": code, "public_key": public_key_b64(old), "hostname": "srv", "agent_version": "0.1.0"}
    async with aiohttp.ClientSession() as session, session.post(f"{central.url}/v1/enroll", json=body) as resp:
        assert (resp.status, await resp.json()) == (409, {"error": "key_enrolled"})


async def test_an_announcement_heard_twice_is_answered_the_same_and_refusals_change_nothing(
    central: Central, tmp_path: Path  # noqa: F811
) -> None:
    data_dir = tmp_path / "agent"
    identity, old = await _enrolled(central, data_dir)
    url = f"{central.url}/v1/agents/{identity.agent_id}/key"
    new = generate_private_key()

    def announce(signer: object, *, school: str = "gs-nord", announced: object = None,
                 proof_by: object = None, old_keyid: str | None = None) -> bytes:  # fmt: skip
        """An announcement of ``announced`` (default: the new key) whose proof ``proof_by`` made."""
        payload = json.loads(build_rotation(identity.agent_id, school, old_keyid or keyid(old),
                                            proof_by or announced or new, datetime.now(UTC)))  # type: ignore[arg-type]
        payload["new_public_key"] = public_key_b64(announced or new)  # type: ignore[arg-type]
        return sign(json.dumps(payload).encode(), ROTATION_TYPE, signer)  # type: ignore[arg-type]

    refusals = [
        (announce(generate_private_key()), 401, "unknown_key"),  # not signed by the enrolled key
        (announce(old, school="gs-sued"), 403, "identity_mismatch"),
        (announce(old, old_keyid="0" * 64), 401, "bad_proof"),  # the proof names another old key
        (announce(old, proof_by=generate_private_key()), 401, "bad_proof"),  # the sender does not hold the new key
        (sign(b'{"v": 1}', REPORT_TYPE, old), 400, "unsupported_type"),
        (b"{", 400, "bad_json"),
    ]
    for body, status, error in refusals:
        got = await _post(url, body)
        assert got[0] == status and got[1]["error"] in (error, "malformed"), (error, got)
    row = await central.store.get_agent(identity.agent_id)
    assert row is not None and row.keyid == keyid(old), "no refusal changed the key"
    # Another agent's key, or the agent's own current key, cannot be the new one.
    taken = await _post(url, announce(old, announced=old))
    assert taken == (409, {"error": "key_enrolled"})

    first = announce(old)
    assert await _post(url, first) == (200, {"agent_id": identity.agent_id, "keyid": keyid(new)})
    assert await _post(url, first) == (200, {"agent_id": identity.agent_id, "keyid": keyid(new)})  # idempotent
    assert json.loads(first)["payloadType"] == ROTATION_TYPE

"""Issue 14 on central: a revoked agent (finding 5), the code's key pin (finding 8), the issued-token log
reaching agents (finding 4), a hostile hostname in `agent list` (finding 9), the version in reports.

The app runs in-process over a real socket; the CLI runs as a real process on the same data dir,
as an operator would run it beside `serve` (SQLite WAL lets both work at once).
"""

from __future__ import annotations

import getpass
import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from aiohttp.test_utils import TestClient

from central.enrollment import create_code, keys_pin
from central.keystore import Keystore
from central.storage.interface import Storage
from central.web.appkeys import KEYS
from protocol.envelope import sign, verify
from protocol.keys import generate_private_key, keyid, load_public_key_b64, public_key_b64, split_enroll_code
from protocol.schema import CONFIG_TYPE, REPORT_TYPE, build_report, parse_config_payload

from .conftest import FakeAgent, FakeClock
from .test_state_and_api import get, incident_events, post

CENTRAL = str(Path(sys.executable).parent / "schulwart-central")


def cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The command on the test's data dir and, through central.toml (the central_toml fixture), its database."""
    config = ["--config", str(tmp_path / "central.toml")] if (tmp_path / "central.toml").exists() else []
    return subprocess.run([CENTRAL, *args, "--data-dir", str(tmp_path), *config], capture_output=True, text=True,
                          check=False, timeout=60)  # fmt: skip


async def test_a_revoked_agent_keeps_its_schools_history(
    client: TestClient, agent: FakeAgent, tmp_path: Path, central_toml: Path
) -> None:
    assert (await post(client, agent.sign_events(incident_events(agent))))[0] == 200
    before = await get(client, "/v1/schools/gs-nord")
    assert before["status"] == "degraded" and before["revoked_agent"] is None
    done = cli(tmp_path, "agent", "revoke", agent.agent_id)
    assert done.returncode == 0 and done.stdout == "", done.stderr
    assert "keeps its history" in done.stderr and "enroll-code --school gs-nord" in done.stderr
    after = await get(client, "/v1/schools/gs-nord")
    assert after["status"] == "silent", "a school whose agent was revoked is not a new school"
    assert after["last_report_at"] == before["last_report_at"] is not None
    assert after["incidents"] == before["incidents"] and after["devices"] == before["devices"]
    revoked = after["revoked_agent"]
    assert revoked["agent_id"] == agent.agent_id and revoked["revoked_by"] == getpass.getuser()
    assert revoked["revoked_at"] and "enroll-code --school gs-nord" in revoked["replacement"]
    (row,) = after["agents"]
    assert row["revoked"] is True and row["revoked_by"] == getpass.getuser()
    listed = {s["id"]: s for s in (await get(client, "/v1/schools"))["schools"]}
    assert listed["gs-nord"]["status"] == "silent" and listed["gs-nord"]["revoked_agent"]["agent_id"] == agent.agent_id
    assert listed["gs-sued"]["status"] == "new" and listed["gs-sued"]["revoked_agent"] is None
    table = cli(tmp_path, "agent", "list").stdout
    assert "revoked" in table and getpass.getuser() in table


async def test_codes_carry_the_pin_of_centrals_keys(
    client: TestClient, store: Storage, clock: FakeClock, keys: Keystore
) -> None:
    code = await create_code(store, "gs-nord", timedelta(hours=1), clock.now(), client.server.app[KEYS])
    secret, pin = split_enroll_code(code)
    assert pin == keys_pin(keys) and len(secret) == 24
    other = Keystore(generate_private_key(), generate_private_key())
    foreign = await create_code(store, "gs-nord", timedelta(hours=1), clock.now(), other)
    body = {"code": foreign, "public_key": public_key_b64(generate_private_key()), "hostname": "h",
            "agent_version": "0.1.0"}  # fmt: skip
    refused = await client.post("/v1/enroll", json=body)
    assert refused.status == 403 and (await refused.json()) == {"error": "invalid_code"}
    assert len(await store.list_agents("gs-nord")) == 0


async def test_revoked_technician_tokens_travel_in_the_signed_config(
    client: TestClient, agent: FakeAgent, tmp_path: Path, central_toml: Path, clock: FakeClock
) -> None:
    issued = cli(tmp_path, "token", "issue", "--technician", "anna", "--scope", "school:gs-nord")
    assert issued.returncode == 0, issued.stderr
    (row,) = [json.loads(line) for line in cli(tmp_path, "token", "list", "--json").stdout.splitlines()]
    assert cli(tmp_path, "token", "revoke", row["jti"]).returncode == 0
    resp = await client.get(f"/v1/agents/{agent.agent_id}/config", headers=agent.config_headers(clock.now()))
    central_key = load_public_key_b64(agent.enrollment["central_public_key"])
    config = parse_config_payload(verify(await resp.read(), {keyid(central_key): central_key}, {CONFIG_TYPE}).payload)
    assert config.settings["revoked_tokens"] == [row["jti"]]


async def test_a_hostname_with_newlines_cannot_forge_rows(client: TestClient, store: Storage, clock: FakeClock,
                                                          tmp_path: Path, central_toml: Path) -> None:  # fmt: skip
    code = await create_code(store, "gs-nord", timedelta(hours=1), clock.now(), client.server.app[KEYS])
    forged = "srv\nag-forged  gs-ost  evil  9.9  0  -  active\x1b[2J"
    body = {"code": code, "public_key": public_key_b64(generate_private_key()), "hostname": forged,
            "agent_version": "0.1.0"}  # fmt: skip
    assert (await client.post("/v1/enroll", json=body)).status == 201
    lines = cli(tmp_path, "agent", "list").stdout.splitlines()
    assert len(lines) == 2 and "ag-forged" in lines[1] and "\\n" in lines[1] and "\x1b" not in lines[1]


async def test_reports_and_states_carry_the_agents_version(client: TestClient, agent: FakeAgent) -> None:
    payload = build_report(agent.agent_id, agent.school_id, agent.events(1, 1), "2024-05-06T08:00:00Z",
                           agent_version="9.8.7")  # fmt: skip
    assert (await post(client, sign(payload, REPORT_TYPE, agent.key)))[0] == 200
    (row,) = (await get(client, "/v1/schools/gs-nord"))["agents"]
    assert row["version"] == "9.8.7"

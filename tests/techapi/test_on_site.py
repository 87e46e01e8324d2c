"""On site, end to end: central issues a token, the real agent checks it offline, the ack
goes through the outbox and central shows who acknowledged — over real sockets."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.error import HTTPError
from urllib.request import Request, urlopen

import pytest

from tests.agent.procs import (
    AGENT,
    CENTRAL,
    Central,
    Proc,
    central_available,
    enroll_agent,
    run,
    start_agent,
    wait_for,
    write_config,
)

pytestmark = [
    pytest.mark.skipif(not central_available(), reason="schulwart-central is not built"),
    pytest.mark.timeout(120),
]

# The host monitor's disk rule with a threshold every disk passes: a real incident, fast.
CONFIG = """
[agent]
snapshot_interval = 600
[sync]
report_interval = 0.3
backoff_max = 0.5
max_bytes_per_s = 0
[host]
interval = 0.3
disk_max_percent = 0.1
[incidents]
open_after = 1
resolve_after = 1
"""


class Site:
    """Central, one enrolled agent running, and a way to ask both."""

    def __init__(self, root: Path) -> None:
        self.central = Central(root)
        self.central.start()
        run([CENTRAL, "school", "add", "--id", "s2", "--name", "GS Süd", "--carrier", "Kreis B",
             "--data-dir", str(self.central.dir)])  # fmt: skip
        self.data = root / "agent"
        self.agent_id = enroll_agent(self.central, self.data)
        self.agent: Proc = start_agent(self.data, write_config(root / "agent.toml", CONFIG), root / "agent.log")
        self.url = f"http://127.0.0.1:{self.agent.wait_listening()}"

    def token(self, scope: str, name: str = "A. Weber") -> str:
        args = [CENTRAL, "token", "issue", "--technician", name, "--scope", scope, "--data-dir", str(self.central.dir)]
        return run(args).stdout.strip()

    def call(self, path: str, token: str | None, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        data = json.dumps(body).encode() if body is not None else None
        request = Request(self.url + path, data=data, headers=headers, method="POST" if data else "GET")
        try:
            with urlopen(request, timeout=5) as resp:
                return resp.status, json.loads(resp.read())
        except HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def close(self) -> None:
        self.agent.terminate()
        if self.central.proc is not None:
            self.central.proc.terminate()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    s = Site(tmp_path)
    yield s
    s.close()


def _open_incident(site: Site, token: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = []

    def has_one() -> bool:
        status, body = site.call("/api/v1/incidents", token)
        assert status == 200, body
        found[:] = body["incidents"]
        return bool(found)

    wait_for(has_one, 20, "an open incident at the agent")
    return next(i for i in found if i["category"] == "host")


def test_tokens_from_central_are_checked_offline(site: Site) -> None:
    assert site.call("/api/v1/status", None)[0] == 401
    status, body = site.call("/api/v1/status", site.token("school:s2"))
    assert (status, body["error"]) == (403, "scope")
    status, body = site.call("/api/v1/status", site.central.token)  # a read-API token of central
    assert (status, body["error"]) == (401, "not_a_technician_token")
    status, body = site.call("/api/v1/status", site.token("carrier:Kreis A"))
    assert status == 200
    assert body["school"] == {"id": "s1", "name": "GS Nord", "carrier": "Kreis A", "agent_id": site.agent_id}
    assert body["outbox"]["last_seq"] >= 1
    log = site.agent.text()
    assert "reason=scope" in log and "reason=not_a_technician_token" in log


def test_ack_and_note_reach_central_with_the_technicians_name(site: Site) -> None:
    token = site.token("school:s1")
    incident = _open_incident(site, token)
    status, acked = site.call(f"/api/v1/incidents/{incident['id']}/ack", token, {"note": "Platte wird getauscht"})
    assert status == 200
    assert acked["acknowledged_by"] == "A. Weber"
    assert acked["notes"][0]["text"] == "Platte wird getauscht"

    def central_knows() -> bool:
        rows = [i for i in site.central.school()["incidents"] if i["id"] == incident["id"]]
        return bool(rows) and rows[0]["acknowledged_by"] == "A. Weber" and bool(rows[0]["notes"])

    wait_for(central_knows, 20, "the ack and the note at central")
    row = next(i for i in site.central.school()["incidents"] if i["id"] == incident["id"])
    assert row["notes"][0]["by"] == "A. Weber"
    assert row["notes"][0]["text"] == "Platte wird getauscht"


def test_remote_cli_speaks_the_same_api(site: Site, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(site.token("all") + "\n")
    _open_incident(site, token_file.read_text().strip())
    out = run([AGENT, "remote", "incidents", "--url", site.url, "--token-file", str(token_file)])
    assert "host" in out.stdout and "SEVERITY" in out.stdout
    out = run([AGENT, "remote", "status", "--url", site.url, "--token-file", str(token_file), "--json"])
    assert json.loads(out.stdout)["school"]["id"] == "s1"
    token_file.write_text(site.token("school:s2"))
    bad = subprocess.run(
        [AGENT, "remote", "devices", "--url", site.url, "--token-file", str(token_file)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [f"schulwart-agent: error: agent at {site.url} refused: 403 scope"]


def test_remote_cli_reads_url_and_token_file_from_config(site: Site, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(site.token("school:s1"))
    config = tmp_path / "remote.toml"
    config.write_text(f'[remote]\nurl = "{site.url}"\ntoken_file = "{token_file}"\n')
    out = run([AGENT, "remote", "status", "--config", str(config), "--json"])
    assert json.loads(out.stdout)["school"]["id"] == "s1"
    missing = subprocess.run([AGENT, "remote", "status"], capture_output=True, text=True, check=False)
    assert missing.returncode == 2
    assert "give --url and --token-file" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1

"""Issue 14, finding 4: read-API tokens can be listed and revoked; technician tokens name their scope and are logged.

Real central processes: `api-token revoke` takes effect on the running server's next request;
`token list` shows the issued-token log (who, scope, expiry, jti) and never a token; a revoked
technician token travels to agents in central's signed config and the agent refuses it.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.error import HTTPError
from urllib.request import Request, urlopen

from tests.agent.procs import CENTRAL, Central, run


def _status(url: str, token: str) -> int:
    try:
        with urlopen(Request(f"{url}/v1/schools", headers={"Authorization": f"Bearer {token}"}), timeout=5) as r:
            return r.status
    except HTTPError as exc:
        return exc.code


def test_api_tokens_are_listed_and_revoked_on_a_running_central(tmp_path: Path) -> None:
    central = Central(tmp_path)  # has one token named "t"
    d = str(central.dir)
    second = run([CENTRAL, "api-token", "create", "--name", "dashboard", "--carrier", "Kreis A", "--data-dir", d])
    dup = run([CENTRAL, "api-token", "create", "--name", "dashboard", "--data-dir", d], check=False)
    assert dup.returncode == 2 and "exists already" in dup.stderr
    central.start()
    try:
        assert _status(central.url, central.token) == 200 and _status(central.url, second.stdout.strip()) == 200
        listed = run([CENTRAL, "api-token", "list", "--data-dir", d]).stdout
        assert [ln.split()[0] for ln in listed.splitlines()] == ["NAME", "t", "dashboard"]
        assert "swc_" not in listed and central.token not in listed
        revoke = run([CENTRAL, "api-token", "revoke", "dashboard", "--data-dir", d])
        assert revoke.stdout == "" and "revoked" in revoke.stderr
        assert _status(central.url, second.stdout.strip()) == 401  # the running server refuses it at once
        assert _status(central.url, central.token) == 200
        listed_json = run([CENTRAL, "api-token", "list", "--json", "--data-dir", d]).stdout
        rows = [json.loads(ln) for ln in listed_json.splitlines()]
        assert [(r["name"], r["revoked_at"] is not None) for r in rows] == [("t", False), ("dashboard", True)]
        again = run([CENTRAL, "api-token", "revoke", "dashboard", "--data-dir", d], check=False)
        assert again.returncode == 2 and "no valid read-API token named 'dashboard'" in again.stderr
    finally:
        central.stop()


def test_technician_tokens_need_a_scope_and_are_logged_never_stored(tmp_path: Path) -> None:
    central = Central(tmp_path)
    d = str(central.dir)
    missing = run([CENTRAL, "token", "issue", "--technician", "anna", "--data-dir", d], check=False)
    assert missing.returncode == 2 and "--scope" in missing.stderr and missing.stdout == ""
    school = run([CENTRAL, "token", "issue", "--technician", "anna", "--scope", "school:s1", "--data-dir", d]).stdout
    every = run([CENTRAL, "token", "issue", "--technician", "bert", "--scope", "all", "--ttl", "1h",
                 "--data-dir", d]).stdout  # fmt: skip
    rows = [json.loads(ln) for ln in run([CENTRAL, "token", "list", "--json", "--data-dir", d]).stdout.splitlines()]
    assert [(r["technician"], r["scope"], r["state"]) for r in rows] == [("bert", "all", "valid"),
                                                                         ("anna", "school:s1", "valid")]  # fmt: skip
    assert all(r["issued_by"] and len(r["jti"]) == 32 and r["expires_at"] > r["issued_at"] for r in rows)
    table = run([CENTRAL, "token", "list", "--data-dir", d]).stdout
    assert "v4.public" not in table and school.strip() not in table and every.strip() not in table
    assert "school:s1" in table and rows[0]["jti"] in table
    run([CENTRAL, "token", "revoke", rows[1]["jti"], "--data-dir", d])
    states = {json.loads(ln)["technician"]: json.loads(ln)["state"]
              for ln in run([CENTRAL, "token", "list", "--json", "--data-dir", d]).stdout.splitlines()}  # fmt: skip
    assert states == {"anna": "revoked", "bert": "valid"}
    # What the database holds: no token, nowhere.
    db = (central.dir / "central.sqlite3").read_bytes()
    assert school.strip().encode() not in db and every.strip().split(".")[2].encode() not in db
    unknown = run([CENTRAL, "token", "revoke", "no-such-jti", "--data-dir", d], check=False)
    assert unknown.returncode == 2 and "no issued token" in unknown.stderr

"""`schulwart-agent export` and `schulwart-central import` carry an offline school's queue."""

from __future__ import annotations

import json
import re
from pathlib import Path

from .conftest import Database, enroll_agent, start_central, wait_for


def test_export_then_import_twice_delivers_once(tmp_path: Path, central_db: Database) -> None:
    c = start_central(tmp_path / "central", central_db)
    try:
        sid = c.add_school(carrier="Kreis-Offline")
        a = enroll_agent(c, sid, tmp_path / "agent")
    finally:
        c.stop()  # the school goes offline: central is unreachable from here on

    a.start()
    try:
        st = wait_for(lambda: (s := a.status())["outbox"]["last_seq"] >= 2 and s, timeout=15)
        assert st, a.status()
    finally:
        a.stop()
    outbox = a.status()["outbox"]
    assert outbox["acked_seq"] == 0 and outbox["depth"] == outbox["last_seq"] >= 2, outbox
    assert outbox["oldest_unsent_age_s"] is not None and outbox["oldest_unsent_age_s"] >= 0
    last = outbox["last_seq"]
    incidents = json.loads(a.cli("incidents", "--json").stdout)
    inc_ids = {i["id"] for i in (incidents["incidents"] if isinstance(incidents, dict) else incidents)}
    assert inc_ids

    bundle = tmp_path / "school.bundle"
    p = a.cli("export", "--out", str(bundle))
    assert p.returncode == 0, p.stderr
    assert p.stdout == ""
    env = json.loads(bundle.read_bytes())
    assert set(env) >= {"payloadType", "payload", "signatures"}
    assert env["payloadType"].startswith("application/vnd.schulwart.") and len(env["signatures"]) == 1
    assert re.fullmatch(r"[0-9a-f]{64}", env["signatures"][0]["keyid"])

    for _ in range(2):
        p = c.cli("import", str(bundle))
        assert p.returncode == 0, p.stderr
        assert p.stdout == ""

    # a tampered bundle is refused, cleanly
    bad = tmp_path / "tampered.bundle"
    env2 = dict(env)
    env2["payload"] = env["payload"][:-8] + ("AAAAAAA=" if not env["payload"].endswith("AAAAAAA=") else "BBBBBBB=")
    bad.write_text(json.dumps(env2))
    p = c.cli("import", str(bad))
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr, p.stderr

    c.start()
    try:
        row = c.agent_row(sid, json.loads(a.cli("status", "--json").stdout)["identity"]["agent_id"])
        assert row["acked_seq"] == last, row
        seen = [i for i in c.get("/v1/incidents").json()["incidents"] if i["school_id"] == sid]
        assert {i["id"] for i in seen} == inc_ids, seen  # each once
        assert c.school(sid)["open_incidents"] == len(inc_ids)

        # The agent comes back online (central moved: [sync] central_url); it re-sends what was imported.
        # That must be acknowledged, not a conflict: the bundle held exactly the agent's events.
        a.config.write_text(a.config.read_text().replace("[sync]\n", f'[sync]\ncentral_url = "{c.url}"\n'))
        a.start()
        try:
            done = wait_for(lambda: (o := a.status()["outbox"])["acked_seq"] >= last and o["depth"] == 0,
                            timeout=15)
            assert done, a.status()["outbox"]
        finally:
            a.stop()
        s = c.school(sid)
        assert all(i["category"] != "agent" for i in s["incidents"]), s["incidents"]  # no "forked" alert
        assert c.agent_row(sid, row["agent_id"])["acked_seq"] >= last
        r = c.get(f"/v1/schools/{sid}")
        assert r.status == 200
    finally:
        c.stop()

"""docs/protocol.md "Read API" and the HTTP routes of central (docs/central.md)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
import uuid
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .conftest import (
    Central,
    Database,
    Enrolled,
    assert_error,
    event,
    http,
    incident_data,
    only_line,
    pae,
    start_central,
)

STATUSES = {"ok", "degraded", "broken", "silent", "new"}


def test_reads_need_a_bearer_token(central_srv: Central, shared_school: str) -> None:
    for path in ("/v1/schools", f"/v1/schools/{shared_school}", "/v1/incidents"):
        r = http("GET", f"{central_srv.url}{path}")
        assert r.status == 401, (path, r.status)
        assert_error(r)
        r = http("GET", f"{central_srv.url}{path}", token="swc_not-a-real-token")
        assert r.status == 401, (path, r.status)
        assert_error(r)
        r = http("GET", f"{central_srv.url}{path}", headers={"Authorization": f"Basic {central_srv.read_token}"})
        assert r.status == 401, (path, r.status)


def test_schools_list_shape(central_srv: Central) -> None:
    sid = central_srv.add_school(carrier="Kreis-List", name="GS Am Bach")
    r = central_srv.get("/v1/schools")
    assert r.status == 200 and r.ctype.startswith("application/json"), r.body
    schools = r.json()["schools"]
    assert isinstance(schools, list) and schools
    for s in schools:
        for f in ("id", "name", "carrier", "status", "open_incidents", "last_report_at"):
            assert f in s, (f, s)
        assert s["status"] in STATUSES, s
        assert isinstance(s["open_incidents"], int) and not isinstance(s["open_incidents"], bool)
    mine = [s for s in schools if s["id"] == sid]
    assert len(mine) == 1
    assert mine[0]["name"] == "GS Am Bach" and mine[0]["carrier"] == "Kreis-List"
    assert mine[0]["status"] == "new" and mine[0]["open_incidents"] == 0 and mine[0]["last_report_at"] is None


def test_school_detail_and_status_follow_reports(central_srv: Central, school: str) -> None:
    s = central_srv.school(school)
    assert s["status"] == "new" and s["agents"] == [] and s["incidents"] == [] and isinstance(s["devices"], list)
    a = central_srv.enroll(school)
    w, c = f"w-{uuid.uuid4().hex[:6]}", f"c-{uuid.uuid4().hex[:6]}"
    steps = [
        ([event(1)], "ok", 0),
        ([event(2, "incident.opened", incident_data(w, severity="warning", category="wlan",
                                                    subject="ap-3"))], "degraded", 1),
        ([event(3, "incident.opened", incident_data(c, severity="critical", category="cabinet"))], "broken", 2),
        ([event(4, "incident.resolved", {"id": c}), event(5, "incident.resolved", {"id": w})], "ok", 0),
    ]
    for evs, status, n_open in steps:
        r = a.report(evs)
        assert r.status == 200, r.body
        s = central_srv.school(school)
        assert (s["status"], s["open_incidents"]) == (status, n_open), (evs[0]["kind"], s)
    for f in ("id", "name", "carrier", "status", "open_incidents", "last_report_at", "agents", "devices",
              "incidents"):
        assert f in s, f
    assert s["last_report_at"] is not None
    (row,) = s["agents"]
    assert set(row) >= {"agent_id", "acked_seq", "last_report_at", "version"}
    assert row["agent_id"] == a.agent_id and row["acked_seq"] == 5 and row["version"] == "contract-0"
    # the list agrees with the detail
    listed = next(x for x in central_srv.get("/v1/schools").json()["schools"] if x["id"] == school)
    assert (listed["status"], listed["open_incidents"]) == ("ok", 0)


def test_incidents_list(central_srv: Central, school: str) -> None:
    a = central_srv.enroll(school)
    inc = incident_data(f"i-{uuid.uuid4().hex[:6]}", severity="critical", category="device", subject="dev-1",
                        title="Beamer R12 offline")
    assert a.report([event(1, "incident.opened", inc)]).status == 200
    r = central_srv.get("/v1/incidents")
    assert r.status == 200, r.body
    found = [i for i in r.json()["incidents"] if i["id"] == inc["id"]]
    assert len(found) == 1, r.json()
    for f in ("key", "category", "severity", "title", "subject"):
        assert found[0][f] == inc[f], (f, found[0])
    detail = central_srv.school(school)["incidents"]
    assert inc["id"] in [i["id"] for i in detail]


def test_carrier_scoped_token_sees_only_its_carrier(central_srv: Central) -> None:
    ka, kb = f"K-{uuid.uuid4().hex[:6]}", f"K-{uuid.uuid4().hex[:6]}"
    sa, sb = central_srv.add_school(carrier=ka), central_srv.add_school(carrier=kb)
    for sid in (sa, sb):
        ag = central_srv.enroll(sid)
        assert ag.report([event(1, "incident.opened", incident_data(f"i-{sid}"))]).status == 200
    tok = only_line(central_srv.cli("api-token", "create", "--name", "carrier-a", "--carrier", ka))
    schools = central_srv.get("/v1/schools", tok).json()["schools"]
    assert {s["id"] for s in schools} == {sa}
    assert {s["carrier"] for s in schools} == {ka}
    incidents = central_srv.get("/v1/incidents", tok).json()["incidents"]
    assert [i["id"] for i in incidents] == [f"i-{sa}"]
    assert central_srv.get(f"/v1/schools/{sa}", tok).status == 200
    r = central_srv.get(f"/v1/schools/{sb}", tok)
    assert r.status in (403, 404), r.status
    assert_error(r)
    # an unscoped token sees both
    ids = {s["id"] for s in central_srv.get("/v1/schools").json()["schools"]}
    assert {sa, sb} <= ids


def test_unknown_school_and_route_are_json_404(central_srv: Central) -> None:
    assert_error(central_srv.get("/v1/schools/no-such-school"), 404, 404)
    assert_error(central_srv.get("/v1/no-such-route"), 404, 404)


def test_openapi_lists_the_routes(central_srv: Central) -> None:
    r = http("GET", f"{central_srv.url}/v1/openapi.json")
    assert r.status == 200 and r.ctype.startswith("application/json"), r.body[:200]
    doc = r.json()
    paths = doc["paths"]
    norm = {re.sub(r"\{[^}]+\}", "{}", p) for p in paths}
    for route in ("/v1/enroll", "/v1/reports", "/v1/agents/{}/config", "/v1/schools", "/v1/schools/{}",
                  "/v1/incidents", "/metrics", "/healthz"):
        assert route in norm, (route, sorted(paths))
    assert "post" in paths["/v1/reports"] and "post" in paths["/v1/enroll"]


def test_metrics_and_healthz(central_srv: Central) -> None:
    r = http("GET", f"{central_srv.url}/healthz")
    assert r.status == 200
    r = http("GET", f"{central_srv.url}/metrics")
    assert r.status == 200, r.body[:200]
    assert r.ctype.startswith("text/plain"), r.ctype
    text = r.body.decode()
    assert "# TYPE " in text and "# HELP " in text
    samples = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
    assert samples and all(re.match(r"^[a-zA-Z_:][a-zA-Z0-9_:]*(\{.*\})? \S+", ln) for ln in samples), samples[:5]


def _b64any(text: str) -> bytes:
    if set(text) & set("-_"):
        return base64.urlsafe_b64decode(text)
    return base64.b64decode(text, validate=True)


def _signed_get_headers(enrolled: Enrolled, path: str, created: int) -> dict[str, str]:
    """RFC 9421 §2.5 signature base for ("@method" "@path"), written here from the RFC, not the project."""
    kid = hashlib.sha256(enrolled.key.public_key().public_bytes_raw()).hexdigest()
    params = f'("@method" "@path");created={created};keyid="{kid}";alg="ed25519"'
    base = f'"@method": GET\n"@path": {path}\n"@signature-params": {params}'.encode()
    sig = base64.b64encode(enrolled.key.sign(base)).decode()
    return {"Signature-Input": f"sw={params}", "Signature": f"sw=:{sig}:"}


def test_agent_config_needs_the_agents_own_signature(central_srv: Central, enrolled: Enrolled) -> None:
    path = f"/v1/agents/{enrolled.agent_id}/config"
    unsigned = http("GET", central_srv.url + path)
    assert (unsigned.status, unsigned.json()) == (401, {"error": "unsigned_request"})
    stale = http("GET", central_srv.url + path, headers=_signed_get_headers(enrolled, path, int(time.time()) - 3600))
    assert (stale.status, stale.json()) == (401, {"error": "stale_signature"})
    wrong_path = _signed_get_headers(enrolled, "/v1/agents/other/config", int(time.time()))
    forged = http("GET", central_srv.url + path, headers=wrong_path)
    assert (forged.status, forged.json()) == (401, {"error": "bad_signature"})
    fresh = http("GET", central_srv.url + path, headers=_signed_get_headers(enrolled, path, int(time.time())))
    assert fresh.status == 200 and fresh.headers.get("etag"), fresh.body
    tagged = {**_signed_get_headers(enrolled, path, int(time.time())), "If-None-Match": fresh.headers["etag"]}
    again = http("GET", central_srv.url + path, headers=tagged)
    assert again.status == 304 and again.body == b""


def test_agent_config_is_signed_with_the_config_key(central_srv: Central, enrolled: Enrolled) -> None:
    path = f"/v1/agents/{enrolled.agent_id}/config"
    r = http("GET", central_srv.url + path, headers=_signed_get_headers(enrolled, path, int(time.time())))
    assert r.status == 200, r.body
    env = r.json()
    assert set(env) >= {"payloadType", "payload", "signatures"}
    (sig,) = env["signatures"]
    cpk = base64.b64decode(enrolled.answer["central_public_key"])
    tpk = base64.b64decode(enrolled.answer["token_public_key"])
    assert sig["keyid"] == hashlib.sha256(cpk).hexdigest()
    body, raw_sig = _b64any(env["payload"]), _b64any(sig["sig"])
    Ed25519PublicKey.from_public_bytes(cpk).verify(raw_sig, pae(env["payloadType"], body))
    with pytest.raises(InvalidSignature):
        Ed25519PublicKey.from_public_bytes(tpk).verify(raw_sig, pae(env["payloadType"], body))
    assert json.loads(body)["agent_id"] == enrolled.agent_id


def test_silent_school(tmp_path: Path, central_db: Database) -> None:
    c = start_central(tmp_path / "c", central_db, 'silent_window = "1s"\nsilent_check_interval = "1s"\n')
    try:
        sid = c.add_school()
        a = c.enroll(sid)
        assert a.report([event(1)]).status == 200
        assert c.school(sid)["status"] == "ok"
        deadline = time.monotonic() + 8
        while c.school(sid)["status"] != "silent" and time.monotonic() < deadline:
            time.sleep(0.25)
        assert c.school(sid)["status"] == "silent"
        assert a.report([event(2)]).status == 200
        assert c.school(sid)["status"] == "ok"
    finally:
        c.stop()



def test_wrong_methods_are_json_refusals(central_srv: Central) -> None:
    for method, path in [("GET", "/v1/reports"), ("GET", "/v1/enroll"), ("POST", "/v1/schools"),
                         ("DELETE", "/v1/incidents")]:
        assert_error(http(method, f"{central_srv.url}{path}", token=central_srv.read_token))


def test_dashboard_needs_a_staff_session(central_srv: Central) -> None:
    r = http("GET", f"{central_srv.url}/")
    assert r.status in (302, 303, 401) or b'type="password"' in r.body, (r.status, r.body[:300])

"""State payloads, the per-school current view, and the read API with its auth and filters."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aiohttp.test_utils import TestClient

from base.version import version
from central.silence import check_silence
from central.storage.interface import Storage
from central.web.app import create_app
from protocol.schema import make_event

from .conftest import CARRIER_TOKEN, T0, CentralTestServer, FakeAgent, FakeClock, auth, incident


async def post(client: TestClient, body: bytes) -> tuple[int, dict]:
    resp = await client.post("/v1/reports", data=body)
    return resp.status, await resp.json()


async def get(client: TestClient, path: str, token: str | None = None) -> Any:
    resp = await client.get(path, headers=auth(token) if token else auth())
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def open_ids(client: TestClient, school: str = "gs-nord") -> set[str]:
    body = await get(client, f"/v1/incidents?school={school}")
    return {i["id"] for i in body["incidents"]}


def incident_events(agent: FakeAgent) -> list[dict]:
    at = T0
    return [
        make_event(1, at, "incident.opened", incident("i1", "critical")),
        make_event(2, at, "incident.opened", incident("i2", "warning")),
        make_event(3, at + timedelta(minutes=1), "incident.acknowledged", {"id": "i2", "by": "anna"}),
        make_event(4, at + timedelta(minutes=2), "note.added", {"id": "i2", "by": "anna", "text": "Lüfter getauscht"}),
        make_event(5, at + timedelta(minutes=3), "incident.resolved", {"id": "i1"}),
        make_event(6, at + timedelta(minutes=4), "device.seen", {"id": "ap1", "class": "ap", "state": "up"}),
        make_event(7, at + timedelta(minutes=5), "health.snapshot", {"host": {"cpu": 0.5}}),
    ]


async def test_history_builds_the_current_view(client: TestClient, agent: FakeAgent) -> None:
    assert await post(client, agent.sign_events(incident_events(agent))) == (200, {"acked_through": 7})
    detail = await get(client, "/v1/schools/gs-nord")
    assert detail["status"] == "degraded" and detail["open_incidents"] == 1
    by_id = {i["id"]: i for i in detail["incidents"]}
    assert by_id["i1"]["state"] == "resolved" and by_id["i1"]["resolved_at"] == "2024-05-06T08:03:00.000000Z"
    assert by_id["i2"]["acknowledged_by"] == "anna"
    assert by_id["i2"]["notes"] == [{"by": "anna", "text": "Lüfter getauscht", "at": "2024-05-06T08:02:00.000000Z"}]
    assert detail["device_summary"] == {"ap": {"up": 1}}
    assert detail["snapshot"]["data"] == {"host": {"cpu": 0.5}}
    assert detail["agents"] == [
        {
            "agent_id": agent.agent_id,
            "acked_seq": 7,
            "last_report_at": "2024-05-06T08:00:00.000000Z",
            "version": "0.1.0",
            "hostname": "srv",
            "enrolled_at": "2024-05-06T08:00:00.000000Z",
            "revoked": False,
            "revoked_at": None,
            "revoked_by": None,
            "clock_skew_s": 0.0,
            "clock_skew_flagged": False,
                "config_version": None,
                "config_overrides": [],
        }
    ]


async def test_state_wins_while_history_drains(client: TestClient, agent: FakeAgent) -> None:
    # The agent was offline: its present (i2 open, i9 open) arrives before its history.
    state = agent.state(7, [incident("i2", "warning"), incident("i9", "critical")], snapshot={"host": {"cpu": 0.9}})
    assert await post(client, state) == (200, {"acked_through": 0, "state": "applied"})
    assert await open_ids(client) == {"i2", "i9"}
    assert (await get(client, "/v1/schools/gs-nord"))["status"] == "broken"
    # History drains: i1 opened at seq 1 is not open now (the newer state did not list it).
    assert await post(client, agent.sign_events(incident_events(agent)[:3])) == (200, {"acked_through": 3})
    assert await open_ids(client) == {"i2", "i9"}
    assert await post(client, agent.sign_events(incident_events(agent)[3:])) == (200, {"acked_through": 7})
    assert await open_ids(client) == {"i2", "i9"}
    detail = await get(client, "/v1/schools/gs-nord")
    assert detail["snapshot"]["data"] == {"host": {"cpu": 0.9}}  # the state's, same seq as the history's
    # An older state changes nothing; the same one again is stale too.
    assert await post(client, agent.state(5, [])) == (200, {"acked_through": 7, "state": "stale"})
    assert await post(client, state) == (200, {"acked_through": 7, "state": "stale"})
    assert await open_ids(client) == {"i2", "i9"}
    # A newer one resolves what it no longer lists.
    later = agent.state(7, [incident("i9", "critical")], made_at=T0 + timedelta(minutes=1))
    assert await post(client, later) == (200, {"acked_through": 7, "state": "applied"})
    assert await open_ids(client) == {"i9"}


async def test_newer_history_beats_older_state(client: TestClient, agent: FakeAgent) -> None:
    assert await post(client, agent.sign_events(incident_events(agent))) == (200, {"acked_through": 7})
    # A state made at seq 1 (i1 open) arrives late: history at seq 5 already resolved i1.
    assert await post(client, agent.state(1, [incident("i1", "critical")])) == (
        200,
        {"acked_through": 7, "state": "applied"},
    )
    assert await open_ids(client) == {"i2"}


async def test_schools_list_status_and_carrier_scope(
    client: TestClient, store: Storage, clock: FakeClock, agent: FakeAgent
) -> None:
    schools = {s["id"]: s for s in (await get(client, "/v1/schools"))["schools"]}
    assert set(schools) == {"gs-nord", "gs-sued", "gs-ost"}
    assert schools["gs-sued"]["status"] == "new" and schools["gs-nord"]["status"] == "new"
    assert await post(client, agent.report(1, 2)) == (200, {"acked_through": 2})
    schools = {s["id"]: s for s in (await get(client, "/v1/schools"))["schools"]}
    assert schools["gs-nord"]["status"] == "ok"
    assert schools["gs-nord"]["last_report_at"] == "2024-05-06T08:00:00.000000Z"
    assert {"id", "name", "carrier", "status", "open_incidents", "last_report_at"} <= set(schools["gs-nord"])
    clock.advance(timedelta(minutes=16))
    schools = {s["id"]: s for s in (await get(client, "/v1/schools"))["schools"]}
    assert schools["gs-nord"]["status"] == "silent"
    # Carrier filter and carrier-bound token.
    assert [s["id"] for s in (await get(client, "/v1/schools?carrier=Anderdorf"))["schools"]] == ["gs-ost"]
    assert [s["id"] for s in (await get(client, "/v1/schools", CARRIER_TOKEN))["schools"]] == ["gs-nord", "gs-sued"]
    assert (await get(client, "/v1/schools?carrier=Anderdorf", CARRIER_TOKEN))["schools"] == []
    resp = await client.get("/v1/schools/gs-ost", headers=auth(CARRIER_TOKEN))
    assert resp.status == 404


async def test_read_api_needs_a_token(client: TestClient) -> None:
    for path in ("/v1/schools", "/v1/schools/gs-nord", "/v1/incidents"):
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic xyz"}):
            resp = await client.get(path, headers=headers)
            assert resp.status == 401 and await resp.json() == {"error": "unauthorized"}


async def test_incident_filters(client: TestClient, store: Storage, clock: FakeClock, agent: FakeAgent) -> None:
    assert await post(client, agent.sign_events(incident_events(agent))) == (200, {"acked_through": 7})
    assert [i["id"] for i in (await get(client, "/v1/incidents"))["incidents"]] == ["i2"]
    assert [i["id"] for i in (await get(client, "/v1/incidents?state=resolved"))["incidents"]] == ["i1"]
    assert {i["id"] for i in (await get(client, "/v1/incidents?state=all"))["incidents"]} == {"i1", "i2"}
    assert (await get(client, "/v1/incidents?severity=critical"))["incidents"] == []
    assert (await get(client, "/v1/incidents?carrier=Anderdorf"))["incidents"] == []
    assert (await get(client, "/v1/incidents?since=2024-05-06T09:00:00Z"))["incidents"] == []
    assert len((await get(client, "/v1/incidents?since=2024-05-06T07:00:00Z"))["incidents"]) == 1
    item = (await get(client, "/v1/incidents", CARRIER_TOKEN))["incidents"][0]
    assert item["school_id"] == "gs-nord" and item["carrier"] == "Musterstadt" and item["agent_id"] == agent.agent_id
    for bad in ("state=maybe", "severity=huge", "since=yesterday", "limit=0", "limit=x"):
        resp = await client.get(f"/v1/incidents?{bad}", headers=auth())
        assert resp.status == 400, bad
        assert (await resp.json())["error"] in ("bad_query", "bad_time")


async def test_agent_silent_incident(
    client: TestClient, store: Storage, clock: FakeClock, agent: FakeAgent
) -> None:
    window = timedelta(minutes=15)
    assert await post(client, agent.report(1, 1)) == (200, {"acked_through": 1})
    assert await check_silence(store, clock.now(), window) == ([], [])
    clock.advance(timedelta(minutes=15, seconds=1))
    assert await check_silence(store, clock.now(), window) == (["gs-nord"], [])
    assert await check_silence(store, clock.now(), window) == ([], [])  # raised once, not again
    silent = [i for i in (await get(client, "/v1/incidents"))["incidents"] if i["origin"] == "central"]
    assert len(silent) == 1 and silent[0]["category"] == "agent" and silent[0]["state"] == "open"
    # Reporting again resolves it at once.
    assert await post(client, agent.report(2, 2)) == (200, {"acked_through": 2})
    assert [i["state"] for i in (await get(client, "/v1/incidents?state=all"))["incidents"]] == ["resolved"]
    # A school with an agent that never reported is silent after the window too; one without agents never.
    clock.advance(timedelta(minutes=20))
    raised, _ = await check_silence(store, clock.now(), window)
    assert raised == ["gs-nord"]


async def test_silence_monitor_runs_in_the_app(aiohttp_client: Any, config, store, keys, clock, agent) -> None:
    from dataclasses import replace

    fast = replace(config, silent_check_interval=timedelta(milliseconds=20))
    clock.advance(timedelta(hours=1))
    app = create_app(fast, store, keys, clock=clock)
    client = await aiohttp_client(CentralTestServer(app))
    import asyncio

    for _ in range(100):
        incidents = (await get(client, "/v1/incidents"))["incidents"]
        if incidents:
            break
        await asyncio.sleep(0.02)
    assert [i["id"] for i in incidents] == ["central-silent"]


async def test_openapi_describes_every_route(client: TestClient) -> None:
    spec = await (await client.get("/v1/openapi.json")).json()
    routes = {
        (r.method.lower(), r.resource.canonical)
        for r in client.app.router.routes()
        if r.method != "HEAD" and r.resource is not None
    }
    described = {(m, p) for p, ops in spec["paths"].items() for m in ops}
    assert routes == described


async def test_misc_routes(client: TestClient) -> None:
    assert await (await client.get("/healthz")).json() == {"status": "ok", "version": version()}
    page = await client.get("/", allow_redirects=False)
    assert page.status == 302 and page.headers["Location"].startswith("/login")
    page = await client.get("/login")
    assert page.status == 200 and 'type="password"' in await page.text()
    resp = await client.get("/v1/nothing")
    assert resp.status == 404 and await resp.json() == {"error": "not_found"}
    resp = await client.put("/v1/reports")
    assert resp.status == 405 and await resp.json() == {"error": "method_not_allowed"}
    metrics = await client.get("/metrics")
    assert metrics.status == 200 and "schulwart_central_events_stored_total" in await metrics.text()

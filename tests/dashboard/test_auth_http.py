"""Login, sessions, CSRF, the login limit, scoping and bad input, over a real loopback socket."""

from __future__ import annotations

import logging

import pytest
from aiohttp.test_utils import TestClient

from central.storage.interface import Storage
from tests.central.conftest import FakeClock, enroll
from tests.dashboard.conftest import PASSWORD, csrf_of, login

pytestmark = pytest.mark.usefixtures("web")


async def test_pages_need_a_login_and_the_api_says_401(web: TestClient) -> None:
    resp = await web.get("/incidents?state=all", allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"].startswith("/login?next=/incidents")
    resp = await web.get("/v1/schools")
    assert resp.status == 401 and (await resp.json())["error"] == "unauthorized"


async def test_login_sets_a_strict_httponly_cookie_and_logout_ends_the_session(
    web: TestClient, store: Storage, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    resp = await login(web)
    assert resp.status == 302 and resp.headers["Location"] == "/"
    cookie = resp.headers["Set-Cookie"]
    assert "schulwart_session=" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert "Secure" not in cookie  # plain http on loopback; behind TLS the flag is set
    page = await web.get("/")
    assert page.status == 200 and "GS Nord" in await page.text()
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    session_id = web.session.cookie_jar.filter_cookies(web.make_url("/"))["schulwart_session"].value
    # Logout without the CSRF token is refused; with it, the session is gone server-side.
    assert (await web.post("/logout", data={}, allow_redirects=False)).status == 403
    token = csrf_of(await page.text())
    resp = await web.post("/logout", data={"csrf": token}, allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"] == "/login"
    web.session.cookie_jar.update_cookies({"schulwart_session": session_id})  # replaying the old cookie
    assert (await web.get("/", allow_redirects=False)).status == 302
    assert PASSWORD not in caplog.text and "login user=hotline" in caplog.text


async def test_five_wrong_passwords_then_even_the_right_one_waits(web: TestClient) -> None:
    for _ in range(5):
        resp = await login(web, password="falsch-falsch")
        assert resp.status == 401 and "Benutzername oder Passwort falsch" in await resp.text()
    resp = await login(web)  # the right password, but this address and user are over the limit
    assert resp.status == 429 and "Zu viele Fehlversuche" in await resp.text()


async def test_unknown_user_is_refused_like_a_wrong_password(web: TestClient) -> None:
    resp = await login(web, name="niemand")
    assert resp.status == 401


async def test_login_without_its_csrf_token_is_refused(web: TestClient) -> None:
    resp = await web.post("/login", data={"name": "hotline", "password": PASSWORD}, allow_redirects=False)
    assert resp.status == 403 and "Formular ist abgelaufen" in await resp.text()


async def test_next_never_leaves_the_site(web: TestClient) -> None:
    page = await web.get("/login")
    token = csrf_of(await page.text())
    resp = await web.post("/login", data={"csrf": token, "name": "hotline", "password": PASSWORD,
                                          "next": "//evil.example/"}, allow_redirects=False)  # fmt: skip
    assert resp.headers["Location"] == "/"


async def test_actions_need_the_session_s_csrf_token(web: TestClient, store: Storage) -> None:
    at = "2024-05-06T08:00:00.000000Z"
    await store.raise_central_incident(
        "gs-nord", "central-silent", "agent", "warning", "Agent silent", None, at, code="central.silent",
        params={"minutes": 15},
    )
    await login(web)
    form = {"school": "gs-nord", "origin": "central", "agent": "", "incident": "central-silent", "action": "ack"}
    resp = await web.post("/incidents/action", data=form, allow_redirects=False)
    assert resp.status == 403 and "text/html" in resp.headers["Content-Type"]
    row = await store.get_incident("gs-nord", "central", "", "central-silent")
    assert row is not None and row["acknowledged_by"] is None
    token = csrf_of(await (await web.get("/incidents")).text())
    form["csrf"], form["next"] = token, "/incidents"
    resp = await web.post("/incidents/action", data=form, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/incidents"
    row = await store.get_incident("gs-nord", "central", "", "central-silent")
    assert row is not None and row["acknowledged_by"] == "hotline"
    page = await (await web.get("/incidents")).text()
    assert "Agent meldet sich nicht: seit über 15 Min. kein Bericht" in page
    bad = await web.post("/incidents/action", data={**form, "action": "note", "text": " "})
    assert bad.status == 400 and "Ungültige Eingabe" in await bad.text()


async def test_a_carrier_user_cannot_act_on_or_read_another_carrier(web: TestClient, store: Storage) -> None:
    await store.raise_central_incident("gs-ost", "central-silent", "agent", "warning", "Agent silent", None,
                                       "2024-05-06T08:00:00.000000Z")  # fmt: skip
    await login(web, "musterstadt")
    page = await web.get("/")
    text = await page.text()
    assert "GS Nord" in text and "GS Ost" not in text
    assert (await web.get("/schools/gs-ost")).status == 404
    token = csrf_of(text)
    form = {"school": "gs-ost", "origin": "central", "agent": "", "incident": "central-silent", "action": "ack",
            "csrf": token}  # fmt: skip
    assert (await web.post("/incidents/action", data=form, allow_redirects=False)).status == 404
    row = await store.get_incident("gs-ost", "central", "", "central-silent")
    assert row is not None and row["acknowledged_by"] is None
    api = await web.get("/v1/incidents?state=all")
    assert api.status == 200 and (await api.json())["incidents"] == []
    assert (await web.get("/v1/schools/gs-ost")).status == 404


@pytest.mark.parametrize(
    "path",
    [
        "/?status=kaputt",
        "/?sort=nonsense",
        "/incidents?since=gestern",
        "/incidents?severity=x",
        "/schools/gs-nord?days=0",
        "/schools/gs-nord?days=zwei",
    ],
)
async def test_bad_input_on_pages_is_a_page_with_a_message(web: TestClient, path: str) -> None:
    await login(web)
    resp = await web.get(path)
    text = await resp.text()
    assert resp.status == 400 and resp.headers["Content-Type"].startswith("text/html")
    assert 'id="error-message"' in text and "Traceback" not in text


async def test_language_by_accept_language_and_by_switch(web: TestClient) -> None:
    await login(web)
    assert '<html lang="de">' in await (await web.get("/")).text()
    assert '<html lang="en">' in await (await web.get("/", headers={"Accept-Language": "en-GB,en;q=0.8"})).text()
    resp = await web.get("/?lang=en")
    assert '<html lang="en">' in await resp.text() and "schulwart_lang=en" in resp.headers["Set-Cookie"]


async def test_the_live_fragment_is_only_the_table(web: TestClient) -> None:
    await login(web)
    text = await (await web.get("/?fragment=1")).text()
    assert 'id="overview"' in text and "<html" not in text


async def test_a_school_page_shows_aps_and_cabinets_as_an_agent_sends_them(
    web: TestClient, store: Storage, clock: FakeClock
) -> None:
    """With names not shared, the snapshot lists APs and cabinets by pseudonym and without names;
    the page must still render (it answered 500 once an agent's first full snapshot arrived)."""
    agent = await enroll(web, store, clock)
    snapshot = {
        "wlan": {"aps": [{"id": "d-0f3a", "state": "connected", "num_sta": 6}, {"id": "d-77b1", "state": 0}]},
        "host": {"uptime_s": "soon", "disk": []},
        "cabinets": {"cabinets": {"d-2a32": {"power_w": 3.0, "in_window": False, "room": "Raum 12"}}},
    }
    resp = await web.post("/v1/reports", data=agent.state(0, snapshot=snapshot))
    assert resp.status == 200, await resp.text()
    assert (await login(web)).status == 302
    page = await web.get("/schools/gs-nord")
    text = await page.text()
    assert page.status == 200, text[:300]
    assert "d-0f3a" in text and "d-77b1" in text and "d-2a32" in text

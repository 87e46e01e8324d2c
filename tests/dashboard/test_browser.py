"""The staff dashboard in real headless Chromium against a real central process filled over HTTP.

Screenshots (German) go to test-artifacts/: dashboard-overview.png, dashboard-school.png,
dashboard-incidents.png and dashboard-phone.png.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.error import HTTPError
from urllib.request import Request, urlopen

import pytest

from tests.agent.procs import central_available
from tests.browser import ARTIFACTS, browser_page
from tests.dashboard.world import PASSWORD, XSS, World, start_world

pytestmark = [
    pytest.mark.skipif(not central_available(), reason="schulwart-central is not built"),
    pytest.mark.timeout(240),
]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    w = start_world(tmp_path_factory.mktemp("dashboard"))
    yield w
    w.close()


def _login(page: Any, url: str, name: str, password: str = PASSWORD) -> None:
    # A German hotline's browser (Chromium's own default would ask for English).
    page.set_extra_http_headers({"Accept-Language": "de-DE,de;q=0.9,en;q=0.5"})
    page.goto(url + "/")
    page.wait_for_selector("#login")
    page.fill("#name", name)
    page.fill("#password", password)
    page.click("#login button[type=submit]")


def _api(url: str, cookie: str) -> tuple[int, dict[str, Any]]:
    request = Request(url, headers={"Cookie": cookie})
    try:
        with urlopen(request, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_staff_day(world: World, tmp_path: Path) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    with browser_page(tmp_path) as page:
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.set_viewport_size({"width": 1360, "height": 900})
        _login(page, world.url, "hotline")
        page.wait_for_selector("#overview")
        assert page.get_attribute("html", "lang") == "de"
        # Worst first: the broken school's carrier group first, the broken school its first row.
        statuses = page.eval_on_selector_all("tr.school", "rows => rows.map(r => r.dataset.status)")
        ids = page.eval_on_selector_all("tr.school", "rows => rows.map(r => r.dataset.schoolId)")
        assert ids[0] == "gs-lindenweg" and statuses[0] == "broken", ids
        assert set(ids) == {"gs-lindenweg", "gs-am-park", "gs-nord", "xss", "gs-neu"}
        assert statuses[ids.index("gs-am-park")] == "degraded" and statuses[ids.index("gs-neu")] == "new"
        assert page.text_content("#critical-count") == "1"
        # The XSS school's name is text; no script ran (neither the img handler nor the script tag).
        row = page.locator("tr[data-school-id='xss'] td.name a")
        assert row.text_content() == f"GS {XSS}"
        assert page.evaluate("window.__xss") is None
        page.screenshot(path=str(ARTIFACTS / "dashboard-overview.png"), full_page=True)

        # Filter by carrier: only Kreis A's schools remain.
        page.select_option("#filter-carrier", "Kreis A")
        page.wait_for_url("**carrier=Kreis+A**")
        ids = page.eval_on_selector_all("tr.school", "rows => rows.map(r => r.dataset.schoolId)")
        assert sorted(ids) == ["gs-am-park", "gs-nord", "xss"]

        # Open a school: its cabinet chart and the night verdicts, titles in German.
        page.goto(world.url + "/")
        page.click("tr[data-school-id='gs-lindenweg'] td.name a")
        page.wait_for_selector("#school-name")
        assert page.text_content("#school-name") == "GS Lindenweg"
        assert page.locator("article.cabinet svg.chart polyline").count() >= 1
        verdicts = page.eval_on_selector_all("td.night", "cells => cells.map(c => c.textContent)")
        # Oldest night first, like the chart: last night is the rightmost cell.
        assert verdicts[-1] == "kein Strom im Ladefenster", verdicts
        assert "geladen" in verdicts[:-1]
        titles = page.eval_on_selector_all("#incidents .title", "t => t.map(x => x.textContent)")
        assert "Schrank 1 (Raum 104): zu heiß (48,5 °C)" in titles, titles
        hot = page.locator("li[data-incident-id='inc-hot']")
        assert "Lüfter dreht nicht, Ersatz bestellt" in hot.text_content()
        assert "A. Weber" in hot.locator(".ack").text_content()
        assert "seit 45 Tage" not in page.content() and "uptime_s" not in page.content()
        page.screenshot(path=str(ARTIFACTS / "dashboard-school.png"), full_page=True)

        # Acknowledge from central (another incident) and add a note; both shown with the staff name.
        page.goto(world.url + "/schools/gs-am-park")
        item = page.locator("li[data-incident-id='inc-ap']")
        assert item.locator(".title").text_content() == "Access Point AP-Flur-2 ausgefallen (Controller: disconnected)"
        item.locator(".ack-button").click()
        page.wait_for_selector("li[data-incident-id='inc-ap'] .ack")
        assert "hotline" in page.locator("li[data-incident-id='inc-ap'] .ack").text_content()
        page.locator("li[data-incident-id='inc-ap'] .note-input").fill("Hausmeister informiert <b>jetzt</b>")
        page.locator("li[data-incident-id='inc-ap'] .note-button").click()
        page.wait_for_selector("li[data-incident-id='inc-ap'] .step.src-central q")
        steps = page.locator("li[data-incident-id='inc-ap'] ol.timeline").text_content()
        assert "übernommen (Zentrale) \u2013 hotline" in steps and "Hausmeister informiert <b>jetzt</b>" in steps

        # Incidents across schools: the note is there; open ones by default.
        page.goto(world.url + "/incidents")
        page.wait_for_selector("#incidents")
        listed = page.eval_on_selector_all("#incidents li.incident", "l => l.map(x => x.dataset.incidentId)")
        assert {"inc-ap", "inc-hot", "inc-xss"} <= set(listed) and "inc-old" not in listed
        assert page.evaluate("window.__xss") is None
        page.screenshot(path=str(ARTIFACTS / "dashboard-incidents.png"), full_page=True)
        page.goto(world.url + "/incidents?state=resolved&category=cabinet")
        listed = page.eval_on_selector_all("#incidents li.incident", "l => l.map(x => x.dataset.incidentId)")
        assert listed == ["inc-old"]

        # A phone: the overview still fits.
        page.set_viewport_size({"width": 390, "height": 844})
        page.goto(world.url + "/")
        page.wait_for_selector("#overview")
        page.screenshot(path=str(ARTIFACTS / "dashboard-phone.png"), full_page=True)
        assert page.evaluate("document.documentElement.scrollWidth") <= 400

        # Log out: the session is over, pages lead to the login form again.
        page.click("#logout")
        page.wait_for_selector("#login")
        page.goto(world.url + "/incidents")
        page.wait_for_selector("#login")
        assert errors == [], errors


def test_carrier_user_sees_only_its_schools(world: World, tmp_path: Path) -> None:
    with browser_page(tmp_path) as page:
        _login(page, world.url, "kreis-a")
        page.wait_for_selector("#overview")
        ids = page.eval_on_selector_all("tr.school", "rows => rows.map(r => r.dataset.schoolId)")
        assert sorted(ids) == ["gs-am-park", "gs-nord", "xss"]
        response = page.goto(world.url + "/schools/gs-lindenweg")
        assert response is not None and response.status == 404
        assert "gehört nicht zu Ihrem Schulträger" in page.text_content("#error-message")
        cookie = "; ".join(f"{c['name']}={c['value']}" for c in page.context.cookies())
        status, body = _api(world.url + "/v1/schools/gs-lindenweg", cookie)
        assert status == 404 and body["error"] == "not_found"
        status, body = _api(world.url + "/v1/schools", cookie)
        assert status == 200 and sorted(s["id"] for s in body["schools"]) == ["gs-am-park", "gs-nord", "xss"]
        status, body = _api(world.url + "/v1/incidents?state=all", cookie)
        assert status == 200 and {i["school_id"] for i in body["incidents"]} <= {"gs-am-park", "gs-nord", "xss"}


def test_english_by_switch(world: World, tmp_path: Path) -> None:
    with browser_page(tmp_path) as page:
        _login(page, world.url, "hotline")
        page.wait_for_selector("#overview")
        page.goto(world.url + "/schools/gs-lindenweg?lang=en")
        assert page.get_attribute("html", "lang") == "en"
        titles = page.eval_on_selector_all("#incidents .title", "t => t.map(x => x.textContent)")
        assert "Cabinet Schrank 1 (Raum 104) over temperature (48.5 °C)" in titles
        page.goto(world.url + "/")  # the choice is remembered
        assert page.get_attribute("html", "lang") == "en"

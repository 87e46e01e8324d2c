"""The technician page in real headless Chromium against a real agent and central."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from urllib.request import Request, urlopen

import pytest

from tests.agent.procs import CENTRAL, central_available, run, wait_for
from tests.browser import ARTIFACTS, browser_page
from tests.simworld import sim_world
from tests.techapi.test_on_site import Site

pytestmark = [
    pytest.mark.skipif(not central_available(), reason="schulwart-central is not built"),
    pytest.mark.timeout(180),
]


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    s = Site(tmp_path)
    yield s
    s.close()


def test_login_see_incidents_acknowledge_and_central_hears_it(site: Site, tmp_path: Path) -> None:
    token = site.token("school:s1", name="A. Weber")
    with browser_page(tmp_path) as page:
        dialogs: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto(site.url + "/")
        page.fill("#token-input", token)
        page.click("#login button[type=submit]")
        page.wait_for_selector("body[data-loaded='1']", timeout=15000)
        assert page.text_content("#school-name") == "GS Nord"
        page.wait_for_selector("#incidents li.incident", timeout=20000)
        item = page.locator("#incidents li.incident").first
        incident_id = item.get_attribute("data-incident-id")
        title = item.locator(".title").text_content()
        assert title
        item.locator(".note-input").fill("Vor Ort geprüft")
        item.locator(".ack-button").click()
        page.wait_for_selector(f"li[data-incident-id='{incident_id}'] .ack", timeout=15000)
        assert "A. Weber" in page.locator(f"li[data-incident-id='{incident_id}'] .ack").text_content()
        # The token lives in this tab's session storage, never in a cookie.
        assert page.evaluate("sessionStorage.getItem('schulwart.token')") == token
        assert page.context.cookies() == []
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "technician-page.png"), full_page=True)
        assert dialogs == []

    def central_has_ack() -> bool:
        rows = [i for i in site.central.school()["incidents"] if i["id"] == incident_id]
        return bool(rows) and rows[0]["acknowledged_by"] == "A. Weber"

    wait_for(central_has_ack, 20, "the ack at central after the next sync")


def test_a_wrong_token_is_shown_as_refused(site: Site, tmp_path: Path) -> None:
    with browser_page(tmp_path) as page:
        page.goto(site.url + "/")
        page.fill("#token-input", site.token("school:s2"))
        page.click("#login button[type=submit]")
        page.wait_for_selector("#login-error:has-text('Token abgelehnt: scope')", timeout=15000)
        assert page.is_visible("#login")
        assert page.evaluate("sessionStorage.getItem('schulwart.token')") is None


XSS = "<img src=x onerror=alert(1)>"


def test_simulated_school_on_the_page_with_a_hostile_device_name(tmp_path: Path) -> None:
    tag = "b" + secrets.token_hex(3)
    sim_args = ["--receiver-name", XSS, "--faults", "cabinet-no-power:1"]
    with sim_world(tmp_path, tag, sim_args) as world:
        token = run(
            [CENTRAL, "token", "issue", "--technician", "A. Weber", "--scope", f"school:{tag}",
             "--data-dir", str(world["central_dir"])]
        ).stdout.strip()  # fmt: skip
        with browser_page(tmp_path) as page:
            dialogs: list[str] = []
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto(world["agent_url"] + "/")
            page.fill("#token-input", token)
            page.click("#login button[type=submit]")
            # The simulated cabinet without power becomes an incident on the page.
            cabinet = page.locator("#incidents li.incident", has_text="Ladeschrank 1")
            cabinet.wait_for(timeout=30000)
            # The hostile name arrives over real mDNS and is shown as text.
            page.locator("#devices td", has_text=XSS).first.wait_for(timeout=30000)
            assert page.locator("#devices img").count() == 0
            assert page.locator("img").count() == 0
            # APs and cabinets from the sim's controller and meters.
            page.locator("#aps td", has_text="AP").first.wait_for(timeout=15000)
            page.locator("#cabinets td", has_text="Ladeschrank 2").first.wait_for(timeout=15000)
            incident_id = cabinet.get_attribute("data-incident-id")
            cabinet.locator(".ack-button").click()
            page.locator(f"li[data-incident-id='{incident_id}'] .ack").wait_for(timeout=15000)
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "technician-page-sim.png"), full_page=True)
            assert dialogs == [], "a script from a device name ran"

        def central_has_ack() -> bool:
            req = Request(
                f"{world['central']}/v1/schools/{tag}", headers={"Authorization": f"Bearer {world['token']}"}
            )
            with urlopen(req, timeout=5) as resp:
                incidents = json.loads(resp.read())["incidents"]
            return any(i["id"] == incident_id and i["acknowledged_by"] == "A. Weber" for i in incidents)

        wait_for(central_has_ack, 20, "the ack at central after the next sync")


def test_an_ack_and_a_note_at_central_show_on_the_technician_page(tmp_path: Path) -> None:
    import asyncio
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    from central.storage.sqlite import SqliteStore
    from central.timestamps import iso
    from tests.agent.procs import start_agent, write_config
    from tests.techapi.test_on_site import CONFIG

    site = Site(tmp_path / "rig")
    site.agent.terminate()  # again, fetching central's config every half second
    fast = CONFIG.replace("[sync]\n", "[sync]\nconfig_interval = 0.5\n")
    site.agent = start_agent(site.data, write_config(tmp_path / "fast.toml", fast), tmp_path / "agent2.log")
    site.url = f"http://127.0.0.1:{site.agent.wait_listening()}"
    try:
        token = site.token("school:s1", name="A. Weber")
        incident = _first_incident(site, token)
        at = datetime.now(UTC).replace(second=0, microsecond=0)
        shown = at.astimezone(ZoneInfo("Europe/Berlin")).strftime("%H:%M")  # the browser below runs in Berlin

        async def hotline() -> None:
            store = SqliteStore.open(next(site.central.dir.glob("*.sqlite3")))
            try:
                assert await store.staff_acknowledge("s1", "agent", site.agent_id, incident, "anna", iso(at))
                assert await store.staff_note("s1", "agent", site.agent_id, incident, "anna", XSS, iso(at))
            finally:
                await store.close()

        asyncio.run(hotline())

        def carried() -> bool:
            _status, body = site.call("/api/v1/incidents", token)
            rows = [i for i in body.get("incidents", []) if i["id"] == incident]
            return bool(rows) and [s["action"] for s in rows[0]["central"]] == ["acknowledged", "note"]

        wait_for(carried, 20, "central's ack and note at the agent")
        with browser_page(tmp_path, timezone_id="Europe/Berlin") as page:
            page.goto(site.url + "/")
            page.fill("#token-input", token)
            page.click("#login button[type=submit]")
            item = f"li[data-incident-id='{incident}']"
            page.wait_for_selector(f"{item} .ack.central", timeout=15000)
            ack = page.locator(f"{item} .ack.central").text_content() or ""
            assert ack == f"quittiert von der Hotline, {shown} (anna)", ack
            note = page.locator(f"{item} .note.central").text_content() or ""
            assert note.endswith(XSS), note  # the hostile note is text ...
            assert page.locator(f"{item} img").count() == 0  # ... never an element
    finally:
        site.close()


def _first_incident(site: Site, token: str) -> str:
    found: list[str] = []

    def has_one() -> bool:
        status, body = site.call("/api/v1/incidents", token)
        found[:] = [i["id"] for i in body.get("incidents", [])] if status == 200 else []
        return bool(found)

    wait_for(has_one, 20, "an open incident at the agent")
    return found[0]

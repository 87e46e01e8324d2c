"""The real deployments as scenarios: their published sizes, the command line, and zweckverband end to end.

The end-to-end test is marked slow (a few minutes, 87 processes on two cores): it runs
``schulwart-sim demo --scenario zweckverband`` and checks through central's read API that
all 43 schools of the 18 carriers report, that each carrier's token sees exactly its own
schools and incidents, and that the timeline's faults (an AP down, a school whose uplink is
cut) appear at central and clear again.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.error import HTTPError
from urllib.request import Request, urlopen

import psutil
import pytest

from sim.demo_block import parse_block, read_block
from sim.scenarios import MAX_KEY_LENGTH, SCENARIOS, get, spread
from tests.browser import ARTIFACTS, browser_page
from tests.sim_demo.test_demo import _descendants, _namespaces
from tests.site.conftest import REPO, VENV_BIN

SIM = str(VENV_BIN / "schulwart-sim")


# -- the published sizes -------------------------------------------------------------------------------


def test_scenarios_keep_the_published_sizes() -> None:
    landkreis = get("landkreis").totals()
    assert (landkreis["tablets"], landkreis["cabinets"], landkreis["carriers"]) == (2400, 138, 8)
    assert landkreis["take_home_sites"] >= 3
    assert len({s.school_id for s in get("landkreis").sites if s.take_home}) == 3  # the three pilot schools
    zweckverband = get("zweckverband").totals()
    assert (zweckverband["schools"], zweckverband["carriers"]) == (43, 18)
    assert sum(c.startswith("Schulverband") for c in get("zweckverband").carriers) == 4
    stadt = get("stadt")
    assert stadt.totals()["schools"] == 5 and len(stadt.carriers) == 1
    assert sorted(s.name.split()[0] for s in stadt.schools) == ["GS", "GS", "GS", "Regionalschule", "Regionalschule"]
    towns = {c: [s for s in get("regionalverband").sites if get("regionalverband").school_of(s.key).carrier == c]
             for c in get("regionalverband").carriers}  # fmt: skip
    assert [(len(sites), sum(s.tablets for s in sites)) for sites in towns.values()] == [(3, 257), (2, 273), (3, 170)]
    kleinblittersdorf = [s for s in get("regionalverband").schools if "Kleinblittersdorf" in s.carrier]
    assert sorted(len(s.sites) for s in kleinblittersdorf) == [1, 2]  # 2 schools + 1 Dependance


def test_every_scenario_is_consistent() -> None:
    for name in SCENARIOS:
        scenario = get(name)
        keys = [s.key for s in scenario.sites]
        assert len(keys) == len(set(keys)), name
        assert max(len(k) for k in keys) <= MAX_KEY_LENGTH, name
        for key in [*scenario.start_faults, *(step.site for step in scenario.timeline)]:
            scenario.school_of(key)  # KeyError if a fault names no site
        silent = next(step.site for step in scenario.timeline if step.fault == "uplink-down")
        assert len(scenario.school_of(silent).sites) == 1, "a school with a second site would not fall silent"
        assert all(s.cabinets >= 1 and s.tablets >= s.cabinets and s.aps >= 1 for s in scenario.sites), name


def test_spread() -> None:
    assert spread(2400, 138)[:2] == [18, 18] and sum(spread(2400, 138)) == 2400
    assert max(spread(7, 3)) - min(spread(7, 3)) == 1
    with pytest.raises(ValueError):
        spread(1, 0)


# -- the command line ----------------------------------------------------------------------------------


def test_scenario_list_names_each_with_its_size() -> None:
    done = subprocess.run([SIM, "demo", "--scenario", "list"], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert [line.split("\t")[0] for line in lines] == list(SCENARIOS)
    landkreis = next(line for line in lines if line.startswith("landkreis"))
    assert "2,400 tablets in 138 cabinets" in landkreis and "3 take-home (1:1) sites" in landkreis


@pytest.mark.parametrize("args", [["--scenario", "kreisfreie-stadt"], ["--scenario", "stadt", "--schools", "2"]])
def test_bad_scenario_input_is_one_line_and_exit_2(args: list[str]) -> None:
    done = subprocess.run([SIM, "demo", *args], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


# -- zweckverband end to end ----------------------------------------------------------------------------


def _get(url: str, token: str) -> Any:
    with urlopen(Request(url, headers={"Authorization": f"Bearer {token}"}), timeout=10) as resp:
        return json.loads(resp.read())


def _status(url: str, token: str) -> int:
    try:
        with urlopen(Request(url, headers={"Authorization": f"Bearer {token}"}), timeout=10) as resp:
            return int(resp.status)
    except HTTPError as exc:
        return exc.code


def _until(what: str, check: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f}s")
        time.sleep(2)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_zweckverband_end_to_end(tmp_path: Path) -> None:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("a scenario needs root and ip for its network namespaces")
    scenario = get("zweckverband")
    log_path = tmp_path / "demo.log"
    proc = subprocess.Popen(
        [SIM, "demo", "--scenario", "zweckverband", "--port", "0", "--duration", "600",
         "--data-dir", str(tmp_path / "data")],
        stdout=subprocess.PIPE, stderr=log_path.open("wb"), text=True, cwd=REPO,
    )  # fmt: skip
    children: list[psutil.Process] = []
    namespaces: set[str] = set()
    try:
        block = parse_block(read_block(proc, timeout=600))
        text = block.text
        children = _descendants(proc.pid)
        namespaces = {n for n in _namespaces() if n.startswith("swsc-")}
        base, admin = block.dashboard, block.api_token
        carrier_tokens = dict(re.findall(r"^carrier (.+): api token (\S+), technician token \S+$", text, re.M))
        assert set(carrier_tokens) == set(scenario.carriers) and len(carrier_tokens) == 18
        assert len(namespaces) >= 43

        # All 43 schools of the 18 carriers report at central.
        schools = {s["id"]: s for s in _get(f"{base}v1/schools", admin)["schools"]}
        expected = {s.id: s.carrier for s in scenario.schools}
        assert {sid: s["carrier"] for sid, s in schools.items()} == expected
        assert all(s["last_report_at"] for s in schools.values()), schools

        # Each carrier's token sees exactly its own schools and incidents, and no other school by id.
        other = {c: next(sid for sid, carrier in expected.items() if carrier != c) for c in carrier_tokens}
        for carrier, token in carrier_tokens.items():
            seen = {s["id"] for s in _get(f"{base}v1/schools", token)["schools"]}
            assert seen == {sid for sid, c in expected.items() if c == carrier}, carrier
            incidents = _get(f"{base}v1/incidents?state=all", token)["incidents"]
            assert {i["school_id"] for i in incidents} <= seen, carrier
            assert _status(f"{base}v1/schools/{other[carrier]}", token) in (403, 404)

        # The timeline: an AP down at gs-bergstedt-1 and the uplink of gs-auenbach-1 cut, both from +20 s.
        def ap_incidents(state: str) -> list[dict[str, Any]]:
            found = _get(f"{base}v1/incidents?state={state}&school=gs-bergstedt-1", admin)["incidents"]
            # Only the outage itself: after it the AP's probe window still holds the lost probes,
            # so the agent calls it degraded (loss) for a few minutes more, under another key.
            return [i for i in found if i["key"].startswith("ap-down:")]

        def status(sid: str) -> str:
            return str(_get(f"{base}v1/schools/{sid}", admin)["status"])

        _until("the AP fault opens an incident at central", lambda: ap_incidents("open"), 200)
        def central_incidents() -> list[dict[str, Any]]:
            found = _get(f"{base}v1/incidents?state=open&school=gs-auenbach-1", admin)["incidents"]
            return [i for i in found if i["origin"] == "central"]

        _until("gs-auenbach-1 is silent at central", lambda: status("gs-auenbach-1") == "silent", 200)
        # Only the school without uplink: the others' snapshots keep coming while nothing else changes.
        listed = _get(f"{base}v1/schools", admin)["schools"]
        assert [s["id"] for s in listed if s["status"] == "silent"] == ["gs-auenbach-1"], listed
        # The silence check runs every 10 s: the incident follows the status within one pass.
        silent = _until("central's silent incident for gs-auenbach-1", central_incidents, 30)
        assert "silent" in silent[0]["title"].lower()
        # The hotline's overview at that moment: all 43 schools, the silent one among them.
        with browser_page(tmp_path) as page:
            rows = _overview(page, base, block.login)
            assert sorted(sid for sid, _ in rows) == sorted(expected)
            assert ("gs-auenbach-1", "silent") in rows, rows
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "scenario-zweckverband-overview.png"), full_page=True)
        # Both clear once the sim's AP answers again (+140 s) and the uplink is back (+170 s).
        _until("the AP incident resolves", lambda: not ap_incidents("open") and ap_incidents("resolved"), 240)
        _until("gs-auenbach-1 reports again", lambda: status("gs-auenbach-1") != "silent", 240)
        _until("central's silent incident resolves", lambda: not central_incidents(), 30)
        # Its week offline, in miniature: what the agent saw meanwhile arrived afterwards, in order.
        agents = _get(f"{base}v1/schools/gs-auenbach-1", admin)["agents"]
        assert agents and agents[0]["acked_seq"] > 0
    finally:
        if proc.poll() is None:
            proc.terminate()
        code = proc.wait(timeout=120)
    log = log_path.read_text(errors="replace")
    assert code == 0, log[-3000:]
    assert children and not [p.pid for p in children if p.is_running()], log[-3000:]
    assert not namespaces & _namespaces(), "namespaces left behind"


# -- each scenario on the staff dashboard ----------------------------------------------------------------


def _overview(page: Any, dashboard: str, login: tuple[str, str]) -> list[tuple[str, str]]:
    """Log in as the scenario's staff user; (school id, status) per overview row, in the page's order."""
    page.set_extra_http_headers({"Accept-Language": "de-DE,de;q=0.9"})
    page.set_viewport_size({"width": 1360, "height": 900})
    page.goto(dashboard)
    page.wait_for_selector("#login")
    page.fill("#name", login[0])
    page.fill("#password", login[1])
    page.click("#login button[type=submit]")
    page.wait_for_selector("#overview")
    rows = page.eval_on_selector_all("tr.school", "rows => rows.map(r => [r.dataset.schoolId, r.dataset.status])")
    return [(str(sid), str(status)) for sid, status in rows]


def _until_tablets_shown(page: Any, schools: set[str], timeout: float) -> None:
    """Reload the overview until these schools show tablets seen (today / usual), as the inventories arrive."""
    deadline = time.monotonic() + timeout
    script = """(rows, ids) => rows.filter(r => ids.includes(r.dataset.schoolId)
                                && !r.querySelector('td:nth-child(6)').textContent.includes('/')).length"""
    while page.eval_on_selector_all("tr.school", script, sorted(schools)):
        if time.monotonic() >= deadline:
            raise AssertionError(f"a school shows no tablets after {timeout:.0f}s")
        page.wait_for_timeout(3000)
        page.reload()
        page.wait_for_selector("#overview")


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("name", ["stadt", "regionalverband", "landkreis"])
def test_scenario_shows_every_school_on_the_dashboard(name: str, tmp_path: Path) -> None:
    """The whole deployment comes up, and the hotline's overview lists each of its schools, once.

    Leaves test-artifacts/scenario-NAME-overview.png: the overview as the hotline sees that deployment.
    """
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("a scenario needs root and ip for its network namespaces")
    scenario = get(name)
    log_path = tmp_path / "demo.log"
    proc = subprocess.Popen(
        [SIM, "demo", "--scenario", name, "--port", "0", "--duration", "600", "--data-dir", str(tmp_path / "data")],
        stdout=subprocess.PIPE, stderr=log_path.open("wb"), text=True, cwd=REPO,
    )  # fmt: skip
    children: list[psutil.Process] = []
    try:
        block = parse_block(read_block(proc, timeout=600))
        children = _descendants(proc.pid)
        expected = {s.id for s in scenario.schools}
        listed = _get(f"{block.dashboard}v1/schools", block.api_token)["schools"]
        assert {s["id"] for s in listed} == expected
        assert all(s["last_report_at"] for s in listed), [s["id"] for s in listed if not s["last_report_at"]]
        with browser_page(tmp_path) as page:
            rows = _overview(page, block.dashboard, block.login)
            assert sorted(sid for sid, _ in rows) == sorted(expected)
            # Every school reported before the block was printed: none is new or silent on the first look.
            assert not [r for r in rows if r[1] in ("new", "silent")], rows
            carriers = page.eval_on_selector_all("#filter-carrier option", "o => o.map(x => x.value)")
            assert set(scenario.carriers) <= set(carriers), carriers
            # Take-home (1:1) schools' tablets are with the pupils outside school hours: none to show then.
            in_school = {s.id for s in scenario.schools if not any(site.take_home for site in s.sites)}
            _until_tablets_shown(page, in_school, 180)
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / f"scenario-{name}-overview.png"), full_page=True)
    finally:
        if proc.poll() is None:
            proc.terminate()
        code = proc.wait(timeout=120)
    log = log_path.read_text(errors="replace")
    assert code == 0, log[-3000:]
    assert children and not [p.pid for p in children if p.is_running()], log[-3000:]

"""``schulwart-sim demo --scenario NAME``: a whole deployment from ``sim.scenarios`` as real processes.

Central, then per site a simulated school and an enrolled agent, each site in its own network
namespace (``swsc-N-…``, veths on 10.232.X.0/24: apart from the small demo's ``swdemo-`` and
10.231, so both can run at once). A read-API token and a technician token per carrier. Once every
school has reported at central the block is printed; then the scenario's fault timeline repeats
until the end: sim faults through each sim's control API, a cut uplink as a blackhole route
inside the site's namespace. The agents run with longer intervals than the small demo's (site
monitors every 30 s, reports every 15 s, a snapshot every 30 s) so that dozens of them fit on two cores.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.error import URLError
from urllib.request import Request, urlopen

from sim import netns
from sim.demo import (
    CENTRAL,
    LOOPBACK,
    DemoError,
    DemoRun,
    DemoSpec,
    NetPlan,
    School,
    enroll_agents,
    make_login,
    make_namespaces,
    prepare_central,
    start_agent,
    start_central,
    start_sim,
)
from sim.scenarios import FaultStep, Scenario

log = logging.getLogger("sim.scenario")

NET = NetPlan(prefix="swsc-", subnet="10.232", lock="/run/schulwart-scenario-netns.lock", if_tag="sws")
# Central says "agent silent" after this long without a report: shorter than the default 15 min
# so that the timeline's cut uplink shows within the cycle, and three snapshot intervals long,
# since an agent with nothing new to say reports only its periodic snapshot.
SNAPSHOT_INTERVAL_S = 30.0
SILENT_WINDOW_S = 90
SILENT_CHECK_S = 10
HTTP_TIMEOUT_S = 5.0
# Start-up of dozens of processes on two shared cores: imports alone take ~0.3 s of CPU each.
START_TIMEOUT_PER_SITE_S = 4.0
REPORTING_TIMEOUT_S = 120.0

_CENTRAL_TOML = f"""\
# Written by schulwart-sim demo --scenario: a silent school shows within a minute.
[central]
silent_window = "{SILENT_WINDOW_S}s"
silent_check_interval = "{SILENT_CHECK_S}s"
"""


def scenario_spec(spec: DemoSpec) -> DemoSpec:
    """The demo spec with the intervals a scenario's agents run at (seconds)."""
    return DemoSpec(
        schools=spec.schools, devices=spec.devices, speed=spec.speed, port=spec.port, duration=spec.duration,
        data_dir=spec.data_dir, temp_base=spec.temp_base,
        agent_interval=30.0, report_interval=15.0, snapshot_interval=SNAPSHOT_INTERVAL_S, host_interval=60.0,
    )  # fmt: skip


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")


def _get_json(url: str, token: str) -> Any:
    """GET with a bearer token and a timeout; URLError/OSError/ValueError to the caller."""
    request = Request(url, headers={"Authorization": f"Bearer {token}"})  # noqa: S310 (central's http:// URL, built here)
    with urlopen(request, timeout=HTTP_TIMEOUT_S) as resp:  # noqa: S310
        return json.loads(resp.read())


@dataclass
class ScenarioPlay:
    """Plays one scenario (implements ``sim.demo.Play``)."""

    scenario: Scenario
    spec: DemoSpec
    schools: list[School] = field(default_factory=list)
    port: int = 0
    api_token: str = ""
    login: tuple[str, str] = ("", "")  # the staff login for the dashboard (name, password)
    carrier_tokens: dict[str, tuple[str, str]] = field(default_factory=dict)  # carrier: (read API, technician)
    reporting_after_s: float = 0.0  # from the start of the demo
    reporting_after_agents_s: float = 0.0  # from the moment the first agent was started
    _started: float = 0.0
    _applied: set[tuple[int, int]] = field(default_factory=set)  # (cycle, step index)
    _timeline_origin: float = 0.0

    def plan(self, data_dir: Path) -> list[School]:
        """One School per site, numbered in order; the scenario's start faults on theirs."""
        schools = []
        for number, site in enumerate(self.scenario.sites, start=1):
            carrier = self.scenario.school_of(site.key).carrier
            schools.append(School(
                number, site.key, site.name, carrier, self.scenario.start_faults.get(site.key, ()),
                data_dir / site.key, devices=site.tablets, aps=site.aps, cabinets=site.cabinets,
                receivers=site.receivers, printers=site.printers, take_home=site.take_home,
                school_id=site.school_id if site.school_id != site.key else "",
            ))  # fmt: skip
        self.schools = schools
        return schools

    # -- start-up --------------------------------------------------------------------------------

    def start(self, run: DemoRun, data_dir: Path, schools: list[School]) -> str:
        """Namespaces, central, carrier tokens, sims, agents; returns once every school reports."""
        self._started = time.monotonic()
        run.start_timeout = max(run.start_timeout, START_TIMEOUT_PER_SITE_S * len(schools))
        why = make_namespaces(run, schools, NET)
        if why:  # on one shared loopback every agent would see every school's mDNS
            raise DemoError(f"a scenario needs a network namespace per site: {why}")
        central_dir = data_dir / "central"
        config = data_dir / "central.toml"
        config.write_text(_CENTRAL_TOML)
        self.api_token = prepare_central(run, central_dir, schools)
        self._carrier_tokens(run, central_dir)
        self.login = make_login(central_dir)
        self.port = start_central(run, central_dir, self.spec.port, True, config)
        sims = [start_sim(run, s, self.spec, self.port) for s in schools]
        enroll_agents(run, central_dir, schools, self.port)
        agents_started = time.monotonic()
        agents = [start_agent(run, s, sim, self.port, discovery=True, spec=self.spec)
                  for s, sim in zip(schools, sims, strict=True)]  # fmt: skip
        for school, agent in zip(schools, agents, strict=True):
            agent_port = run.wait_for(f"site {school.id}'s agent", agent.listening_port)
            school.page_url = f"http://{school.ip}:{agent_port}/"
        log.info("%d agents up after %.1fs; waiting for every school to report", len(agents),
                 time.monotonic() - self._started)  # fmt: skip
        run.wait_for("a report from every school at central", self._all_reporting, REPORTING_TIMEOUT_S)
        self.reporting_after_s = time.monotonic() - self._started
        self.reporting_after_agents_s = time.monotonic() - agents_started
        t = self.scenario.totals()
        log.info("all %d schools of %d carriers report at central, %.1fs after start, %.1fs after the agents started",
                 t["schools"], t["carriers"], self.reporting_after_s, self.reporting_after_agents_s)  # fmt: skip
        return self.summary(data_dir, temporary=self.spec.data_dir is None, run=run)

    def _carrier_tokens(self, run: DemoRun, central_dir: Path) -> None:
        """Per carrier a read-API token and a technician token, both scoped to its schools."""
        d = ["--data-dir", str(central_dir)]
        carriers = self.scenario.carriers
        api = run.run_all([[CENTRAL, "api-token", "create", "--name", f"carrier-{_slug(c)}", "--carrier", c, *d]
                           for c in carriers])  # fmt: skip
        tech = run.run_all([[CENTRAL, "token", "issue", "--technician", f"Technik {c}", "--scope", f"carrier:{c}",
                             *d] for c in carriers])  # fmt: skip
        self.carrier_tokens = {c: (a, t) for c, a, t in zip(carriers, api, tech, strict=True)}
        for school in self.schools:
            school.tech_token = self.carrier_tokens[school.carrier][1]

    def _all_reporting(self) -> bool | None:
        """True once every school of the scenario has a report at central; None before."""
        try:
            listed = _get_json(f"http://{LOOPBACK}:{self.port}/v1/schools", self.api_token)["schools"]
        except (URLError, OSError, ValueError, KeyError, TypeError) as exc:
            log.debug("central's school list not readable yet: %s", exc)
            return None
        reported = {s["id"] for s in listed if s.get("last_report_at")}
        return True if {s.id for s in self.scenario.schools} <= reported else None

    # -- the timeline ----------------------------------------------------------------------------

    def _site(self, key: str) -> School:
        return next(s for s in self.schools if s.id == key)

    def apply(self, step: FaultStep) -> None:
        """Switch one fault; a failure is logged (the demo goes on), never raised."""
        school = self._site(step.site)
        state = "on" if step.active else "off"
        try:
            if step.fault == "uplink-down":
                if school.ns is None:
                    raise netns.NetnsError("the site has no namespace")
                netns.set_blackhole(school.ns.name, school.ns.host_ip, step.active)
            else:
                body = json.dumps({"fault": step.fault, "active": step.active}).encode()
                # The control URL is the http:// one the sim printed at start.
                request = Request(f"{school.control_url}/faults", data=body, method="POST",  # noqa: S310
                                  headers={"Content-Type": "application/json"})  # fmt: skip
                with urlopen(request, timeout=HTTP_TIMEOUT_S) as resp:  # noqa: S310
                    resp.read()
        except (netns.NetnsError, URLError, OSError) as exc:
            log.error("fault %s %s at %s failed: %s", step.fault, state, step.site, exc)
            return
        log.info("fault %s %s at %s (school %s)", step.fault, state, step.site, school.central_id)

    def tick(self, now: float) -> None:
        """Apply the steps that are due at ``now`` (monotonic seconds); each once per cycle."""
        elapsed = now - self._timeline_origin
        cycle = int(elapsed // self.scenario.cycle_s)
        into = elapsed - cycle * self.scenario.cycle_s
        for index, step in enumerate(self.scenario.timeline):
            if step.at_s <= into and (cycle, index) not in self._applied:
                self._applied.add((cycle, index))
                self.apply(step)

    def wait_until_end(self, run: DemoRun, duration: float | None) -> None:
        """Run the fault timeline until a signal, the duration, or a child's death (DemoError)."""
        self._timeline_origin = time.monotonic()
        deadline = None if duration is None else self._timeline_origin + duration
        try:
            while not run.stop.wait(0.2):
                run.check_children()
                self.tick(time.monotonic())
                if deadline is not None and time.monotonic() >= deadline:
                    log.info("the scenario's %.0fs are over", duration)
                    return
            log.info("stopping on a signal")
        finally:
            self._restore_uplinks()

    def _restore_uplinks(self) -> None:
        """Give back every cut uplink, so that the agents' last reports can leave before the teardown."""
        for index, step in enumerate(self.scenario.timeline):
            if step.fault != "uplink-down" or not step.active:
                continue
            if any(i == index for _cycle, i in self._applied):
                school = self._site(step.site)
                if school.ns is not None:
                    try:
                        netns.set_blackhole(school.ns.name, school.ns.host_ip, False)
                    except netns.NetnsError:
                        pass  # not cut at the moment; the namespace goes at teardown anyway

    # -- the block ---------------------------------------------------------------------------------

    def summary(self, data_dir: Path, *, temporary: bool, run: DemoRun) -> str:
        """What is up, where, and with which tokens: one line per carrier and per site."""
        s = self.scenario
        t = s.totals()
        base = f"http://{LOOPBACK}:{self.port}"
        lines = [
            "",
            f"Schulwart scenario {s.name} is up: {s.who}.",
            f"{t['carriers']} carriers, {t['schools']} schools, {t['sites']} sites, {t['tablets']:,} tablets in "
            f"{t['cabinets']} cabinets, {t['aps']} APs, {t['receivers']} receivers; {len(run.children)} processes.",
            f"all {t['schools']} schools report at central {self.reporting_after_s:.1f} s after start "
            f"({self.reporting_after_agents_s:.1f} s after their agents started)",
            f"dashboard: {base}/",
            f"login: {self.login[0]} {self.login[1]}",
            f"api token: {self.api_token}",
            f'example:   curl -H "Authorization: Bearer {self.api_token}" {base}/v1/schools',
        ]
        for carrier in s.carriers:
            api, tech = self.carrier_tokens[carrier]
            lines.append(f"carrier {carrier}: api token {api}, technician token {tech}")
            for site in (x for x in self.schools if x.carrier == carrier):
                extra = (f", faults: {', '.join(site.faults)}" if site.faults else "") + (
                    ", tablets go home (1:1)" if site.take_home else "")  # fmt: skip
                lines.append(f"  site {site.id} ({site.central_id}): {site.name}, {site.devices} tablets, "
                             f"{site.cabinets} cabinets, page {site.page_url}{extra}")  # fmt: skip
        lines.append(f"timeline, every {s.cycle_s:g} s: " + "; ".join(
            f"+{step.at_s:g} s {step.fault} {'on' if step.active else 'off'} at {step.site}" for step in s.timeline))
        lines.append("a cabinet without power opens its incident only inside its charging window (15:00-07:00)")
        lines.append(f"data: {data_dir}{' (removed at exit)' if temporary else ''}")
        duration = self.spec.duration
        lines.append(f"Stops after {duration:g} s or on Ctrl-C." if duration is not None else "Stop with Ctrl-C.")
        return "\n".join(lines)

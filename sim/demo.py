"""``schulwart-sim demo``: central, simulated schools and their agents as real processes, torn down at exit.

Each school gets its own network namespace when the demo can make one (root and ``ip``):
mDNS on a shared loopback would let every agent see every school's devices. Without
namespaces all schools share 127.0.0.1 and only the first agent runs discovery.
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import logging
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Protocol, TypeVar

from sim import netns

log = logging.getLogger("sim.demo")

T = TypeVar("T")

BIN = Path(sys.executable).parent
CENTRAL = str(BIN / "schulwart-central")
AGENT = str(BIN / "schulwart-agent")
SIM = str(BIN / "schulwart-sim")

NS_PREFIX = "swdemo-"
SUBNET = "10.231"  # school N's veth: 10.231.X.1 (root side, central) and 10.231.X.2 (the school)
AGENT_API_PORT = 8401
LOOPBACK = "127.0.0.1"
START_TIMEOUT_S = 30.0
# The demo's own schulwart-central commands (schools, tokens, enrollment codes) run eight at a
# time; while a scenario's dozens of sims start beside them on two shared cores, a batch of
# Python start-ups has been seen to take over 30 s, so the bound is generous.
COMMAND_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 10.0
# A namespace of ours this old with no process inside was left by a demo that got SIGKILLed;
# a live demo fills its namespaces within seconds, so it is never mistaken for one.
STALE_AGE_S = 60.0

NETNS_LOCK = "/run/schulwart-demo-netns.lock"  # /run/netns lives beside it; only root gets this far
LOCK_TIMEOUT_S = 10.0

_LISTENING = re.compile(r"listening on http://(\S+):(\d+)")

_SCHOOL_NAMES = (
    ("gs-am-park", "GS Am Park", "Kreis Nord"),
    ("gs-lindenweg", "GS Lindenweg", "Kreis Nord"),
    ("gs-sonnenhof", "GS Sonnenhof", "Stadt Südheim"),
    ("gs-am-deich", "GS Am Deich", "Kreis Nord"),
    ("gs-regenbogen", "GS Regenbogenschule", "Stadt Südheim"),
    ("gs-wiesengrund", "GS Wiesengrund", "Kreis Nord"),
)
# Faults active from the start, by school number, so the dashboard has something to show
# at any time of day (no charging-window faults: those only show in the evening).
_FAULTS = {1: ("ap-down:2",), 2: ("cabinet-overtemp:1",)}

_AGENT_SECTIONS = """\
# Written by schulwart-sim demo: intervals (seconds) short enough for the dashboard to change soon.
[agent]
snapshot_interval = {snapshot_interval}

[sync]
central_url = "{central}"
report_interval = {report_interval}

[incidents]
open_after = 2
resolve_after = 2

[host]
interval = {host_interval}

[api]
listen = "{listen}"

"""


class DemoError(RuntimeError):
    """The demo could not start or a part of it died."""


class StopRequestedError(Exception):
    """A signal asked the demo to stop while it was starting."""


@dataclass(frozen=True)
class DemoSpec:
    """What to run."""

    schools: int = 3
    devices: int = 20
    speed: float = 1.0
    port: int = 8400
    duration: float | None = None
    data_dir: Path | None = None  # None: a fresh directory under temp_base, removed after a clean stop
    temp_base: Path = Path(tempfile.gettempdir())
    agent_interval: float = 5.0  # seconds between site monitor rounds (WLAN, cabinets)
    report_interval: float = 5.0  # seconds between an agent's reports
    snapshot_interval: float = 30.0
    host_interval: float = 30.0


@dataclass
class School:
    """One simulated school and where its processes run."""

    number: int
    id: str
    name: str
    carrier: str
    faults: tuple[str, ...]
    dir: Path
    ns: netns.Netns | None = None
    page_url: str = ""
    tech_token: str = ""
    control_url: str = ""  # the sim's fault control API, once it is up
    # What the sim plays; a scenario sets them per site (a Dependance is a site of school_id).
    devices: int | None = None  # None: DemoSpec.devices
    aps: int = 2
    cabinets: int = 2
    receivers: int = 2
    printers: int = 1
    take_home: bool = False
    school_id: str = ""  # central's school id when it is not ``id`` (a Dependance)

    @property
    def central_id(self) -> str:
        """The school at central this site reports for."""
        return self.school_id or self.id

    @property
    def ip(self) -> str:
        """The address the sim serves on and the agent listens on."""
        return self.ns.ns_ip if self.ns else LOOPBACK

    @property
    def central_host(self) -> str:
        """The address under which this school reaches central."""
        return self.ns.host_ip if self.ns else LOOPBACK

    def wrap(self, argv: Sequence[str]) -> list[str]:
        """Run ``argv`` inside the school's namespace, if it has one."""
        return self.ns.wrap(argv) if self.ns else list(argv)


def plan_schools(count: int, base: Path) -> list[School]:
    """Realistic names in two carriers, faults in the first two, one directory each."""
    schools = []
    for number in range(1, count + 1):
        if number <= len(_SCHOOL_NAMES):
            sid, name, carrier = _SCHOOL_NAMES[number - 1]
        else:
            sid, name, carrier = f"gs-{number}", f"Grundschule {number}", _SCHOOL_NAMES[number % 2][2]
        schools.append(School(number, sid, name, carrier, _FAULTS.get(number, ()), base / sid))
    return schools


# -- child processes ---------------------------------------------------------------------------------


def _load_prctl() -> Callable[..., int] | None:
    try:
        prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
        return prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _load_prctl()  # looked up here: the pre-exec hook must not load libraries after fork
_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> Callable[[], None]:
    """A pre-exec hook: the child gets SIGTERM if the demo dies, even by SIGKILL."""

    def arm() -> None:
        if _PRCTL is not None:
            _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the demo died before the hook ran
            os._exit(1)

    return arm


class Child:
    """A long-running child in its own process group; stdout and stderr go to files."""

    def __init__(self, label: str, argv: Sequence[str], log_dir: Path) -> None:
        self.label = label
        self.out_path = log_dir / f"{label}.out"
        self.err_path = log_dir / f"{label}.log"
        self._err_offset = self.err_path.stat().st_size if self.err_path.exists() else 0
        with self.out_path.open("wb") as out, self.err_path.open("ab") as err:
            # Own process group: Ctrl-C reaches only the demo, which then stops the children in order.
            self.popen = subprocess.Popen(
                list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=err, process_group=0,
                preexec_fn=_die_with_parent(os.getpid()),  # noqa: PLW1509 (the demo starts no threads)
            )  # fmt: skip

    def log_text(self) -> str:
        """What it logged in this run (a kept data dir holds earlier runs' lines too)."""
        with self.err_path.open("rb") as fh:
            fh.seek(self._err_offset)
            return fh.read().decode(errors="replace")

    def listening_port(self) -> int | None:
        """The port of its 'listening on http://…' line, once logged."""
        match = _LISTENING.search(self.log_text())
        return int(match.group(2)) if match else None

    def first_json_line(self) -> dict[str, Any] | None:
        """Its first stdout line as JSON, once complete."""
        text = self.out_path.read_text(errors="replace")
        if "\n" not in text:
            return None
        first = text.split("\n", 1)[0]
        try:
            record = json.loads(first)
        except ValueError:
            raise DemoError(f"{self.label} printed {first[:200]!r}, not its JSON line") from None
        if not isinstance(record, dict):
            raise DemoError(f"{self.label} printed {first[:200]!r}, not its JSON line")
        return record

    def last_log_line(self) -> str:
        """Its last log line, for error messages."""
        lines = [line for line in self.log_text().splitlines() if line.strip()]
        return lines[-1].strip() if lines else "(nothing logged)"

    def terminate(self) -> None:
        """SIGTERM if still running."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)

    def reap(self, deadline: float) -> None:
        """Wait until the deadline, then SIGKILL."""
        try:
            self.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop within %.0fs: killing it", self.label, STOP_TIMEOUT_S)
            self.popen.kill()
            try:
                self.popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                log.error("%s (pid %d) survived SIGKILL (stuck in the kernel?)", self.label, self.popen.pid)


def _command_name(argv: Sequence[str]) -> str:
    """'schulwart-central school add' for error messages, without an 'ip netns exec NS' prefix."""
    args = list(argv[4:] if argv[:3] == ["ip", "netns", "exec"] else argv)
    words = [Path(args[0]).name, *(a for a in args[1:3] if not a.startswith("-"))]
    return " ".join(words)


@contextmanager
def _file_lock(path: Path, *, wait: bool) -> Iterator[None]:
    """An exclusive flock on ``path``; waits up to LOCK_TIMEOUT_S, or not at all; DemoError if not had."""
    with path.open("a") as fh:
        deadline = time.monotonic() + (LOCK_TIMEOUT_S if wait else 0.0)
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise DemoError(f"{path} is held by another schulwart-sim demo") from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# -- the run -----------------------------------------------------------------------------------------


@dataclass
class DemoRun:
    """Everything the demo started, so that all of it can be stopped."""

    log_dir: Path
    start_timeout: float = START_TIMEOUT_S  # a scenario's dozens of processes share two cores at start-up
    stop: threading.Event = field(default_factory=threading.Event)
    children: list[Child] = field(default_factory=list)
    namespaces: list[netns.Netns] = field(default_factory=list)

    def start(self, label: str, argv: Sequence[str]) -> Child:
        """Start a long-running child and remember it."""
        child = Child(label, argv, self.log_dir)
        self.children.append(child)
        return child

    def check_children(self) -> None:
        """DemoError if any child has exited."""
        for child in self.children:
            code = child.popen.poll()
            if code is not None:
                how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"
                raise DemoError(f"{child.label} {how}; last log line: {child.last_log_line()} (log: {child.err_path})")

    def wait_for(self, what: str, check: Callable[[], T | None], timeout: float | None = None) -> T:
        """Poll ``check`` until it gives a value; StopRequestedError on a signal, DemoError on a timeout or death."""
        timeout = self.start_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while True:
            if self.stop.is_set():
                raise StopRequestedError
            result = check()
            if result is not None:
                return result
            self.check_children()
            if time.monotonic() >= deadline:
                raise DemoError(f"{what} not ready within {timeout:.0f}s (logs: {self.log_dir})")
            time.sleep(0.05)

    def run_all(self, commands: Sequence[Sequence[str]], parallel: int = 8) -> list[str]:
        """Run short commands side by side, ``parallel`` at a time; their stripped stdout, or DemoError."""
        outputs: list[str] = []
        for first in range(0, len(commands), parallel):
            outputs += self._run_batch(commands[first : first + parallel])
        return outputs

    def _run_batch(self, commands: Sequence[Sequence[str]]) -> list[str]:
        """run_all for one batch."""
        procs = [
            subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
            for argv in commands
        ]  # fmt: skip
        deadline = time.monotonic() + COMMAND_TIMEOUT_S
        outputs, failure = [], None
        for argv, proc in zip(commands, procs, strict=True):
            try:
                out, err = proc.communicate(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                out, err = proc.communicate(timeout=5)
                err = f"no answer within {COMMAND_TIMEOUT_S:.0f}s"
            if proc.returncode != 0 and failure is None:
                failure = f"{_command_name(argv)} failed: {(err.strip().splitlines() or ['?'])[-1]}"
            outputs.append(out.strip())
        if self.stop.is_set():
            raise StopRequestedError  # Ctrl-C reached these short commands too
        if failure:
            raise DemoError(failure)
        return outputs

    def wait_until_end(self, duration: float | None) -> None:
        """Until a signal, the duration, or a child's death (DemoError)."""
        deadline = None if duration is None else time.monotonic() + duration
        while not self.stop.wait(0.2):
            self.check_children()
            if deadline is not None and time.monotonic() >= deadline:
                log.info("the demo's %.0fs are over", duration)
                return
        log.info("stopping on a signal")

    def teardown(self) -> None:
        """Stop the agents, then the sims and central, then delete the namespaces."""
        agents = [c for c in self.children if c.label.endswith(".agent")]
        others = [c for c in self.children if c not in agents]
        for wave in (agents, others):  # agents first: they would only log central's absence
            for child in wave:
                child.terminate()
            deadline = time.monotonic() + STOP_TIMEOUT_S
            for child in wave:
                child.reap(deadline)
        removed = sum(netns.delete(ns.name) for ns in self.namespaces)
        log.info("stopped %d processes, deleted %d network namespaces", len(self.children), removed)


# -- start-up steps ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class NetPlan:
    """Namespace names, the /16 its school subnets come from, and the lock that guards picking them."""

    prefix: str = NS_PREFIX
    subnet: str = SUBNET
    lock: str = NETNS_LOCK
    if_tag: str = "swd"  # host-side veth names: <if_tag><6 hex><school number>, at most 15 characters


DEFAULT_NET = NetPlan()


def _clean_leftovers(net: NetPlan) -> None:
    """Delete namespaces of an earlier demo that was killed before it could clean up."""
    for name in netns.leftovers(net.prefix, STALE_AGE_S):
        log.warning("deleting namespace %s left over from an earlier demo", name)
        netns.delete(name)


def _allocate_namespaces(run: DemoRun, schools: list[School], net: NetPlan) -> None:
    """Create one namespace per school on subnets no other interface uses."""
    suffix = secrets.token_hex(3)
    free = [o for o in range(1, 255) if o not in netns.used_octets(net.subnet)]
    if len(free) < len(schools):
        raise netns.NetnsError(f"no free {net.subnet}.X.0/24 subnets left for {len(schools)} schools")
    for school, octet in zip(schools, free, strict=False):
        school.ns = netns.create(
            f"{net.prefix}{school.number}-{suffix}", f"{net.if_tag}{suffix}{school.number}", "eth0",
            f"{net.subnet}.{octet}.1", f"{net.subnet}.{octet}.2",
        )  # fmt: skip
        run.namespaces.append(school.ns)
        log.info("school %s: namespace %s, school at %s, central via %s", school.id, school.ns.name,
                 school.ns.ns_ip, school.ns.host_ip)  # fmt: skip


def make_namespaces(run: DemoRun, schools: list[School], net: NetPlan = DEFAULT_NET) -> str | None:
    """One namespace per school; None when done, else why the demo falls back to loopback."""
    reason = netns.unavailable_reason()
    if reason:
        return reason
    try:
        # Another demo picking subnets at the same moment would pick the same ones.
        with _file_lock(Path(net.lock), wait=True):
            _clean_leftovers(net)
            _allocate_namespaces(run, schools, net)
    except (netns.NetnsError, DemoError, OSError) as exc:
        for ns in run.namespaces:
            netns.delete(ns.name)
        run.namespaces.clear()
        for school in schools:
            school.ns = None
        return str(exc)
    return None


def _existing_schools(central_dir: Path) -> set[str]:
    """Ids of the schools a kept data dir already has."""
    if not (central_dir / "central.sqlite3").exists():
        return set()
    done = subprocess.run([CENTRAL, "school", "list", "--json", "--data-dir", str(central_dir)], capture_output=True,
                          text=True, timeout=COMMAND_TIMEOUT_S, check=False)  # fmt: skip
    if done.returncode != 0:
        raise DemoError(f"schulwart-central school list failed: {done.stderr.strip()}")
    return {json.loads(line)["id"] for line in done.stdout.splitlines() if line.strip()}


def prepare_central(run: DemoRun, central_dir: Path, schools: list[School]) -> str:
    """Add the schools (unless a kept data dir has them) and make a read-API token."""
    have = _existing_schools(central_dir)
    d = ["--data-dir", str(central_dir)]
    main_sites: dict[str, School] = {}
    for site in schools:  # a school with a Dependance is added once, under its main site's name
        main_sites.setdefault(site.central_id, site)
    adds = [[CENTRAL, "school", "add", "--id", sid, "--name", s.name, "--carrier", s.carrier, *d]
            for sid, s in main_sites.items() if sid not in have]  # fmt: skip
    if not have and adds:
        run.run_all(adds[:1])  # alone: commands racing to create a fresh database fail with "locked"
        adds = adds[1:]
    # A name of its own per run: a kept data dir still holds the last run's token, and names are unique.
    name = f"demo-{secrets.token_hex(3)}"
    return run.run_all([*adds, [CENTRAL, "api-token", "create", "--name", name, *d]])[-1]


DEMO_USER = "demo"


def make_login(central_dir: Path) -> tuple[str, str]:
    """A staff login for the dashboard (a fresh password each run, also for a kept data dir)."""
    password = secrets.token_urlsafe(12)
    d = ["--data-dir", str(central_dir)]
    listed = subprocess.run([CENTRAL, "user", "list", "--json", *d], capture_output=True, text=True,
                            timeout=COMMAND_TIMEOUT_S, check=False)  # fmt: skip
    exists = any(json.loads(line).get("name") == DEMO_USER for line in listed.stdout.splitlines() if line.strip())
    argv = [CENTRAL, "user", "passwd", DEMO_USER, *d] if exists else [
        CENTRAL, "user", "add", "--name", DEMO_USER, "--role", "admin", *d]  # fmt: skip
    done = subprocess.run(argv, input=password + "\n", capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S,
                          check=False)  # fmt: skip
    if done.returncode != 0:
        raise DemoError(f"schulwart-central user failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}")
    return DEMO_USER, password


def start_central(run: DemoRun, central_dir: Path, port: int, isolated: bool, config: Path | None = None) -> int:
    """Central in the root namespace (with ``config`` as its --config); its real port."""
    # Namespaced agents reach central over their veth (10.231.X.1), hence every address.
    host = "0.0.0.0" if isolated else LOOPBACK  # noqa: S104
    argv = [CENTRAL, "serve", "--data-dir", str(central_dir), "--host", host, "--port", str(port)]
    argv += ["--config", str(config)] if config else []
    child = run.start("central", argv)
    try:
        real = run.wait_for("central", child.listening_port)
    except DemoError as exc:
        if "address already in use" in str(exc):
            raise DemoError(f"{exc}; --port 0 picks a free port") from None
        raise
    log.info("central listening on %s:%d", host, real)
    return real


def start_sim(run: DemoRun, school: School, spec: DemoSpec, central_port: int) -> Child:
    """The school's simulated devices, APs, controller and meters."""
    school.dir.mkdir(parents=True, exist_ok=True)
    faults = ["--faults", ",".join(school.faults)] if school.faults else []
    devices = spec.devices if school.devices is None else school.devices
    argv = [
        SIM, "school", "--school", school.id, "--devices", str(devices), "--aps", str(school.aps),
        "--cabinets", str(school.cabinets), "--receivers", str(school.receivers), "--printers", str(school.printers),
        *faults, *(["--take-home"] if school.take_home else []), "--interface", school.ip,
        "--agent-interface", school.ip, "--central", f"http://{school.central_host}:{central_port}",
        "--agent-interval", f"{spec.agent_interval:g}", "--missing-after", "1m",
        "--speed", str(spec.speed), "--write-agent-config", str(school.dir / "site.toml"),
        "--data-dir", str(school.dir / "sim"), "--log-level", "WARNING",
    ]  # fmt: skip
    return run.start(f"{school.id}.sim", school.wrap(argv))


def enroll_agents(run: DemoRun, central_dir: Path, schools: list[School], central_port: int) -> None:
    """Enroll each school's agent from inside its namespace (unless a kept data dir has it enrolled)."""
    todo = [s for s in schools if not (s.dir / "agent" / "admin-token").exists()]
    d = ["--data-dir", str(central_dir)]
    codes = run.run_all([[CENTRAL, "enroll-code", "--school", s.central_id, *d] for s in todo])
    run.run_all([
        s.wrap([AGENT, "enroll", "--central", f"http://{s.central_host}:{central_port}", "--code", code,
                "--data-dir", str(s.dir / "agent")])
        for s, code in zip(todo, codes, strict=True)
    ])  # fmt: skip
    for school in todo:
        log.info("school %s: agent enrolled", school.id)


def issue_tech_tokens(run: DemoRun, central_dir: Path, schools: list[School]) -> None:
    """A technician token per school."""
    tokens = run.run_all([[CENTRAL, "token", "issue", "--technician", "Demo", "--scope", f"school:{s.id}",
                           "--data-dir", str(central_dir)] for s in schools])  # fmt: skip
    for school, token in zip(schools, tokens, strict=True):
        school.tech_token = token


def agent_config(school: School, site_toml: str, central_port: int, discovery: bool,
                 spec: DemoSpec = DemoSpec()) -> str:  # fmt: skip
    """The agent sections plus the sim's site config; discovery switched off when it must not run."""
    listen = f"{school.ip}:{AGENT_API_PORT}" if school.ns else f"{LOOPBACK}:0"
    text = _AGENT_SECTIONS.format(
        central=f"http://{school.central_host}:{central_port}", listen=listen,
        report_interval=f"{spec.report_interval:g}", snapshot_interval=f"{spec.snapshot_interval:g}",
        host_interval=f"{spec.host_interval:g}",
    )  # fmt: skip
    if not discovery:
        site_toml = site_toml.replace("[discovery]\n", "[discovery]\nenabled = false\n", 1)
    return text + site_toml


def start_agent(run: DemoRun, school: School, sim: Child, central_port: int, *, discovery: bool,
                spec: DemoSpec = DemoSpec()) -> Child:  # fmt: skip
    """Write the agent's config once the sim is up, then run the agent."""
    ready = run.wait_for(f"school {school.id}'s sim", sim.first_json_line)
    school.control_url = str(ready.get("control") or "")
    config = school.dir / "agent.toml"
    config.write_text(agent_config(school, (school.dir / "site.toml").read_text(), central_port, discovery, spec))
    log.info("school %s: sim up on %s, faults: %s", school.id, school.ip, ", ".join(school.faults) or "none")
    argv = [AGENT, "run", "--config", str(config), "--data-dir", str(school.dir / "agent")]
    return run.start(f"{school.id}.agent", school.wrap(argv))


# -- the whole demo ----------------------------------------------------------------------------------


def summary(central_port: int, api_token: str, schools: list[School], data_dir: Path, temporary: bool,
            duration: float | None, login: tuple[str, str] = ("", "")) -> str:  # fmt: skip
    """The block on stdout: where to look, with which token."""
    base = f"http://{LOOPBACK}:{central_port}"
    lines = [
        "",
        "Schulwart demo is up.",
        f"dashboard: {base}/",
        f"login: {login[0]} {login[1]}",
        f"api token: {api_token}",
        f'example:   curl -H "Authorization: Bearer {api_token}" {base}/v1/schools',
    ]
    for s in schools:
        lines += [
            f"school {s.id}: {s.name} ({s.carrier}), faults: {', '.join(s.faults) or 'none'}",
            f"  page:      {s.page_url}",
            f"  token:     {s.tech_token}",
            f"  namespace: {s.ns.name if s.ns else 'none (loopback)'}",
        ]
    lines.append(f"data: {data_dir}{' (removed at exit)' if temporary else ''}")
    lines.append(f"Stops after {duration:g} s or on Ctrl-C." if duration is not None else "Stop with Ctrl-C.")
    return "\n".join(lines)


def _install_signal_handlers(stop: threading.Event) -> Callable[[], None]:
    """SIGINT/SIGTERM/SIGHUP set ``stop``; returns a function that restores the old handlers."""

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}

    def restore() -> None:
        for sig, previous in old.items():
            signal.signal(sig, previous)

    return restore


def _data_dir(spec: DemoSpec) -> tuple[Path, bool]:
    """The data dir and whether it is a temporary one."""
    if spec.data_dir is not None:
        spec.data_dir.mkdir(parents=True, exist_ok=True)
        return spec.data_dir, False
    spec.temp_base.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="demo-", dir=spec.temp_base)), True


def _start_everything(run: DemoRun, spec: DemoSpec, data_dir: Path, schools: list[School]) -> str:
    """Bring up namespaces, central, sims and agents; the block to print."""
    fallback = make_namespaces(run, schools)
    if fallback:
        log.warning("no network namespaces (%s): all schools on %s, only %s's agent discovers devices "
                    "(mDNS on one shared loopback: it sees every school's devices)",
                    fallback, LOOPBACK, schools[0].id)  # fmt: skip
    central_dir = data_dir / "central"
    api_token = prepare_central(run, central_dir, schools)
    login = make_login(central_dir)
    port = start_central(run, central_dir, spec.port, fallback is None)
    sims = [start_sim(run, s, spec, port) for s in schools]
    enroll_agents(run, central_dir, schools, port)
    issue_tech_tokens(run, central_dir, schools)
    agents = [
        start_agent(run, school, sim, port, discovery=fallback is None or school.number == 1, spec=spec)
        for school, sim in zip(schools, sims, strict=True)
    ]
    for school, agent in zip(schools, agents, strict=True):
        agent_port = run.wait_for(f"school {school.id}'s agent", agent.listening_port)
        school.page_url = f"http://{school.ip}:{agent_port}/"
        log.info("school %s: agent up, technician page %s", school.id, school.page_url)
    return summary(port, api_token, schools, data_dir, spec.data_dir is None, spec.duration, login)


class Play(Protocol):
    """What the demo plays: the default schools, or a scenario (``sim.scenario_run``)."""

    def plan(self, data_dir: Path) -> list[School]:
        """The sites to run, each with its directory under ``data_dir``."""

    def start(self, run: DemoRun, data_dir: Path, schools: list[School]) -> str:
        """Bring everything up; the block to print. DemoError or StopRequestedError on failure or a signal."""

    def wait_until_end(self, run: DemoRun, duration: float | None) -> None:
        """Until a signal, the duration, or a child's death (DemoError)."""


@dataclass(frozen=True)
class DefaultPlay:
    """The small demo: a few schools in two carriers, static faults."""

    spec: DemoSpec

    def plan(self, data_dir: Path) -> list[School]:
        """See Play."""
        return plan_schools(self.spec.schools, data_dir)

    def start(self, run: DemoRun, data_dir: Path, schools: list[School]) -> str:
        """See Play."""
        return _start_everything(run, self.spec, data_dir, schools)

    def wait_until_end(self, run: DemoRun, duration: float | None) -> None:
        """See Play."""
        run.wait_until_end(duration)


def run_demo(spec: DemoSpec, echo: Callable[[str], None], play: Play | None = None) -> int:
    """Run the demo until the duration, a signal, or a failure; everything is torn down. The exit code."""
    data_dir, temporary = _data_dir(spec)
    try:
        with _file_lock(data_dir / "demo.lock", wait=False):  # two demos on one data dir would share agents
            return _run_in(data_dir, temporary, spec, echo, play or DefaultPlay(spec))
    except DemoError as exc:
        log.error("demo failed: %s", exc)
        return 1


def _run_in(data_dir: Path, temporary: bool, spec: DemoSpec, echo: Callable[[str], None], play: Play) -> int:
    """run_demo once the data dir is ours."""
    run = DemoRun(data_dir / "logs")
    run.log_dir.mkdir(parents=True, exist_ok=True)
    schools = play.plan(data_dir)
    restore = _install_signal_handlers(run.stop)
    started = time.monotonic()
    code = 1  # anything but the ends below (a bug, an OSError) is a failure too
    try:
        block = play.start(run, data_dir, schools)
        log.info("demo up in %.1fs", time.monotonic() - started)
        echo(block)
        play.wait_until_end(run, spec.duration)
        code = 0
    except StopRequestedError:
        log.info("stopping during start-up on a signal")
        code = 0
    except DemoError as exc:
        log.error("demo failed: %s; stopping everything", exc)
    finally:
        run.teardown()
        restore()
        if temporary and code == 0:
            shutil.rmtree(data_dir, ignore_errors=True)
        elif temporary:
            log.info("kept %s for its logs", data_dir)
    return code

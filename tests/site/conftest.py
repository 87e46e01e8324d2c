"""Fixtures for the site tests: quick mDNS timing, in-process simulated schools, network namespaces."""

from __future__ import annotations

import json
import os
import queue
import secrets
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import zeroconf._core
import zeroconf._services.browser

from sim.school import SchoolSpec, SimSchool

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


@pytest.fixture
def fast_mdns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Shorten the RFC 6762 delays, as python-zeroconf's own tests do.

    They exist so that real responders do not answer in lockstep and announcements are spread
    out (probe 250 ms apart, announce 1 s apart); on a test's private exchange they only cost time.
    """
    monkeypatch.setattr(zeroconf._core, "_CHECK_TIME", 10)
    monkeypatch.setattr(zeroconf._core, "_REGISTER_TIME", 10)
    monkeypatch.setattr(zeroconf._core, "_UNREGISTER_TIME", 10)
    monkeypatch.setattr(zeroconf._services.browser, "_FIRST_QUERY_DELAY_RANDOM_INTERVAL", (1, 5))


@pytest.fixture
def tag() -> str:
    """A per-test id: other tests (ours or other engineers') may announce on loopback at the same time."""
    return "t" + secrets.token_hex(3)


@pytest.fixture
async def sim_factory() -> AsyncIterator[Callable[..., Any]]:
    """Start in-process simulated schools; all are stopped at the end."""
    started: list[SimSchool] = []

    async def make(**kwargs: Any) -> SimSchool:
        school = SimSchool(SchoolSpec(**kwargs))
        await school.start()
        started.append(school)
        return school

    yield make
    for school in started:
        await school.stop()


# -- network namespaces ------------------------------------------------------------------------------


def _can_use_netns() -> str | None:
    if os.geteuid() != 0:
        return "network namespaces need root (CI runs as root)"
    if shutil.which("ip") is None:
        return "the ip command (iproute2) is not installed"
    return None


@dataclass
class NetnsPair:
    """Two namespaces, 'school' and 'agent', joined by a veth pair; nothing else is in them."""

    school: str
    agent: str
    school_ip: str
    agent_ip: str
    procs: list[subprocess.Popen[str]] = field(default_factory=list)

    def popen(self, ns: str, argv: list[str], **kwargs: Any) -> subprocess.Popen[str]:
        """Start a process inside a namespace (stdout piped, text)."""
        proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, *argv], stdout=subprocess.PIPE, stderr=kwargs.pop("stderr", None),
            text=True, cwd=REPO, **kwargs,
        )
        self.procs.append(proc)
        return proc

    def run(self, ns: str, argv: list[str], timeout: float = 20) -> subprocess.CompletedProcess[str]:
        """Run a short command inside a namespace."""
        return subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True,
                              timeout=timeout, cwd=REPO, check=False)

    def post_fault(self, control: str, fault: str, active: bool = True, **extra: Any) -> dict[str, Any]:
        """POST /faults to a sim inside the school namespace."""
        body = json.dumps({"fault": fault, "active": active, **extra})
        code = (
            "import sys,urllib.request;"
            "r=urllib.request.urlopen(urllib.request.Request(sys.argv[1]+'/faults',data=sys.argv[2].encode(),"
            "headers={'Content-Type':'application/json'}),timeout=10);print(r.read().decode())"
        )
        done = self.run(self.school, [sys.executable, "-c", code, control, body])
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


@pytest.fixture
def netns_pair() -> Iterator[NetnsPair]:
    """A fresh pair of namespaces with unique names; deleted (with the veth) afterwards."""
    reason = _can_use_netns()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"namespace tests must run in CI: {reason}")
        pytest.skip(reason)
    suffix = secrets.token_hex(3)
    octet = int(suffix[:2], 16) % 200 + 20
    pair = NetnsPair(f"sws{suffix}", f"swa{suffix}", f"10.231.{octet}.1", f"10.231.{octet}.2")
    veth_s, veth_a = f"sw{suffix}s", f"sw{suffix}a"
    try:
        _ip("netns", "add", pair.school)
        _ip("netns", "add", pair.agent)
        _ip("link", "add", veth_s, "type", "veth", "peer", "name", veth_a)
        _ip("link", "set", veth_s, "netns", pair.school)
        _ip("link", "set", veth_a, "netns", pair.agent)
        _ip("-n", pair.school, "addr", "add", f"{pair.school_ip}/24", "dev", veth_s)
        _ip("-n", pair.agent, "addr", "add", f"{pair.agent_ip}/24", "dev", veth_a)
        for ns, dev in ((pair.school, veth_s), (pair.agent, veth_a)):
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", ns, "link", "set", dev, "up")
    except subprocess.CalledProcessError as exc:
        for ns in (pair.school, pair.agent):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
        message = f"cannot create network namespaces: {exc.stderr.decode(errors='replace').strip()}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield pair
    finally:
        for proc in pair.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in pair.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        for ns in (pair.school, pair.agent):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


class JsonLines:
    """Reads a subprocess's stdout in a thread; hands out its JSON lines one by one."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line)
        self._queue.put(None)

    def next(self, timeout: float = 20.0, where: Callable[[dict[str, Any]], bool] | None = None) -> dict[str, Any]:
        """The next JSON line (matching ``where``); AssertionError on timeout or exit."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError("no matching JSON line within the timeout")
            try:
                line = self._queue.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"process exited with {self.proc.wait()}")
            if line.startswith("{"):
                record = json.loads(line)
                if where is None or where(record):
                    return record

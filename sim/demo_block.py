"""Reading the block ``schulwart-sim demo`` prints once it is up, for the tests and benchmarks that start it.

The block (``sim.demo.summary`` and ``ScenarioPlay.summary``) is plain text for people; these
helpers read the lines the programs need from it: the dashboard URL, the staff login, the
read-API token, and for the small demo each school's page, technician token and namespace.
"""

from __future__ import annotations

import queue
import re
import subprocess
import threading
import time
from dataclasses import dataclass, field

_DASHBOARD = re.compile(r"^dashboard: (\S+)$", re.M)
_LOGIN = re.compile(r"^login: (\S+) (\S+)$", re.M)
_API = re.compile(r"^api token: (\S+)$", re.M)
_SCHOOL = re.compile(r"^school (\S+): .*\n  page: +(\S+)\n  token: +(\S+)\n  namespace: +(.+)$", re.M)


class DemoBlockError(RuntimeError):
    """The demo exited, or printed no complete block, before it was up."""


@dataclass(frozen=True)
class DemoSchool:
    """One school of the small demo: its technician page, token and namespace (None on loopback)."""

    page: str
    token: str
    namespace: str | None


@dataclass(frozen=True)
class DemoBlock:
    """What a program needs from the block; ``text`` is the whole block for what only one reader needs."""

    text: str
    dashboard: str
    login: tuple[str, str]
    api_token: str
    schools: dict[str, DemoSchool] = field(default_factory=dict)


def read_block(proc: subprocess.Popen[str], timeout: float) -> list[str]:
    """The lines of the block ``proc`` prints on stdout, up to its last line ('Stop…').

    ``timeout`` is in seconds for the whole block. Raises DemoBlockError when the demo exits first
    and ``queue.Empty`` when the timeout passes; the pump thread keeps draining stdout afterwards
    so that the demo never blocks on a full pipe.
    """
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    block: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        if line is None:
            raise DemoBlockError(f"the demo exited with {proc.wait(10)} before printing its block: {block}")
        block.append(line)
        if line.startswith("Stop"):
            return block


def parse_block(lines: list[str]) -> DemoBlock:
    """The dashboard, login, API token and (small demo) schools; DemoBlockError when a line is missing."""
    text = "\n".join(lines)
    dashboard, login, api = _DASHBOARD.search(text), _LOGIN.search(text), _API.search(text)
    if not (dashboard and login and api):
        raise DemoBlockError(f"the block lacks its dashboard, login or api token line: {text}")
    schools = {
        sid: DemoSchool(page, token, None if ns.startswith("none") else ns)
        for sid, page, token, ns in _SCHOOL.findall(text)
    }
    return DemoBlock(text, dashboard.group(1), (login.group(1), login.group(2)), api.group(1), schools)

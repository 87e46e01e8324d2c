"""Helpers to run schulwart-agent and schulwart-central as real processes in tests."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.request import Request, urlopen

BIN = Path(sys.executable).parent
AGENT = str(BIN / "schulwart-agent")
CENTRAL = str(BIN / "schulwart-central")
_LISTEN = re.compile(r"listening on http://([^\s:]+|\[[^\]]+\]):(\d+)")


class Proc:
    """A child process whose stderr goes to a file we can search."""

    def __init__(self, args: list[str], log: Path) -> None:
        self.log = log
        self._fh = log.open("ab")
        self._offset = self._fh.tell()  # several processes may share a log: read only our part
        self.popen = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=self._fh, env=_env())

    def text(self) -> str:
        with self.log.open("rb") as fh:
            fh.seek(self._offset)
            return fh.read().decode(errors="replace")

    def wait_listening(self, timeout: float = 15.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            matches = _LISTEN.findall(self.text())
            if matches:
                return int(matches[-1][1])
            if self.popen.poll() is not None:
                raise RuntimeError(f"process exited {self.popen.returncode}: {self.text()[-2000:]}")
            time.sleep(0.05)
        raise TimeoutError(f"not listening after {timeout}s: {self.text()[-2000:]}")

    def terminate(self, timeout: float = 15.0) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        try:
            code = self.popen.wait(timeout)
        finally:
            self._fh.close()
        return code

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(10)
        self._fh.close()


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("SCHULWART_DATA_DIR", None)
    return env


def run(args: list[str], *, check: bool = True, input_text: str | None = None) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(args, capture_output=True, text=True, input=input_text, env=_env(), check=False, timeout=60)
    if check and out.returncode != 0:
        raise RuntimeError(f"{args} failed {out.returncode}: {out.stderr}")
    return out


def agent_status(data_dir: Path) -> dict[str, Any]:
    return json.loads(run([AGENT, "status", "--json", "--data-dir", str(data_dir)]).stdout)


def central_available() -> bool:
    if not Path(CENTRAL).exists():
        return False
    out = run([CENTRAL, "--help"], check=False)
    return all(cmd in out.stdout for cmd in ("serve", "school", "enroll-code", "import", "api-token"))


def write_config(path: Path, text: str) -> Path:
    path.write_text("[discovery]\nenabled = false\n" + text)
    return path


class Central:
    """A central server subprocess that can be stopped and started again on the same port."""

    def __init__(self, root: Path) -> None:
        self.dir = root / "central"
        self.logs = root
        self.port = 0
        self.proc: Proc | None = None
        run(
            [
                CENTRAL,
                "school",
                "add",
                "--id",
                "s1",
                "--name",
                "GS Nord",
                "--carrier",
                "Kreis A",
                "--data-dir",
                str(self.dir),
            ]
        )
        self.token = run([CENTRAL, "api-token", "create", "--name", "t", "--data-dir", str(self.dir)]).stdout.strip()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        args = [CENTRAL, "serve", "--data-dir", str(self.dir), "--host", "127.0.0.1", "--port", str(self.port)]
        self.proc = Proc(args, self.logs / "central.log")
        self.port = self.proc.wait_listening()

    def stop(self) -> None:
        assert self.proc is not None
        assert self.proc.terminate() == 0
        self.proc = None

    def code(self) -> str:
        return run([CENTRAL, "enroll-code", "--school", "s1", "--data-dir", str(self.dir)]).stdout.strip()

    def school(self) -> dict[str, Any]:
        req = Request(f"{self.url}/v1/schools/s1", headers={"Authorization": f"Bearer {self.token}"})
        with urlopen(req, timeout=5) as resp:
            return json.loads(resp.read())

    def events(self, agent_id: str) -> list[tuple[int, str, str, str]]:
        """(seq, kind, at, body) of everything central stored for the agent, by seq."""
        db = next(self.dir.glob("*.sqlite3"))
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
        try:
            return conn.execute(
                "SELECT seq, kind, at, body FROM events WHERE agent_id = ? ORDER BY seq", (agent_id,)
            ).fetchall()
        finally:
            conn.close()


def enroll_agent(central: Central, data: Path) -> str:
    run([AGENT, "enroll", "--central", central.url, "--code", central.code(), "--data-dir", str(data)])
    return agent_status(data)["identity"]["agent_id"]


def start_agent(data: Path, config: Path, log: Path) -> Proc:
    proc = Proc([AGENT, "run", "--listen", "127.0.0.1:0", "--data-dir", str(data), "--config", str(config)], log)
    proc.wait_listening()
    return proc


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def drained(data: Path) -> bool:
    box = agent_status(data)["outbox"]
    return box["depth"] == 0 and box["last_seq"] > 0

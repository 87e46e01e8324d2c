"""Helpers to run schulwart-agent and schulwart-central as real processes in tests."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

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

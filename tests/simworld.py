"""A whole simulated site as real processes: central, a sim school and an enrolled agent.

All three run on IPv4 loopback. The sim's names carry the caller's tag, because other
tests may announce on loopback at the same time.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.agent.procs import Proc, run
from tests.site.conftest import VENV_BIN, JsonLines

AGENT_SECTIONS = """
[agent]
snapshot_interval = 5

[sync]
report_interval = 0.5

[incidents]
open_after = 2
resolve_after = 2

[host]
interval = 30

[api]
listen = "127.0.0.1:0"
"""


@contextmanager
def sim_world(
    tmp_path: Path, tag: str, sim_args: Sequence[str] = (), bin_dir: Path = VENV_BIN
) -> Iterator[dict[str, Any]]:
    """Central, the sim and an enrolled agent, all running; everything stopped afterwards.

    ``bin_dir`` holds the three commands (another venv's, e.g. one the wheel was installed into).
    """
    AGENT, CENTRAL = str(bin_dir / "schulwart-agent"), str(bin_dir / "schulwart-central")
    procs: list[Proc] = []
    sim: subprocess.Popen[str] | None = None
    central_dir, agent_dir = tmp_path / "central", tmp_path / "agent"
    try:
        run([CENTRAL, "school", "add", "--id", tag, "--name", "GS Sim", "--carrier", "Kreis Sim",
             "--data-dir", str(central_dir)])  # fmt: skip
        token = run([CENTRAL, "api-token", "create", "--name", "e2e", "--data-dir", str(central_dir)]).stdout.strip()
        central = Proc([CENTRAL, "serve", "--data-dir", str(central_dir), "--host", "127.0.0.1", "--port", "0"],
                       tmp_path / "central.log")  # fmt: skip
        procs.append(central)
        central_url = f"http://127.0.0.1:{central.wait_listening()}"
        code = run([CENTRAL, "enroll-code", "--school", tag, "--data-dir", str(central_dir)]).stdout.strip()
        run([AGENT, "enroll", "--central", central_url, "--code", code, "--data-dir", str(agent_dir)])
        site = tmp_path / "site.toml"
        sim = subprocess.Popen(
            [str(bin_dir / "schulwart-sim"), "school", "--school", tag, "--devices", "8", "--receivers", "2",
             "--printers", "1", "--aps", "2", "--cabinets", "2", "--window", "00:00-00:00", "--days", "all",
             "--agent-interval", "1", "--missing-after", "2s", "--write-agent-config", str(site),
             "--data-dir", str(tmp_path / "sim"), "--log-level", "WARNING", *sim_args],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        ready = JsonLines(sim).next(timeout=30)
        state = json.loads(Path(ready["state"]).read_text())
        config = tmp_path / "agent.toml"
        config.write_text(AGENT_SECTIONS + "\n" + site.read_text())
        agent = Proc([AGENT, "run", "--data-dir", str(agent_dir), "--config", str(config)], tmp_path / "agent.log")
        procs.append(agent)
        port = agent.wait_listening(timeout=20)
        yield {"central": central_url, "central_proc": central, "token": token, "school": tag,
               "agent_dir": agent_dir, "sim": state,
               "agent": agent, "agent_url": f"http://127.0.0.1:{port}", "central_dir": central_dir,
               "config": config}  # fmt: skip
    finally:
        if sim is not None:
            sim.terminate()
            sim.wait(timeout=15)
        for proc in reversed(procs):
            proc.terminate()

"""A running agent loads only what its configuration uses (what that saves: bench/bench_footprint.py).

Each case starts a fresh interpreter, builds the agent from a config file exactly as
``schulwart-agent run`` does, runs it until the first monitor round is in, and lists which of
the optional modules ended up in ``sys.modules``. The database is migrated beforehand, as on
every start but the first, so the migration tool (sqlite-utils) is not needed either.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agent.store import Store

OPTIONAL = {
    "unifi": "agent.monitors.wlan.unifi",  # the WLAN controller adapter
    "wlan": "agent.monitors.wlan.monitor",
    "meters": "agent.monitors.cabinets.meters",  # the Shelly/Tasmota clients
    "cabinets": "agent.monitors.cabinets.monitor",
    "zeroconf": "zeroconf",
    "sqlite_utils": "sqlite_utils",  # only migrations use it
    "prometheus_client": "prometheus_client",  # only a scrape of /metrics
}

_PROBE = textwrap.dedent(
    """
    import asyncio, json, sys
    from pathlib import Path
    from agent.config import load_config
    from agent.wiring import build_agent
    from base.clock import SystemClock

    async def main() -> None:
        built = build_agent(load_config(Path(sys.argv[1])), Path(sys.argv[2]), SystemClock(), listen="127.0.0.1:0")
        stop = asyncio.Event()
        run = asyncio.create_task(built.run(stop))
        for _ in range(200):  # the runner is up once the host monitor's first round is in
            if "host" in built.live.sections:
                break
            await asyncio.sleep(0.05)
        stop.set()
        await run

    asyncio.run(main())
    print(json.dumps(sorted(sys.modules)))
    """
)

_NO_SITE = '[discovery]\nenabled = false\n[api]\nlisten = "127.0.0.1:0"\n'
_PROBES_ONLY = _NO_SITE + '[wlan]\ngateway = "127.0.0.1"\n'
_EVERYTHING = (
    '[api]\nlisten = "127.0.0.1:0"\n[discovery]\ninterfaces = ["127.0.0.1"]\n'
    '[wlan]\ngateway = "127.0.0.1"\n[wlan.controller]\nurl = "http://127.0.0.1:9"\n'
    '[[cabinets.cabinet]]\n[cabinets.cabinet.meter]\nurl = "http://127.0.0.1:9"\n'
)


def _loaded(tmp_path: Path, config: str) -> set[str]:
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o700)
    Store.open(data_dir).close()  # migrated now, as on every later start
    path = tmp_path / "agent.toml"
    path.write_text(config)
    done = subprocess.run([sys.executable, "-c", _PROBE, str(path), str(data_dir)], capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    modules = set(json.loads(done.stdout.splitlines()[-1]))
    return {name for name, module in OPTIONAL.items() if module in modules}


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (_NO_SITE, set()),
        (_PROBES_ONLY, {"wlan"}),
        (_EVERYTHING, {"unifi", "wlan", "meters", "cabinets", "zeroconf"}),
    ],
    ids=["host-only", "probes-without-controller", "everything-configured"],
)
def test_an_agent_loads_only_the_modules_its_config_uses(tmp_path: Path, config: str, expected: set[str]) -> None:
    assert _loaded(tmp_path, config) == expected

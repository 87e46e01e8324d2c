"""A running agent loads only what its configuration uses (what that saves: bench/bench_footprint.py).

Each case starts a fresh interpreter, imports the command line and builds the enrolled agent
from a config file exactly as ``schulwart-agent run`` does, runs it until the first monitor
round is in, and lists which of the optional modules ended up in ``sys.modules``. The database
is migrated beforehand, as on every start but the first, so the migration tool (sqlite-utils)
is not needed either. Some modules no configuration needs on the run path (``NEVER``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agent.identity import KEY_FILE, Identity, save_identity
from agent.store import Store
from base.secretfile import write_secret_file
from protocol.keys import generate_private_key, keyid, private_key_to_pem, public_key_b64

OPTIONAL = {
    "unifi": "agent.monitors.wlan.unifi",  # the WLAN controller adapter
    "wlan": "agent.monitors.wlan.monitor",
    "meters": "agent.monitors.cabinets.meters",  # the Shelly/Tasmota clients
    "cabinets": "agent.monitors.cabinets.monitor",
    "zeroconf": "zeroconf",
    "sqlite_utils": "sqlite_utils",  # only migrations use it
    "prometheus_client": "prometheus_client",  # only a scrape of /metrics
}
# Loaded by no configuration's run: what other commands, rare inputs or other tools need.
NEVER = {
    "cryptography.hazmat.primitives.serialization",  # PEM other than RFC 8410's Ed25519 form
    "importlib.metadata",  # the version is a constant of base.version
    "click",  # the other commands' CLI: a plain `run` starts through agent/entry.py
}

_PROBE = textwrap.dedent(
    """
    import asyncio, json, sys
    from pathlib import Path
    from agent import entry  # the console script's module: a plain `run` starts here
    from agent.config import load_config
    from agent.wiring import build_agent
    from base.clock import SystemClock

    assert entry.plain_run(["run", "--config", sys.argv[1], "--data-dir", sys.argv[2]]) is not None

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


def _enrolled_store(data_dir: Path) -> None:
    """Migrated and enrolled, as on every start but the first; central is not there (the sync backs off)."""
    data_dir.mkdir(mode=0o700)
    key = generate_private_key()
    write_secret_file(data_dir / KEY_FILE, private_key_to_pem(key))
    identity = Identity("agent-1", "gs-nord", None, None, "http://127.0.0.1:9", public_key_b64(key),
                        public_key_b64(key), keyid(key), "2026-01-01T00:00:00Z")  # fmt: skip
    store = Store.open(data_dir)
    try:
        with store.transaction() as conn:
            save_identity(store, conn, identity)
    finally:
        store.close()


def _loaded(tmp_path: Path, config: str) -> set[str]:
    data_dir = tmp_path / "data"
    _enrolled_store(data_dir)
    path = tmp_path / "agent.toml"
    path.write_text(config)
    done = subprocess.run([sys.executable, "-c", _PROBE, str(path), str(data_dir)], capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    modules = set(json.loads(done.stdout.splitlines()[-1]))
    return {name for name, module in OPTIONAL.items() if module in modules} | (NEVER & modules)


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

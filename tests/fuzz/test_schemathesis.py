"""Schemathesis against a real ``schulwart-central serve`` and its own ``/v1/openapi.json``.

Every check schemathesis has (no 5xx, status codes, content types and bodies as the schema
says, schema-invalid requests refused, schema-valid ones accepted) over every operation;
``schemathesis.toml`` beside this file holds the one documented exception. Slow: a few
thousand requests.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.agent.procs import Central, central_available

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(900),
    pytest.mark.skipif(not central_available(), reason="schulwart-central is not built"),
]

ST = Path(sys.executable).parent / "st"
CONFIG = Path(__file__).with_name("schemathesis.toml")
EXAMPLES = 100


def test_central_answers_as_its_openapi_document_says(tmp_path: Path) -> None:
    if not ST.exists() and shutil.which("st") is None:
        pytest.skip("schemathesis is not installed (pip install -e '.[test]')")
    central = Central(tmp_path)
    central.start()
    try:
        done = subprocess.run(
            [str(ST), "--config-file", str(CONFIG), "run", f"{central.url}/v1/openapi.json",
             "-H", f"Authorization: Bearer {central.token}", "--checks", "all",
             "--max-examples", str(EXAMPLES), "--workers", "2", "--no-color", "--seed", "11"],
            capture_output=True, text=True, timeout=800, check=False,
        )  # fmt: skip
    finally:
        central.stop()
    report = done.stdout + done.stderr
    assert done.returncode == 0, report[-6000:]
    counted = re.search(r"(\d+) generated, (\d+) passed", report)
    assert counted and counted.group(1) == counted.group(2) and int(counted.group(1)) > 500, report[-3000:]
    log = (tmp_path / "central.log").read_text(errors="replace")
    assert "internal error" not in log, log[-4000:]
    print(f"schemathesis: {counted.group(1)} cases, all passed", file=sys.stderr)

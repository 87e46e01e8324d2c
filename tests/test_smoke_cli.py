"""Each console script answers --help and refuses bad input with one line and exit 2."""

import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


@pytest.mark.parametrize("prog", ["schulwart-agent", "schulwart-central", "schulwart-sim"])
def test_help_works(prog: str) -> None:
    out = subprocess.run([BIN / prog, "--help"], capture_output=True, text=True, check=False)
    assert out.returncode == 0
    assert "Usage:" in out.stdout


@pytest.mark.parametrize("prog", ["schulwart-agent", "schulwart-central", "schulwart-sim"])
def test_bad_option_is_one_line_exit_2(prog: str) -> None:
    out = subprocess.run([BIN / prog, "--no-such-flag"], capture_output=True, text=True, check=False)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith(f"{prog}: error:")
    assert "Traceback" not in out.stderr

"""The ``schulwart-central`` command's entry point: one line, not a traceback, when central's packages are missing.

The wheel installs every command, also into an agent's venv that lacks the ``[central]`` extra;
there ``schulwart-central`` says what to install and exits 2.
"""

from __future__ import annotations

import sys

_OURS = frozenset({"agent", "base", "central", "protocol", "sim"})


def main() -> None:
    """Run ``central.cli.main``; exit 2 with one line when a package of the ``[central]`` extra is missing."""
    try:
        from central.cli import main as run
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").split(".")[0]
        if not missing or missing in _OURS:
            raise
        sys.stderr.write(
            f"schulwart-central: error: this install lacks central's packages (no module {missing!r}): "
            "install the wheel with its [central] extra "
            "(pip install 'schulwart-<version>-py3-none-any.whl[central]')\n"
        )
        sys.exit(2)
    run()

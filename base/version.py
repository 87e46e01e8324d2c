"""The one place that says which schulwart this is: `--version`, `/healthz`, reports, enrollment.

The package's metadata takes its version from here (pyproject.toml: ``dynamic = ["version"]``),
so a running agent does not load ``importlib.metadata`` (with zipfile and csv: about 0.9 MiB
RSS) to ask for it.
"""

from __future__ import annotations

VERSION = "0.1.0"


def version() -> str:
    """The schulwart version, e.g. ``"0.1.0"`` (the installed distribution's, from source or wheel alike)."""
    return VERSION

"""The one place that says which schulwart this is: `--version`, `/healthz`, reports, enrollment."""

from __future__ import annotations

from functools import cache
from importlib import metadata

DISTRIBUTION = "schulwart"
UNKNOWN = "0+unknown"


@cache
def version() -> str:
    """The installed distribution's version, e.g. ``"0.1.0"``; ``"0+unknown"`` when run from a bare source tree."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return UNKNOWN

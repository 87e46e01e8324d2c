"""The version constant is the installed distribution's version (pyproject.toml reads it from base.version)."""

from __future__ import annotations

from importlib import metadata

from base.version import version


def test_the_version_is_the_installed_distributions() -> None:
    assert version() == metadata.version("schulwart")

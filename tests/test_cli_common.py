"""The shared CLI edge: exit codes and one-line errors (base.cli.run_cli)."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROGRAM = """
import click, sys
from base.cli import run_cli
from base.errors import ConfigError

@click.group()
def cli():
    "Test group."

@cli.command()
def dies():
    "A task died: the command asks for exit 1 (systemd must see a failure)."
    raise click.exceptions.Exit(1)

@cli.command()
def fine():
    "Nothing to say."

@cli.command()
def refuses():
    "Bad input."
    raise ConfigError("the config says nonsense")

run_cli(cli, "prog")
"""


@pytest.mark.parametrize(("command", "code", "stderr"), [
    ("dies", 1, ""),
    ("fine", 0, ""),
    ("refuses", 2, "prog: error: the config says nonsense"),
])  # fmt: skip
def test_exit_codes(command: str, code: int, stderr: str) -> None:
    out = subprocess.run([sys.executable, "-c", PROGRAM, command], capture_output=True, text=True, check=False)
    assert out.returncode == code, out.stderr
    assert out.stderr.strip() == stderr

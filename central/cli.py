"""The schulwart-central command line."""

from __future__ import annotations

import click

from agent.cli_common import run_cli


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Schulwart central."""


def main() -> None:
    """Console-script entry point."""
    run_cli(cli, "schulwart-central")

"""The command contract: every subcommand of every CLI accepts --data-dir and --config after its name, and --help."""

from __future__ import annotations

import click
import pytest

from agent.cli import cli as agent_cli
from central.cli import cli as central_cli
from sim.cli import cli as sim_cli


def _leaves(group: click.Group, prefix: str) -> list[tuple[str, click.Command]]:
    out: list[tuple[str, click.Command]] = []
    for name, command in group.commands.items():
        path = f"{prefix} {name}"
        if isinstance(command, click.Group):
            out += _leaves(command, path)
        else:
            out.append((path, command))
    return out


COMMANDS = (
    _leaves(agent_cli, "schulwart-agent")
    + _leaves(central_cli, "schulwart-central")
    + _leaves(sim_cli, "schulwart-sim")
)


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[p for p, _ in COMMANDS])
def test_every_subcommand_takes_data_dir_config_and_help(path: str, command: click.Command) -> None:
    options = {opt for param in command.params for opt in getattr(param, "opts", [])}
    assert {"--data-dir", "--config"} <= options, f"{path} lacks --data-dir/--config"
    assert command.help, f"{path} has no help text"


def test_the_fixed_command_names_exist() -> None:
    names = {p for p, _ in COMMANDS}
    for required in (
        "schulwart-central serve",
        "schulwart-central school add",
        "schulwart-central enroll-code",
        "schulwart-central token issue",
        "schulwart-central api-token create",
        "schulwart-central agent revoke",
        "schulwart-central import",
        "schulwart-agent enroll",
        "schulwart-agent run",
        "schulwart-agent status",
        "schulwart-agent devices",
        "schulwart-agent incidents",
        "schulwart-agent export",
        "schulwart-agent remote status",
        "schulwart-sim school",
    ):
        assert required in names, required

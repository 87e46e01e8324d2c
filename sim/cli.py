"""The schulwart-sim command line: a thin click layer over sim.school."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from agent.monitors.discovery.presence import hours_of
from base.cli import (
    cli_errors,
    common_options,
    run_cli,
    version_option,
)
from base.cmdline import load_toml, resolve_data_dir, setup_logging
from base.errors import ConfigError
from sim.faults import FAULTS, FaultError, parse_fault
from sim.meters import METER_MODELS
from sim.school import SchoolSpec, SimSchool
from sim.unifi import SESSION_REFUSALS


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@version_option()
def cli() -> None:
    """Schulwart simulator: a school's devices, meters, APs and WLAN controller on real protocols."""


def _option(config: dict[str, Any], key: str, given: Any, default: Any) -> Any:
    """A command-line value beats [sim.school] in --config, which beats the default."""
    if given is not None:
        return given
    section = config.get("sim", {}).get("school", {})
    return section.get(key, default) if isinstance(section, dict) else default


@cli.command()
@common_options("sim")
@click.option("--school", "school_id", default=None, help="School id (also seeds MACs and names). [sim]")
@click.option("--devices", type=click.IntRange(0, 5000), default=None, help="Tablets to announce. [30]")
@click.option("--receivers", type=click.IntRange(0, 200), default=None, help="AirPlay receivers. [3]")
@click.option("--printers", type=click.IntRange(0, 200), default=None, help="Printers. [2]")
@click.option("--receiver-name", "receiver_names", multiple=True,
              help="Announce one more AirPlay receiver with exactly this name (any bytes a prankster might pick).")
@click.option("--aps", type=click.IntRange(0, 200), default=None, help="Access points. [3]")
@click.option("--cabinets", type=click.IntRange(0, 200), default=None, help="Charging cabinets with meters. [3]")
@click.option("--faults", "faults", multiple=True, help="Fault active from the start, e.g. cabinet-no-power:1 "
              "(repeat or comma-separate). See --list-faults.")
@click.option("--list-faults", is_flag=True, help="Print the faults the sim knows and exit.")
@click.option("--meter-models", "meter_models", multiple=True,
              help="Meter models the cabinets take in turn (repeat or comma-separate). See --list-meter-models. "
              "[shelly-plus-plug-s,shelly-plug-s,tasmota]")
@click.option("--list-meter-models", is_flag=True, help="Print the meter models the sim plays and exit.")
@click.option("--meter-password", default=None,
              help="The meters' login (user admin): Digest on Shelly Gen2+, Basic on Gen1, query on Tasmota.")
@click.option("--console-aps", type=click.IntRange(0, 200), default=None,
              help="How many of the APs are UniFi Express consoles serving WLAN (type udm, mesh). [0]")
@click.option("--session-refusal", type=click.Choice(SESSION_REFUSALS), default=None,
              help="How the controller refuses an expired session. [401]")
@click.option("--macs", type=click.IntRange(0, 200), default=None,
              help="Macs announcing AirPlay like macOS 12+ (laptops: class other, never missing). [0]")
@click.option("--take-home", is_flag=True, default=None,
              help="The tablets go home with the pupils (1:1): announced only in school hours on --days.")
@click.option("--school-hours", default=None, help="School hours for --take-home. [07:30-15:00]")
@click.option("--interface", default=None, help="IPv4 address to serve and announce on. [127.0.0.1]")
@click.option("--agent-interface", default=None, help="Address the agent listens for mDNS on (default: --interface).")
@click.option("--window", default=None, help="Cabinets' charging window. [15:00-07:00]")
@click.option("--days", default=None, help="Days the window starts on. [mon-fri]")
@click.option("--start-time", default=None, help="Simulated local start time, ISO 8601 (default: now).")
@click.option("--speed", type=click.FloatRange(0.0, 10000.0), default=None, help="Simulated clock speed. [1]")
@click.option("--controller-style", type=click.Choice(["unifi-os", "classic"]), default=None,
              help="UniFi login style. [unifi-os]")
@click.option("--central", "central_url", default=None, help="Central URL the agent should probe.")
@click.option("--agent-interval", type=click.FloatRange(0.1, 3600), default=None,
              help="Seconds written as the site sections' interval in the agent config. [10]")
@click.option("--missing-after", default=None, help="missing_after written into the agent config. [2m]")
@click.option("--control-port", type=click.IntRange(0, 65535), default=None, help="Fault control port. [ephemeral]")
@click.option("--write-agent-config", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Write the agent's matching site config (TOML) here.")
@click.option("--log-level", default="INFO", help="Logging level. [INFO]")
@cli_errors
def school(
    data_dir: Path | None, config_path: Path | None, school_id: str | None, devices: int | None,
    receivers: int | None, printers: int | None, receiver_names: tuple[str, ...], aps: int | None, cabinets: int | None,
    faults: tuple[str, ...], list_faults: bool, meter_models: tuple[str, ...], list_meter_models: bool,
    meter_password: str | None, console_aps: int | None, session_refusal: str | None, macs: int | None,
    take_home: bool | None, school_hours: str | None, interface: str | None, agent_interface: str | None,
    window: str | None, days: str | None, start_time: str | None, speed: float | None,
    controller_style: str | None, central_url: str | None, agent_interval: float | None,
    missing_after: str | None, control_port: int | None, write_agent_config: Path | None, log_level: str,
) -> None:
    """Run a simulated school until interrupted.

    Prints one JSON line on stdout when everything is up: the control URL, the state file
    and the agent config path. Faults switch at run time with
    POST <control>/faults {"fault": "cabinet-no-power:1", "active": true}.

    Example:

        schulwart-sim school --devices 40 --cabinets 2 --write-agent-config site.toml
    """
    if list_faults:
        for name, (indexed, text) in sorted(FAULTS.items()):
            click.echo(f"{name}{':N' if indexed else ''}\t{text}")
        return
    if list_meter_models:
        for name, model in METER_MODELS.items():
            click.echo(f"{name}\tkind={model.kind} channel={model.channel}\t{model.description}")
        return
    config = load_toml(config_path)
    model_list = [m.strip() for item in meter_models for m in item.split(",") if m.strip()]
    model_list = model_list or list(_option(config, "meter_models", None, []))
    unknown = [m for m in model_list if m not in METER_MODELS]
    if unknown:
        raise click.BadParameter(f"unknown meter model {unknown[0]!r} (known: {', '.join(METER_MODELS)})",
                                 param_hint="--meter-models")
    fault_list = [f.strip() for item in faults for f in item.split(",") if f.strip()]
    for fault in fault_list:
        try:
            parse_fault(fault)
        except FaultError as exc:
            raise click.BadParameter(str(exc), param_hint="--faults") from None
    start = None
    start_text = _option(config, "start_time", start_time, None)
    if start_text:
        try:
            start = datetime.fromisoformat(start_text)
        except ValueError:
            raise click.BadParameter("use ISO 8601, e.g. 2025-03-03T14:55+01:00", param_hint="--start-time") from None
    spec = SchoolSpec(
        school=_option(config, "school", school_id, "sim"),
        interface=_option(config, "interface", interface, "127.0.0.1"),
        devices=_option(config, "devices", devices, 30),
        receivers=_option(config, "receivers", receivers, 3),
        printers=_option(config, "printers", printers, 2),
        aps=_option(config, "aps", aps, 3),
        cabinets=_option(config, "cabinets", cabinets, 3),
        faults=fault_list,
        window=_option(config, "window", window, "15:00-07:00"),
        days=_option(config, "days", days, "mon-fri"),
        start=start,
        speed=_option(config, "speed", speed, 1.0),
        controller_style=_option(config, "controller_style", controller_style, "unifi-os"),
        agent_interface=_option(config, "agent_interface", agent_interface, None),
        agent_interval_s=_option(config, "agent_interval", agent_interval, 10.0),
        missing_after=_option(config, "missing_after", missing_after, "2m"),
        central_url=_option(config, "central", central_url, None),
        control_port=_option(config, "control_port", control_port, 0),
        extra_receiver_names=list(receiver_names),
        meter_models=model_list,
        meter_password=_option(config, "meter_password", meter_password, None),
        console_aps=_option(config, "console_aps", console_aps, 0),
        session_refusal=_option(config, "session_refusal", session_refusal, "401"),
        macs=_option(config, "macs", macs, 0),
        take_home=_option(config, "take_home", take_home, False),
        school_hours=_option(config, "school_hours", school_hours, "07:30-15:00"),
    )
    try:
        hours_of(spec.school_hours)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--school-hours") from None
    if start is not None and start.tzinfo is None:
        raise click.BadParameter("the start time needs a UTC offset", param_hint="--start-time")
    setup_logging(log_level)
    state_dir = resolve_data_dir(data_dir, "sim")
    asyncio.run(_run_school(spec, state_dir, write_agent_config))


async def _run_school(spec: SchoolSpec, state_dir: Path, agent_config_path: Path | None) -> None:
    sim = SimSchool(spec)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        try:
            await sim.start()
        except OSError as exc:
            raise ConfigError(f"cannot start the simulated school on {spec.interface}: {exc.strerror or exc}") from None
        if agent_config_path is not None:
            agent_config_path.write_text(sim.agent_config())
        state_dir.mkdir(parents=True, exist_ok=True)
        state_file = state_dir / f"sim-school-{spec.school}.json"
        sim.write_state(state_file)
        sys.stdout.write(json.dumps({
            "control": sim.control_url, "state": str(state_file),
            "agent_config": str(agent_config_path) if agent_config_path else None,
        }) + "\n")
        sys.stdout.flush()
        await stop.wait()
    finally:
        with contextlib.suppress(asyncio.CancelledError):
            await sim.stop()


def _demo_option(config: dict[str, Any], key: str, given: Any, default: Any) -> Any:
    """A command-line value beats [sim.demo] in --config, which beats the default."""
    if given is not None:
        return given
    section = config.get("sim", {}).get("demo", {})
    return section.get(key, default) if isinstance(section, dict) else default


@cli.command()
@common_options("sim")
@click.option("--duration", type=click.FloatRange(0.0, None), default=None,
              help="Stop this many seconds after everything is up. [until Ctrl-C]")
@click.option("--port", type=click.IntRange(0, 65535), default=None, help="Central's port; 0 picks a free one. [8400]")
@click.option("--schools", type=click.IntRange(1, 50), default=None, help="Simulated schools. [3]")
@click.option("--devices", type=click.IntRange(0, 2000), default=None, help="Tablets per school. [20]")
@click.option("--speed", type=click.FloatRange(0.0, 10000.0), default=None, help="Simulated clock speed. [1]")
@click.option("--scenario", default=None,
              help="Play a real deployment at its real size instead of the small demo; 'list' names them.")
@click.option("--log-level", default="INFO", help="Logging level of the demo itself. [INFO]")
@cli_errors
def demo(
    data_dir: Path | None, config_path: Path | None, duration: float | None, port: int | None,
    schools: int | None, devices: int | None, speed: float | None, scenario: str | None, log_level: str,
) -> None:
    """Run central, simulated schools and their agents until Ctrl-C (what `make demo` runs).

    Starts schulwart-central, then per school a simulated school (20 tablets, 2 APs,
    2 charging cabinets; an AP down in the first, an overheating cabinet in the second)
    and an enrolled schulwart-agent, all as real processes. As root, each school runs in
    its own network namespace (swdemo-N-…, veth 10.231.X.1 ↔ 10.231.X.2) so each agent
    sees only its own school's mDNS; otherwise all share 127.0.0.1 and only the first
    agent runs discovery. When everything is up it prints the dashboard URL, a read-API
    token with an example curl, and per school the technician page and a technician token.
    Logs go to stderr, the children's logs to DATA_DIR/logs. Everything (processes,
    namespaces) is torn down on Ctrl-C, SIGTERM, after --duration, or when a part dies.

    Without --data-dir the demo uses a fresh directory under the sim's data dir and removes
    it after a clean stop (after a failure it stays, for its logs); with --data-dir it keeps
    (and reuses) it. --config FILE may set [sim.demo] schools, devices, speed, port, duration.

    --scenario NAME plays a real deployment instead (regionalverband, landkreis, stadt,
    zweckverband; --scenario list prints each with its size): every site with its own sim and
    agent in its own namespace (swsc-N-…, 10.232.X.0/24), a read-API and a technician token per
    carrier, and a fault timeline (an AP down, a school whose uplink is cut) repeating every
    10 minutes. It needs root; --schools and --devices do not apply.

    Example:

        schulwart-sim demo --port 0 --schools 2 --duration 300

        schulwart-sim demo --port 0 --scenario zweckverband --duration 600
    """
    from sim.demo import DemoSpec, run_demo  # the school command does not need it
    from sim.scenario_run import ScenarioPlay, scenario_spec
    from sim.scenarios import SCENARIOS, ScenarioError, describe, get

    if scenario == "list":
        for name in SCENARIOS:
            click.echo(describe(get(name)))
        return
    played = None
    if scenario is not None:
        if schools is not None or devices is not None:
            raise click.BadParameter("a scenario sets its own schools and tablets", param_hint="--schools/--devices")
        try:
            played = get(scenario)
        except ScenarioError as exc:
            raise click.BadParameter(str(exc), param_hint="--scenario") from None
    config = load_toml(config_path)
    spec = DemoSpec(
        schools=_demo_option(config, "schools", schools, 3),
        devices=_demo_option(config, "devices", devices, 20),
        speed=_demo_option(config, "speed", speed, 1.0),
        port=_demo_option(config, "port", port, 8400),
        duration=_demo_option(config, "duration", duration, None),
        data_dir=data_dir,
        temp_base=resolve_data_dir(None, "sim"),
    )
    setup_logging(log_level)
    if played is not None:
        spec = scenario_spec(spec)
        code = run_demo(spec, click.echo, ScenarioPlay(played, spec))
    else:
        code = run_demo(spec, click.echo)
    if code:
        sys.exit(code)  # run_cli would turn click's Exit into 0


def main() -> None:
    """Console-script entry point."""
    run_cli(cli, "schulwart-sim")

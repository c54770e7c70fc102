"""`lamplighter` — the command line: run the controller, run simulators, check a config; the command
groups (fault, schedules, firmware, auth, broker) live in their own modules."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lamplighter import event_loop
from lamplighter.auth_cli import auth_app
from lamplighter.broker_cli import broker_app
from lamplighter.cli_support import TYPER_OPTIONS, ConfigOpt, load_settings
from lamplighter.fault_cli import fault_app
from lamplighter.firmware_cli import firmware_app
from lamplighter.profile_cli import profile_app
from lamplighter.schedules_cli import load_schedules, schedules_app

app = typer.Typer(help="Lamplighter: street-lighting and city IoT controller.", **TYPER_OPTIONS)
app.add_typer(fault_app, name="fault")
app.add_typer(schedules_app, name="schedules")
app.add_typer(firmware_app, name="firmware")
app.add_typer(auth_app, name="auth")
app.add_typer(broker_app, name="broker")
app.add_typer(profile_app, name="profile")
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v")]


@app.command()
def run(
    config: ConfigOpt,
    simulate: Annotated[bool, typer.Option(help="also start the simulators for this config")] = False,
    schedules: Annotated[Path | None, typer.Option(help="apply this schedule file at start")] = None,
    verbose: VerboseOpt = False,
) -> None:
    """Run the controller and its API (optionally with the simulated city)."""
    from lamplighter.processes import configure_logging, run_controller  # the whole stack: only here

    settings = load_settings(config)
    plan_file = load_schedules(schedules) if schedules else None
    configure_logging(verbose)
    event_loop.run(
        run_controller(settings, config if simulate else None, plan_file),
        embedded_broker=settings.embedded_broker.enabled,
    )


@app.command("simulate")
def simulate_cmd(config: ConfigOpt, verbose: VerboseOpt = False) -> None:
    """Run only the simulators for the links and devices of a config, plus their control API."""
    from lamplighter.processes import configure_logging, run_simulators

    settings = load_settings(config)
    configure_logging(verbose)
    event_loop.run(run_simulators(settings))


@app.command("check-config")
def check_config(config: ConfigOpt) -> None:
    """Validate a configuration file and summarise it."""
    settings = load_settings(config)
    devices = settings.all_devices()
    typer.echo(
        f"{config}: OK — {len(settings.sites)} sites, {len(settings.links)} links, {len(devices)} devices"
    )


if __name__ == "__main__":
    app()

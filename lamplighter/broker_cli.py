"""`lamplighter broker` — the MQTT broker's users and topic rules, for the embedded broker or Mosquitto.

`acl` prints the topic rules of the config as a Mosquitto `acl_file`; `passwd` adds a user to a
password file in Mosquitto's format (the same file the embedded broker reads). docs/deployment.md
shows a Mosquitto set-up using both.
"""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Annotated

import typer

from controller.broker.access import PasswordFileError, broker_rules, mosquitto_acl, set_password
from controller.config import MqttLinkConfig
from lamplighter.cli_support import TYPER_OPTIONS, fail, load_settings

broker_app = typer.Typer(help="MQTT broker users and topic rules.", **TYPER_OPTIONS)


@broker_app.command("acl")
def acl(
    config: Annotated[Path, typer.Option("--config", "-c", help="configuration file")],
    link: Annotated[
        list[str] | None, typer.Option(help="the MQTT link(s) on that broker [default: every MQTT link]")
    ] = None,
    controller_user: Annotated[
        list[str] | None, typer.Option(help="more users with the controller's rights (all topics)")
    ] = None,
) -> None:
    """Print the Mosquitto acl_file for the devices and readers of a config."""
    settings = load_settings(config)
    links = link or [x.id for x in settings.links if isinstance(x, MqttLinkConfig)]
    unknown = sorted(set(links) - {x.id for x in settings.links if isinstance(x, MqttLinkConfig)})
    if unknown:
        fail(f"no MQTT link {', '.join(unknown)} in {config}", 2)
    rules = broker_rules(settings, links=links, controller_users=controller_user or ())
    typer.echo(mosquitto_acl(rules), nl=False)


@broker_app.command("passwd")
def passwd(
    file: Annotated[Path, typer.Argument(help="the password file (made if missing, kept private)")],
    user: Annotated[str, typer.Argument(help="a device's key, a reader, or the controller's user")],
    password: Annotated[
        str | None, typer.Option(help="the password [default: asked for, not echoed]")
    ] = None,
) -> None:
    """Add a user to a Mosquitto-format password file, or change their password."""
    secret = password if password is not None else getpass.getpass(f"password for {user}: ")
    if len(secret) < 8:
        fail("a password needs at least 8 characters", 2)
    try:
        set_password(file, user, secret)
    except PasswordFileError as exc:
        fail(str(exc), 2)
    typer.echo(f"{file}: {user} set")

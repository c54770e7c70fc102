"""`lamplighter profile check FILE`: an engineer sees a profile's fields, and what a sample message
decodes to, before any device uses it (docs/devices.md)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from drivers.errors import ProfileError
from drivers.payload import PayloadError, decode_json
from drivers.profile import parse_profile
from lamplighter.cli_support import fail

profile_app = typer.Typer(help="Device profiles: check one before deploying it.", no_args_is_help=True)


@profile_app.command("check")
def check(
    file: Annotated[Path, typer.Argument(help="the profile (TOML)", exists=True, dir_okay=False)],
    sample: Annotated[
        Path | None,
        typer.Option("--sample", help="a message the device sends (MQTT profiles): print what it decodes to"),
    ] = None,
) -> None:
    """Validate a profile (errors name the file and line); with --sample, decode a message with it."""
    try:
        profile = parse_profile(file.read_text(encoding="utf-8"), str(file))
    except ProfileError as exc:
        fail(f"invalid profile:\n{exc}")
    head = profile.profile
    typer.echo(f"{file}: OK — {head.name} ({head.kind}, {head.protocol}): {head.model}")
    for name in profile.mapped_fields():
        unit = profile.unit_of(name) or ""
        declared = " (declared)" if name in profile.fields else ""
        typer.echo(f"  {name:24} {unit}{declared}")
    if sample is None:
        return
    if profile.mqtt is None:
        fail(f"--sample decodes messages of MQTT profiles; {head.name} is {head.protocol}", 2)
    try:
        ts, values, rejected = decode_json(profile.mqtt, sample.read_bytes(), datetime.now(UTC))
    except PayloadError as exc:
        fail(f"{sample}: the whole message is refused ({exc.reason}): {exc}")
    typer.echo(f"{sample}: reading at {ts.isoformat()}")
    for name, value in values.items():
        typer.echo(f"  {name:24} {value!r} {profile.unit_of(name) or ''}")
    for name, why in rejected.items():
        typer.echo(f"  {name:24} refused: {why}")
    if rejected:
        raise typer.Exit(1)

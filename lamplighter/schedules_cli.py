"""`lamplighter schedules …` — programs, calendars and group calendars, through a controller's API."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer

from lamplighter.cli_support import TYPER_OPTIONS, ApiConfigOpt, ApiOpt, api_target, call, fail
from lamplighter.schedule_file import ScheduleFile, load_schedule_file

schedules_app = typer.Typer(help="Programs, calendars and group calendars, through the API.", **TYPER_OPTIONS)
PATHS = {
    "program": "/api/v1/schedules/{}",
    "calendar": "/api/v1/calendars/{}",
    "group_calendar": "/api/v1/groups/{}/calendar",
}


@schedules_app.command("apply")
def schedules_apply(file: Path, config: ApiConfigOpt = None, api: ApiOpt = None) -> None:
    """Create or replace the programs, calendars and group calendars of a schedule file."""
    target = api_target(api, config)
    for kind, key, doc in load_schedules(file).objects():
        call(target, "PUT", PATHS[kind].format(key), json=doc)
        typer.echo(f"{kind.replace('_', ' ')} {key}: applied")


@schedules_app.command("list")
def schedules_list(config: ApiConfigOpt = None, api: ApiOpt = None) -> None:
    """List programs, calendars and overrides."""
    target = api_target(api, config)
    for path, what in (
        ("/api/v1/schedules", "program"),
        ("/api/v1/calendars", "calendar"),
        ("/api/v1/overrides", "override"),
    ):
        for item in call(target, "GET", path):
            typer.echo(f"{what} {item['id']}")


@schedules_app.command("preview")
def schedules_preview(
    group: Annotated[str, typer.Option(help="group path")],
    config: ApiConfigOpt = None,
    api: ApiOpt = None,
    hours: Annotated[float, typer.Option(min=0.1, max=168, help="from now, for this many hours")] = 24,
) -> None:
    """Show what a group's lamps will do, in the site's time, and the energy against full power
    dusk to dawn."""
    target = api_target(api, config)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    params = {"group": group, "from": now.isoformat(), "to": (now + dt.timedelta(hours=hours)).isoformat()}
    body = call(target, "GET", "/api/v1/schedules/preview", params=params)
    zone = body.get("timezone")
    typer.echo(f"{group}: {body['lamps']} lamps, times in {zone}")
    for t in body["transitions"]:
        typer.echo(f"{target.local(t['at'], zone)}  {t['level']:>3} %  {t['cause']}")
    saving = (
        f"{body['saving_pct']} % saved"
        if body["saving_pct"] is not None
        else "no dark hours in this span: nothing to compare"
    )
    typer.echo(
        f"{body['energy_kwh']} kWh against {body['baseline_kwh']} kWh at full power dusk to dawn ({saving})"
    )


def load_schedules(path: Path) -> ScheduleFile:
    try:
        return load_schedule_file(path)
    except ValueError as exc:
        fail(f"invalid schedule file: {exc}", 2)

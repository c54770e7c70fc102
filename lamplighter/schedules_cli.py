"""`lamplighter schedules …` — programs, calendars and group calendars, through a controller's API."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer

from lamplighter.cli_support import API, ApiOpt, call, fail
from lamplighter.schedule_file import ScheduleFile, load_schedule_file

schedules_app = typer.Typer(
    help="Programs, calendars and group calendars, through the API.", no_args_is_help=True
)
PATHS = {
    "program": "/api/v1/schedules/{}",
    "calendar": "/api/v1/calendars/{}",
    "group_calendar": "/api/v1/groups/{}/calendar",
}


@schedules_app.command("apply")
def schedules_apply(file: Path, api: ApiOpt = API) -> None:
    """Create or replace the programs, calendars and group calendars of a schedule file."""
    for kind, key, doc in load_schedules(file).objects():
        call(api, "PUT", PATHS[kind].format(key), json=doc)
        typer.echo(f"{kind.replace('_', ' ')} {key}: applied")


@schedules_app.command("list")
def schedules_list(api: ApiOpt = API) -> None:
    """List programs, calendars and overrides."""
    for path, what in (
        ("/api/v1/schedules", "program"),
        ("/api/v1/calendars", "calendar"),
        ("/api/v1/overrides", "override"),
    ):
        for item in call(api, "GET", path):
            typer.echo(f"{what} {item['id']}")


@schedules_app.command("preview")
def schedules_preview(
    group: Annotated[str, typer.Option(help="group path")],
    api: ApiOpt = API,
    hours: Annotated[float, typer.Option(help="from now, for this many hours")] = 24,
) -> None:
    """Show what a group's lamps will do, and the energy against full power dusk to dawn."""
    now = dt.datetime.now(dt.UTC)
    params = {"group": group, "from": now.isoformat(), "to": (now + dt.timedelta(hours=hours)).isoformat()}
    body = call(api, "GET", "/api/v1/schedules/preview", params=params)
    for t in body["transitions"]:
        typer.echo(f"{t['at']}  {t['level']:>4}%  {t['cause']}")
    typer.echo(
        f"{body['lamps']} lamps: {body['energy_kwh']} kWh against {body['baseline_kwh']} kWh "
        f"at full power dusk to dawn ({body['saving_pct']} % saved)"
    )


def load_schedules(path: Path) -> ScheduleFile:
    try:
        return load_schedule_file(path)
    except ValueError as exc:
        fail(f"invalid schedule file: {exc}", 2)

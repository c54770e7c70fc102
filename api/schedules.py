"""Schedule routes: programs (`schedules`), calendars, a group's calendar, overrides, and the preview."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from api.access import CurrentPrincipal, Permission, allow
from api.deps import Heavy, Service
from api.errors import ApiError, ErrorBody
from api.params import time_range
from controller.device import Device
from controller.schedule_history import MAX_REASON, Change
from controller.scheduling import Kind
from controller.service import ControllerService
from schedules.astro import AstroClock
from schedules.inputs import Instant
from schedules.model import Calendar, Override, Program
from schedules.plan import Plan, ScheduleError, Target
from schedules.preview import Preview, preview

router = APIRouter(prefix="/api/v1", tags=["schedules"], dependencies=[allow(Permission.READ)])
_INVALID: dict[int | str, dict[str, Any]] = {
    422: {"model": ErrorBody, "description": "the schedule cannot work"}
}


#: why a change is made, kept in the schedule history with who made it
Reason = Annotated[
    str, Query(max_length=MAX_REASON, description="why: kept in the history (GET /api/v1/schedule-history)")
]


async def _put(service: ControllerService, kind: Kind, key: str, doc: dict[str, Any], change: Change) -> None:
    try:
        await (await service.schedules_to_change()).put(kind, key, doc, change)
    except ScheduleError as exc:
        raise ApiError(422, "invalid_schedule", str(exc)) from None


async def _remove(service: ControllerService, kind: Kind, key: str, change: Change) -> Response:
    try:
        removed = await (await service.schedules_to_change()).remove(kind, key, change)
    except ScheduleError as exc:
        raise ApiError(422, "invalid_schedule", f"cannot remove {kind} {key!r}: {exc}") from None
    if not removed:
        raise ApiError(404, "not_found", f"no {kind.replace('_', ' ')} {key!r}")
    return Response(status_code=204)


class GroupCalendarIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    calendar: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", description="a calendar's id")


def _same_id(path_id: str, body_id: str) -> None:
    if path_id != body_id:
        raise ApiError(422, "invalid_request", f"body.id {body_id!r} differs from the path's {path_id!r}")


class PreviewPointOut(BaseModel):
    at: dt.datetime
    level: int = Field(ge=0, le=100)
    cause: str


class SunEventOut(BaseModel):
    event: str
    at: dt.datetime


class PreviewOut(BaseModel):
    group: str
    lamps: int
    start: dt.datetime = Field(serialization_alias="from")
    end: dt.datetime = Field(serialization_alias="to")
    points: list[PreviewPointOut] = Field(description="the level every `every_min` minutes")
    transitions: list[PreviewPointOut] = Field(description="each change of level, with its cause")
    sun: list[SunEventOut]
    energy_kwh: float
    baseline_kwh: float = Field(description="the same lamps at full power while the sun is down")
    saving_pct: float | None = Field(description="null: nothing to compare (no dark hours in the span)")
    timezone: str = Field(description="the group's site's zone: how its people read these times")


MAX_PREVIEW_SPAN = dt.timedelta(days=7)


@router.get(
    "/schedules/preview",
    response_model=PreviewOut,
    responses={400: {"model": ErrorBody}, 422: {"model": ErrorBody}},
    summary="The level curve, transitions and energy of a group or lamp",
    description=f"At most {MAX_PREVIEW_SPAN.days} days from `from` to `to`, sampled every 1 to 60 "
    "minutes. A time without a zone is UTC.",
)
async def get_preview(
    service: Service,
    heavy: Heavy,
    group: Annotated[str, Query(max_length=300, description="group path")],
    start: Annotated[Instant | None, Query(alias="from", description="default: now")] = None,
    end: Annotated[Instant | None, Query(alias="to", description="default: 24 h after `from`")] = None,
    every_min: Annotated[float, Query(ge=1, le=60, description="minutes between points")] = 5,
    device: Annotated[
        str | None, Query(max_length=64, description="one lamp of the group (its overrides count)")
    ] = None,
) -> Response:
    sched = service.scheduling
    lamps = service.lamps(group)
    if not lamps:
        raise ApiError(422, "unknown_group", f"group {group!r}: no lamps in it")
    plan = sched.plan_for(lamps[0])
    assert plan is not None
    now = dt.datetime.now(dt.UTC)
    start, end = time_range(
        start if start is not None or end is not None else now,
        end,
        default_span=dt.timedelta(hours=24),
        max_span=MAX_PREVIEW_SPAN,
    )

    def computed() -> PreviewOut:
        result = group_preview(plan, group, device, lamps, start, end, every_min)
        return preview_out(result, group, len(lamps), start, end, sched.clocks.get(lamps[0].site_id))

    try:
        return await heavy.json(computed)
    except (ScheduleError, ValueError) as exc:
        raise ApiError(422, "invalid_schedule", str(exc)) from None


def group_preview(
    plan: Plan,
    group: str,
    device: str | None,
    lamps: list[Device],
    start: dt.datetime,
    end: dt.datetime,
    every_min: float,
) -> Preview:
    """The preview of a group's lamps under `plan` (the running one, or a draft's)."""
    return preview(
        plan,
        Target(group, device),
        start,
        end,
        every=dt.timedelta(minutes=every_min),
        rated_power_w=sum(r.rated_power_w or 0 for r in lamps) / len(lamps),
        lamps=len(lamps),
    )


def preview_out(
    result: Preview, group: str, lamps: int, start: dt.datetime, end: dt.datetime, clock: AstroClock | None
) -> PreviewOut:
    return PreviewOut(
        group=group,
        lamps=lamps,
        start=start,
        end=end,
        points=[PreviewPointOut(at=p.at, level=p.level, cause=p.cause) for p in result.points],
        transitions=[PreviewPointOut(at=t.at, level=t.level, cause=t.cause) for t in result.transitions],
        sun=[SunEventOut(**e) for e in _sun_events(clock, start, end)],
        energy_kwh=round(result.energy_kwh, 3),
        baseline_kwh=round(result.baseline_kwh, 3),
        saving_pct=None if result.saving_pct is None else round(result.saving_pct, 1),
        timezone=clock.timezone if clock is not None else "UTC",
    )


@router.get("/schedules", response_model=list[Program], summary="Dimming programs")
async def list_programs(service: Service) -> list[Program]:
    return list(service.scheduling.programs.values())


@router.put(
    "/schedules/{program_id}",
    dependencies=[allow(Permission.SCHEDULES)],
    response_model=Program,
    responses=_INVALID,
    summary="Create or replace a program",
)
async def put_program(
    service: Service, who: CurrentPrincipal, program_id: str, program: Program, reason: Reason = ""
) -> Program:
    _same_id(program_id, program.id)
    await _put(service, "program", program.id, program.model_dump(mode="json"), Change(who.actor, reason))
    return program


@router.delete(
    "/schedules/{program_id}", dependencies=[allow(Permission.SCHEDULES)], status_code=204, responses=_INVALID
)
async def delete_program(
    service: Service, who: CurrentPrincipal, program_id: str, reason: Reason = ""
) -> Response:
    return await _remove(service, "program", program_id, Change(who.actor, reason))


@router.get("/calendars", response_model=list[Calendar])
async def list_calendars(service: Service) -> list[Calendar]:
    return list(service.scheduling.calendars.values())


@router.put(
    "/calendars/{calendar_id}",
    dependencies=[allow(Permission.SCHEDULES)],
    response_model=Calendar,
    responses=_INVALID,
)
async def put_calendar(
    service: Service, who: CurrentPrincipal, calendar_id: str, calendar: Calendar, reason: Reason = ""
) -> Calendar:
    _same_id(calendar_id, calendar.id)
    await _put(service, "calendar", calendar.id, calendar.model_dump(mode="json"), Change(who.actor, reason))
    return calendar


@router.delete(
    "/calendars/{calendar_id}",
    dependencies=[allow(Permission.SCHEDULES)],
    status_code=204,
    responses=_INVALID,
)
async def delete_calendar(
    service: Service, who: CurrentPrincipal, calendar_id: str, reason: Reason = ""
) -> Response:
    return await _remove(service, "calendar", calendar_id, Change(who.actor, reason))


@router.put(
    "/groups/{group:path}/calendar",
    dependencies=[allow(Permission.SCHEDULES)],
    responses=_INVALID,
    summary="Give a group (and its sub-groups) a calendar",
)
async def put_group_calendar(
    service: Service, who: CurrentPrincipal, group: str, body: GroupCalendarIn, reason: Reason = ""
) -> dict[str, str]:
    change = Change(who.actor, reason)
    await _put(service, "group_calendar", group.rstrip("/"), {"calendar": body.calendar}, change)
    return {"group": group.rstrip("/"), "calendar": body.calendar}


@router.delete(
    "/groups/{group:path}/calendar",
    dependencies=[allow(Permission.SCHEDULES)],
    status_code=204,
    responses=_INVALID,
)
async def delete_group_calendar(
    service: Service, who: CurrentPrincipal, group: str, reason: Reason = ""
) -> Response:
    return await _remove(service, "group_calendar", group.rstrip("/"), Change(who.actor, reason))


@router.get("/overrides", response_model=list[Override])
async def list_overrides(service: Service) -> list[Override]:
    return list(service.scheduling.overrides.values())


@router.post(
    "/overrides",
    dependencies=[allow(Permission.SCHEDULES)],
    response_model=Override,
    status_code=201,
    responses=_INVALID,
)
async def post_override(
    service: Service, who: CurrentPrincipal, override: Override, reason: Reason = ""
) -> Override:
    await _put(service, "override", override.id, override.model_dump(mode="json"), Change(who.actor, reason))
    return override


@router.delete(
    "/overrides/{override_id}",
    dependencies=[allow(Permission.SCHEDULES)],
    status_code=204,
    responses=_INVALID,
)
async def delete_override(
    service: Service, who: CurrentPrincipal, override_id: str, reason: Reason = ""
) -> Response:
    return await _remove(service, "override", override_id, Change(who.actor, reason))


def _sun_events(clock: AstroClock | None, start: dt.datetime, end: dt.datetime) -> list[dict[str, Any]]:
    """Sunrise, sunset and civil twilight inside the window, for marking on the curve."""
    if clock is None:
        return []
    events: list[dict[str, Any]] = []
    day = start.astimezone(clock.tz).date() - dt.timedelta(days=1)
    while day <= end.astimezone(clock.tz).date():
        for name in ("civil_dawn", "sunrise", "sunset", "civil_dusk"):
            at = clock.event(name, day)
            if at is not None and start <= at <= end:
                events.append({"event": name, "at": at})
        day += dt.timedelta(days=1)
    return sorted(events, key=lambda e: e["at"])

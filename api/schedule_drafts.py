"""`POST /api/v1/schedules/preview`: what a group would do with a program or calendar as drafted — its
curve, its energy, and what changes against what is planned ("22:00 80 % → 50 %") — before saving.

The draft is checked exactly as a save would check it (the same models, the same plan), built aside:
nothing running sees it.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from api.access import Permission, allow
from api.deps import Heavy, Service
from api.errors import ApiError, ErrorBody
from api.params import time_range
from api.schedules import MAX_PREVIEW_SPAN, PreviewOut, group_preview, preview_out
from schedules.inputs import Instant
from schedules.model import Calendar, Program
from schedules.plan import ScheduleError, Target
from schedules.preview import changes

router = APIRouter(prefix="/api/v1", tags=["schedules"], dependencies=[allow(Permission.SCHEDULES)])


class DraftIn(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    group: str = Field(max_length=300, description="the group to preview")
    start: Annotated[Instant | None, Field(alias="from", description="default: now")] = None
    end: Annotated[Instant | None, Field(alias="to", description="default: 24 h after `from`")] = None
    every_min: float = Field(default=5, ge=1, le=60)
    program: Program | None = Field(default=None, description="a program as it would be saved")
    calendar: Calendar | None = Field(default=None, description="a calendar as it would be saved")


class ChangeOut(BaseModel):
    at: dt.datetime = Field(description="from when the draft differs")
    planned: int = Field(description="the level now planned, %")
    drafted: int = Field(description="the level with the draft, %")


class DraftPreviewOut(PreviewOut):
    planned_energy_kwh: float = Field(description="the same span as planned now")
    changes: list[ChangeOut] = Field(description="each stretch where the draft changes the level")


@router.post(
    "/schedules/preview",
    response_model=DraftPreviewOut,
    responses={400: {"model": ErrorBody}, 422: {"model": ErrorBody}},
    summary="Preview a drafted program or calendar before saving it",
    description=f"As `GET /api/v1/schedules/preview` (at most {MAX_PREVIEW_SPAN.days} days), with the "
    "draft in place of the stored object of its id, and the changes against what is planned. A draft "
    "the API would refuse to save is refused here with the same message (422).",
)
async def preview_draft(service: Service, heavy: Heavy, body: DraftIn) -> Response:
    if body.program is None and body.calendar is None:
        raise ApiError(422, "invalid_request", "give a `program` or a `calendar` to preview")
    sched = service.scheduling
    lamps = service.lamps(body.group)
    if not lamps:
        raise ApiError(422, "unknown_group", f"group {body.group!r}: no lamps in it")
    now = dt.datetime.now(dt.UTC)
    start, end = time_range(
        body.start if body.start is not None or body.end is not None else now,
        body.end,
        default_span=dt.timedelta(hours=24),
        max_span=MAX_PREVIEW_SPAN,
    )
    current = sched.plan_for(lamps[0])
    assert current is not None
    draft = sched.draft_plan(lamps[0], body.program, body.calendar)
    clock = sched.clocks.get(lamps[0].site_id)

    def computed() -> DraftPreviewOut:
        # the check a save makes: the group resolves for its next two nights
        list(draft.transitions(Target(body.group), now, now + dt.timedelta(days=2)))
        planned = group_preview(current, body.group, None, lamps, start, end, body.every_min)
        drafted = group_preview(draft, body.group, None, lamps, start, end, body.every_min)
        out = preview_out(drafted, body.group, len(lamps), start, end, clock)
        return DraftPreviewOut(
            **out.model_dump(by_alias=False),
            planned_energy_kwh=round(planned.energy_kwh, 3),
            changes=[ChangeOut(at=a, planned=p, drafted=d) for a, p, d in changes(planned, drafted)],
        )

    try:
        return await heavy.json(computed)
    except (ScheduleError, ValueError) as exc:
        raise ApiError(422, "invalid_schedule", str(exc)) from None

"""`/api/v1/schedule-history`: every version of every program, calendar, group calendar and override —
who changed it, when and why; one version's document; what changed between two; restore one."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from api.access import CurrentPrincipal, Permission, allow
from api.deps import Service
from api.errors import ApiError, ErrorBody
from controller.schedule_history import MAX_REASON, Change, Version, differences, version, versions
from schedules.plan import ScheduleError

router = APIRouter(
    prefix="/api/v1/schedule-history", tags=["schedules"], dependencies=[allow(Permission.READ)]
)
ObjectKind = Literal["program", "calendar", "group_calendar", "override"]
MAX_PAGE = 200
#: what the database's integer columns hold (a larger number is a 422, not a 500)
MAX_INT = 2**31 - 1
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorBody}}


class VersionOut(BaseModel):
    kind: ObjectKind
    id: str
    version: int
    at: dt.datetime
    actor: str = Field(description="who: a user, an API key's name, or `system`")
    reason: str
    removed: bool = Field(description="this version removed the object")


class VersionDocOut(VersionOut):
    doc: dict[str, Any] | None = Field(description="the object as it was stored; null for a removal")


class HistoryPage(BaseModel):
    items: list[VersionOut]
    next_before: int | None = Field(description="pass as `before` for older versions; null: no more")


class DifferenceOut(BaseModel):
    path: str = Field(description="where in the document, e.g. steps[2].level")
    before: Any
    after: Any


class CompareOut(BaseModel):
    kind: ObjectKind
    id: str
    old: int
    new: int
    changes: list[DifferenceOut]


class RestoreIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: ObjectKind
    id: str = Field(max_length=300)
    version: int = Field(ge=1, le=MAX_INT)
    reason: str = Field(default="", max_length=MAX_REASON)


def _out(v: Version, seq_doc: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "kind": v.kind,
        "id": v.key,
        "version": v.version,
        "at": v.at,
        "actor": v.actor,
        "reason": v.reason,
        "removed": v.removed,
    }
    if seq_doc:
        out["doc"] = v.doc
    return out


@router.get(
    "",
    response_model=HistoryPage,
    summary="Versions of schedule objects, newest first",
    description=f"Of one kind, or one object (`kind` and `id`). At most {MAX_PAGE} a page; `before` "
    "pages back.",
)
async def history(
    service: Service,
    kind: ObjectKind | None = None,
    id: Annotated[str | None, Query(max_length=300, description="one object (with `kind`)")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    before: Annotated[
        int | None, Query(ge=1, le=MAX_INT, description="`next_before` of the page before")
    ] = None,
) -> HistoryPage:
    if id is not None and kind is None:
        raise ApiError(422, "invalid_request", "`id` names an object of one `kind`: give both")
    engine = service.scheduling.engine
    found = await versions(engine, kind, id, limit=limit + 1, before=before)
    page = found[:limit]
    older = found[limit] if len(found) > limit else None
    return HistoryPage(
        items=[VersionOut(**_out(v)) for v in page],
        next_before=page[-1].seq if older is not None and page else None,
    )


@router.get("/version", response_model=VersionDocOut, responses=_NOT_FOUND, summary="One version's document")
async def one_version(
    service: Service,
    kind: ObjectKind,
    id: Annotated[str, Query(max_length=300)],
    version_: Annotated[int, Query(alias="version", ge=1, le=MAX_INT)],
) -> VersionDocOut:
    found = await version(service.scheduling.engine, kind, id, version_)
    if found is None:
        raise ApiError(404, "not_found", f"no version {version_} of {kind.replace('_', ' ')} {id!r}")
    return VersionDocOut(**_out(found, seq_doc=True))


@router.get(
    "/compare",
    response_model=CompareOut,
    responses=_NOT_FOUND,
    summary="What changed from one version to another",
    description="Each value that differs, by its path in the document (lists compared by position).",
)
async def compare(
    service: Service,
    kind: ObjectKind,
    id: Annotated[str, Query(max_length=300)],
    old: Annotated[int, Query(ge=1, le=MAX_INT)],
    new: Annotated[int, Query(ge=1, le=MAX_INT)],
) -> CompareOut:
    engine = service.scheduling.engine
    docs = []
    for number in (old, new):
        found = await version(engine, kind, id, number)
        if found is None:
            raise ApiError(404, "not_found", f"no version {number} of {kind.replace('_', ' ')} {id!r}")
        docs.append(found.doc)
    a, b = docs
    changes = [DifferenceOut(path=p, before=x, after=y) for p, x, y in differences(a, b)]
    return CompareOut(kind=kind, id=id, old=old, new=new, changes=changes)


@router.post(
    "/restore",
    dependencies=[allow(Permission.SCHEDULES)],
    response_model=VersionOut,
    responses={**_NOT_FOUND, 409: {"model": ErrorBody}, 422: {"model": ErrorBody}},
    summary="Make an earlier version the current one",
    description="Checked like any change (the whole plan must still work), and kept in the history as "
    "a new version. Restoring a removal removes the object.",
)
async def restore(service: Service, who: CurrentPrincipal, body: RestoreIn) -> VersionOut:
    sched = await service.schedules_to_change()
    found = await version(sched.engine, body.kind, body.id, body.version)
    if found is None:
        raise ApiError(
            404, "not_found", f"no version {body.version} of {body.kind.replace('_', ' ')} {body.id!r}"
        )
    change = Change(who.actor, body.reason or f"restored version {body.version}")
    try:
        if found.doc is None:
            if not await sched.remove(body.kind, body.id, change):
                raise ApiError(
                    409, "conflict", f"version {body.version} is a removal, and it is removed already"
                )
        else:
            await sched.put(body.kind, body.id, found.doc, change)
    except ScheduleError as exc:
        raise ApiError(422, "invalid_schedule", f"version {body.version} cannot be restored: {exc}") from None
    latest = (await versions(sched.engine, body.kind, body.id, limit=1))[0]
    return VersionOut(**_out(latest))

"""Device routes: inventory, live state, telemetry history, commands."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response

from api.access import Permission, allow
from api.deps import Heavy, Service
from api.errors import ApiError, ErrorBody
from api.models import (
    CommandOut,
    DeviceDetail,
    DeviceStateName,
    DeviceSummary,
    GroupCommandOut,
    Page,
    ReadingOut,
    TelemetryOut,
    TelemetryPointOut,
)
from api.params import Limit, Offset, RowId, parse_every, time_range
from controller.commands import Command
from controller.registry import CommandRow
from controller.service import ControllerService, DeviceInfo
from drivers.fields import READING_FIELDS
from schedules.inputs import Instant

router = APIRouter(prefix="/api/v1/devices", tags=["devices"], dependencies=[allow(Permission.READ)])
MAX_TELEMETRY_SPAN = timedelta(days=366)
MAX_POINTS = 50_000
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorBody, "description": "no such device"}}


@router.get("", response_model=Page[DeviceSummary], summary="List devices")
async def list_devices(
    service: Service,
    site: Annotated[str | None, Query(max_length=64, description="site id")] = None,
    group: Annotated[
        str | None, Query(max_length=300, description="group path; includes its sub-groups")
    ] = None,
    state: Annotated[DeviceStateName | None, Query(description="live state")] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Page[DeviceSummary]:
    found = service.find(site=site, group=group, state=state)
    items = [_summary(d) for d in found[offset : offset + limit]]
    return Page[DeviceSummary](items=items, total=len(found), limit=limit, offset=offset)


@router.get("/{device_id}", response_model=DeviceDetail, responses=_NOT_FOUND, summary="One device")
async def get_device(service: Service, device_id: str) -> DeviceDetail:
    device = service.device(device_id)
    st = device.status
    return DeviceDetail(
        **_summary(device).model_dump(),
        last_reading=ReadingOut.model_validate(doc) if (doc := st.last_reading_doc()) else None,
        last_error=st.last_error,
        consecutive_failures=st.consecutive_failures,
        counters=dict(st.counters),
        units=_units(service, device.row.profile),
    )


def _units(service: ControllerService, profile_name: str) -> dict[str, str]:
    profile = service.settings.profile(profile_name)
    return {f: unit for f in profile.mapped_fields() if (unit := profile.unit_of(f)) is not None}


@router.get(
    "/{device_id}/telemetry",
    response_model=TelemetryOut,
    responses={**_NOT_FOUND, 400: {"model": ErrorBody}},
    summary="Telemetry history of one device",
    description=f"At most {MAX_TELEMETRY_SPAN.days} days from `from` to `to` and {MAX_POINTS:,} points "
    "per request. A time without a zone is UTC.",
)
async def get_telemetry(
    service: Service,
    heavy: Heavy,
    device_id: str,
    start: Annotated[Instant | None, Query(alias="from", description="default: 1 h before `to`")] = None,
    end: Annotated[Instant | None, Query(alias="to", description="default: now")] = None,
    every: Annotated[
        str | None,
        Query(max_length=20, description="aggregation window, e.g. 30s, 5m, 1h, 1d; omit for raw points"),
    ] = None,
    fields: Annotated[
        str | None,
        Query(max_length=2000, description="comma-separated field names; default: those its profile maps"),
    ] = None,
    aggregate: Literal["mean", "min", "max"] = "mean",
    limit: Annotated[int, Query(ge=1, le=MAX_POINTS, description="most points returned")] = 10_000,
) -> Response:
    device = service.device(device_id)
    start, end = time_range(start, end, default_span=timedelta(hours=1), max_span=MAX_TELEMETRY_SPAN)
    every_s = parse_every(every) if every else None
    profile = service.settings.profile(device.row.profile)
    known = set(READING_FIELDS) | set(profile.fields)  # well-known, and those its profile declares
    wanted = [f.strip() for f in fields.split(",") if f.strip()] if fields else profile.mapped_fields()
    unknown = [f for f in wanted if f not in known]
    if unknown:
        raise ApiError(400, "unknown_field", f"unknown fields {unknown}; known: {sorted(known)}")
    points = await service.telemetry(
        device_id, start, end, fields=wanted, every_s=every_s, aggregate=aggregate, limit=limit
    )
    return await heavy.json(
        lambda: TelemetryOut(
            device_id=device_id,
            start=start,
            end=end,
            every_s=every_s,
            aggregate=aggregate if every_s else None,
            fields=wanted,
            points=[TelemetryPointOut(ts=p.ts, values=p.values) for p in points],
        )
    )


@router.post(
    "/{device_id}/commands",
    dependencies=[allow(Permission.OPERATE)],
    response_model=CommandOut,
    status_code=201,
    responses={
        **_NOT_FOUND,
        409: {"model": ErrorBody, "description": "another controller instance serves this device"},
        422: {"model": ErrorBody, "description": "an invalid command, or a device that takes none"},
    },
    summary="Send a command; the answer says whether the device confirmed it",
)
async def post_command(service: Service, response: Response, device_id: str, command: Command) -> CommandOut:
    row = await service.command(device_id, command)
    response.headers["Location"] = f"/api/v1/devices/{device_id}/commands/{row.id}"
    return _command_out(row)


@router.get(
    "/{device_id}/commands",
    response_model=Page[CommandOut],
    responses=_NOT_FOUND,
    summary="Command history of one device, newest first",
)
async def list_commands(
    service: Service,
    device_id: str,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Page[CommandOut]:
    rows, total = await service.commands(device_id, limit, offset)
    return Page[CommandOut](items=[_command_out(r) for r in rows], total=total, limit=limit, offset=offset)


@router.get(
    "/{device_id}/commands/{command_id}",
    response_model=CommandOut,
    responses=_NOT_FOUND,
    summary="One command and its outcome",
)
async def get_command(service: Service, device_id: str, command_id: RowId) -> CommandOut:
    row = await service.command_record(device_id, command_id)
    if row is None:
        raise ApiError(404, "not_found", f"device {device_id!r} has no command {command_id}")
    return _command_out(row)


def _summary(device: DeviceInfo) -> DeviceSummary:
    row, st = device.row, device.status
    return DeviceSummary(
        id=row.id,
        site=row.site_id,
        link=row.link_id,
        unit_id=row.unit_id,
        address=row.address,
        profile=row.profile,
        kind=row.kind,
        group=row.group_path,
        latitude=row.latitude,
        longitude=row.longitude,
        rated_power_w=row.rated_power_w,
        poll_interval_s=row.poll_interval_s,
        state=st.state,
        last_seen=st.last_seen,
    )


def _command_out(row: CommandRow) -> CommandOut:
    return CommandOut(
        id=row.id,
        device_id=row.device_id,
        action=row.action,
        value=row.value.get("value"),
        origin=row.origin,
        priority=row.priority,
        expires_at=row.expires_at,
        status=row.status,
        detail=row.detail,
        written=row.written,
        readback=row.readback,
        created_at=row.created_at,
        completed_at=row.completed_at,
    )


groups_router = APIRouter(prefix="/api/v1/groups", tags=["groups"], dependencies=[allow(Permission.READ)])


@groups_router.post(
    "/{group:path}/commands",
    dependencies=[allow(Permission.OPERATE)],
    response_model=GroupCommandOut,
    responses={
        404: {"model": ErrorBody, "description": "no device in that group"},
        422: {"model": ErrorBody},
    },
    summary="Send a command to every device of a group and its sub-groups; one result per lamp",
)
async def post_group_command(service: Service, group: str, command: Command) -> GroupCommandOut:
    rows = await service.group_command(group, command)
    by_status: Counter[str] = Counter(row.status for row in rows)
    return GroupCommandOut(
        group=group, total=len(rows), by_status=dict(by_status), results=[_command_out(r) for r in rows]
    )

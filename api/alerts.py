"""Alert routes: list and acknowledge alerts, the live event stream, citizen reports, dead letters."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Query, Request, Response
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import BaseModel, ConfigDict, Field

from api.access import CurrentPrincipal, Permission, allow
from api.deps import Service
from api.errors import ApiError, ErrorBody
from api.models import Page
from api.params import MAX_PAGE, MAX_ROW_ID, Limit, Offset, RowId
from api.streams import stream_slot
from controller.alerts.book import Alert
from controller.alerts.grouping import AlertGroup, severity_then_newest
from controller.alerts.messages import AlertGroupOut, AlertOut, alert_out, group_out
from controller.alerts.reports import ReportIn, ReportKind, Verdict
from controller.alerts.store import AlertState, ReportRow
from controller.faults import FaultKind
from controller.service import ControllerService

router = APIRouter(prefix="/api/v1", tags=["alerts"], dependencies=[allow(Permission.READ)])
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorBody, "description": "not found"}}


class AckIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    by: str | None = Field(default=None, max_length=100, description="who acknowledges (operator name)")


class ReportOut(BaseModel):
    id: int
    kind: ReportKind
    latitude: float
    longitude: float
    radius_m: float
    reference: str | None
    description: str
    received_at: dt.datetime
    verdict: Verdict
    reason: str
    lamps: list[dict[str, Any]] = Field(description="the nearest lamps checked, with what they reported")
    alerts: list[AlertOut] = Field(description="alerts the report is linked to, as they are now")
    resolved: bool = Field(description="every linked alert has cleared")


class DeadLetterOut(BaseModel):
    id: int
    webhook_id: str
    attempts: int
    last_error: str
    failed_at: dt.datetime
    events: int


MAX_GROUPED = 50_000
MEMBERS_SHOWN = 100


class AlertGroupEntry(AlertGroupOut):
    members: list[AlertOut] = Field(description=f"its alerts, the first {MEMBERS_SHOWN}")


AlertEntry = Annotated[AlertOut | AlertGroupEntry, Field(discriminator="type")]


@router.get(
    "/alerts",
    response_model=Page[AlertEntry],
    summary="List alerts, one by one or by root cause",
    description="With `grouped=true` (open alerts only), the alerts of one link that failed alike "
    'at once come as one `group` entry ("gw-lethaito: 52 devices unreachable") holding its '
    "members, beside the alerts in no group, the most severe and then the newest first; "
    f"at most {MAX_GROUPED:,} alerts are grouped (`total` says how many matched). Without it, "
    "alerts one by one, the newest first.",
)
async def list_alerts(
    service: Service,
    state: Annotated[
        AlertState,
        Query(description="open (not cleared: active or acknowledged), active, acknowledged, cleared, all"),
    ] = "open",
    kind: Annotated[FaultKind | None, Query()] = None,
    site: Annotated[str | None, Query(max_length=64)] = None,
    group: Annotated[
        str | None, Query(max_length=300, description="group path; includes its sub-groups")
    ] = None,
    device: Annotated[str | None, Query(max_length=64)] = None,
    grouped: Annotated[bool, Query(description="root causes as one entry each (open alerts only)")] = False,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Page[AlertOut | AlertGroupEntry]:
    if not grouped:
        alerts, total = await service.alerts(
            state=state, kind=kind, site=site, group=group, device=device, limit=limit, offset=offset
        )
        return Page[AlertOut | AlertGroupEntry](
            items=[alert_out(a) for a in alerts], total=total, limit=limit, offset=offset
        )
    if state in ("cleared", "all"):
        raise ApiError(422, "invalid", "grouped=true lists open alerts: state open, active or acknowledged")
    groups, alone, _ = await service.alert_entries(
        state=state, kind=kind, site=site, group=group, device=device, cap=MAX_GROUPED
    )
    entries: list[AlertGroup | Alert] = sorted([*groups, *alone], key=severity_then_newest)
    page = entries[offset : offset + limit]
    return Page[AlertOut | AlertGroupEntry](
        items=[_entry(e) for e in page], total=len(entries), limit=limit, offset=offset
    )


def _entry(entry: AlertGroup | Alert) -> AlertOut | AlertGroupEntry:
    if isinstance(entry, Alert):
        return alert_out(entry)
    members = [alert_out(a, entry.id) for a in entry.alerts[:MEMBERS_SHOWN]]
    return AlertGroupEntry(**group_out(entry).model_dump(), members=members)


class AckManyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ids: list[Annotated[int, Field(ge=1, le=MAX_ROW_ID)]] = Field(
        default_factory=list, max_length=MAX_PAGE, description=f"alert ids, at most {MAX_PAGE}"
    )
    root_cause: str | None = Field(default=None, max_length=200, description="every alert of this group id")
    group: str | None = Field(
        default=None, max_length=300, description="every open alert of this group path and its sub-groups"
    )
    by: str | None = Field(default=None, max_length=100, description="who acknowledges (operator name)")


class AckManyOut(BaseModel):
    acknowledged: list[int] = Field(description="the alerts now acknowledged (open ones only)")


@router.post(
    "/alerts/ack",
    dependencies=[allow(Permission.ACKNOWLEDGE)],
    response_model=AckManyOut,
    responses={404: {"model": ErrorBody, "description": "no open root-cause group of that id"}},
    summary="Acknowledge several alerts: by ids, a root-cause group, or a group of devices",
    description=f"Ids (at most {MAX_PAGE:,}), a root-cause group's id (`root_cause`) or a device group "
    f"path (`group`, with its sub-groups; at most {MAX_GROUPED:,} alerts); cleared alerts are skipped.",
)
async def acknowledge_many(service: Service, principal: CurrentPrincipal, body: AckManyIn) -> AckManyOut:
    if not (body.ids or body.root_cause or body.group):
        raise ApiError(422, "invalid", "name the alerts: ids, root_cause or group")
    ids = set(body.ids)
    if body.root_cause or body.group:
        groups, alone, _ = await service.alert_entries(
            state="active", kind=None, site=None, group=body.group, device=None, cap=MAX_GROUPED
        )
        if body.root_cause:
            match = [g for g in groups if g.id == body.root_cause]
            if not match:
                raise ApiError(404, "not_found", f"no open root-cause group {body.root_cause!r}")
            ids.update(a.id or 0 for a in match[0].alerts)
        else:
            ids.update(a.id or 0 for g in groups for a in g.alerts)
            ids.update(a.id or 0 for a in alone)
    by = principal.actor if not body.by else f"{body.by} ({principal.actor})"
    done = []
    for alert_id in sorted(ids):
        alert = await service.acknowledge(alert_id, by)
        if alert is not None and alert.cleared_at is None:
            done.append(alert_id)
    return AckManyOut(acknowledged=done)


@router.get("/alerts/{alert_id}", response_model=AlertOut, responses=_NOT_FOUND, summary="One alert")
async def get_alert(service: Service, alert_id: RowId) -> AlertOut:
    alert = await service.alert_store.get(alert_id)
    if alert is None:
        raise ApiError(404, "not_found", f"no alert {alert_id}")
    return alert_out(alert)


@router.post(
    "/alerts/{alert_id}/ack",
    dependencies=[allow(Permission.ACKNOWLEDGE)],
    response_model=AlertOut,
    responses={**_NOT_FOUND, 409: {"model": ErrorBody, "description": "the alert has cleared"}},
    summary="Acknowledge an alert",
)
async def acknowledge(
    service: Service,
    alert_id: RowId,
    principal: CurrentPrincipal,
    body: Annotated[AckIn | None, Body()] = None,
) -> AlertOut:
    # Recorded as the credentials' owner; a name given in the body (the operator at a shared
    # IOC account) is kept beside it, never instead of it.
    by = principal.actor if body is None or not body.by else f"{body.by} ({principal.actor})"
    alert = await service.acknowledge(alert_id, by)
    if alert is None:
        raise ApiError(404, "not_found", f"no alert {alert_id}")
    if alert.cleared_at is not None:
        raise ApiError(409, "cleared", f"alert {alert_id} cleared at {alert.cleared_at.isoformat()}")
    return alert_out(alert)


@router.get(
    "/events",
    response_class=EventSourceResponse,
    summary="Live events (server-sent events)",
    description=(
        "A `text/event-stream`. Event `alert` carries an alert message (the payload of MQTT "
        "`…/alert`), `report` a citizen report's verdict, `lagged` how many events this client "
        "missed because it read too slowly. Reconnect with `Last-Event-ID` to replay missed events. "
        "At most `[api] max_event_streams_per_client` streams per caller (429 `too_many_streams`) "
        "and `max_event_streams` in all (503 `busy`)."
    ),
)
async def events(
    request: Request,
    service: Service,
    _slot: Annotated[None, Depends(stream_slot)],
    last_event_id: Annotated[int | None, Header(ge=0, le=2**63 - 1)] = None,
) -> AsyncIterator[ServerSentEvent]:
    hub = service.events
    async with hub.listen(last_event_id) as listener:
        while True:
            try:
                event = await asyncio.wait_for(listener.queue.get(), timeout=1.0)
            except TimeoutError:
                if await request.is_disconnected():
                    return
                continue
            lagged = listener.lag_notice()
            if lagged:
                yield ServerSentEvent(event="lagged", data={"dropped": lagged})
            yield ServerSentEvent(event=event.name, id=str(event.id), raw_data=event.data)


@router.post(
    "/reports",
    dependencies=[allow(Permission.REPORT)],
    response_model=ReportOut,
    status_code=201,
    summary="Forward a citizen report",
    description="Finds the lamps nearest the point, checks their telemetry and open alerts, and answers "
    "confirmed / not_confirmed / unknown with the evidence. A confirmed report is linked to its alerts.",
)
async def create_report(service: Service, response: Response, report: ReportIn) -> ReportOut:
    row = await service.file_report(report)
    out = await _report_out(service, row)
    service.events.publish("report", out.model_dump_json())
    response.headers["Location"] = f"/api/v1/reports/{row.id}"
    return out


@router.get("/reports", response_model=Page[ReportOut], summary="Citizen reports, newest first")
async def list_reports(
    service: Service,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Page[ReportOut]:
    rows, total = await service.alert_store.reports(limit, offset)
    items = [await _report_out(service, r) for r in rows]
    return Page[ReportOut](items=items, total=total, limit=limit, offset=offset)


@router.get("/reports/{report_id}", response_model=ReportOut, responses=_NOT_FOUND, summary="One report")
async def get_report(service: Service, report_id: RowId) -> ReportOut:
    row = await service.alert_store.report(report_id)
    if row is None:
        raise ApiError(404, "not_found", f"no report {report_id}")
    return await _report_out(service, row)


@router.get(
    "/webhooks/dead-letters",
    response_model=Page[DeadLetterOut],
    summary="Webhook batches that could not be delivered",
)
async def dead_letters(
    service: Service,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Page[DeadLetterOut]:
    rows, total = await service.alert_store.dead_letters(limit, offset)
    items = [
        DeadLetterOut(
            id=r.id,
            webhook_id=r.webhook_id,
            attempts=r.attempts,
            last_error=r.last_error,
            failed_at=r.failed_at,
            events=len(r.body.get("events", [])),
        )
        for r in rows
    ]
    return Page[DeadLetterOut](items=items, total=total, limit=limit, offset=offset)


@router.post(
    "/webhooks/dead-letters/{letter_id}/retry",
    dependencies=[allow(Permission.ADMIN)],
    status_code=202,
    responses=_NOT_FOUND,
    summary="Send a dead letter's events again",
)
async def retry_dead_letter(service: Service, letter_id: RowId) -> dict[str, int]:
    row = await service.retry_dead_letter(letter_id)
    if row is None:
        raise ApiError(404, "not_found", f"no dead letter {letter_id} for a configured webhook")
    return {"queued": len(row.body.get("events", []))}


async def _report_out(service: ControllerService, row: ReportRow) -> ReportOut:
    alerts = await service.alert_store.alerts_by_id(row.alert_ids)
    return ReportOut(
        id=row.id,
        kind=row.kind,
        latitude=row.latitude,
        longitude=row.longitude,
        radius_m=row.radius_m,
        reference=row.reference,
        description=row.description,
        received_at=row.received_at,
        verdict=row.verdict,
        reason=row.reason,
        lamps=row.lamps,
        alerts=[alert_out(a) for a in alerts],
        resolved=bool(alerts) and all(a.cleared_at is not None for a in alerts),
    )

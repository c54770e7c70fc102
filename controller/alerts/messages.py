"""The one shape of an alert event, for MQTT, webhooks, the live event stream and the API."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, Field

from controller.alerts.book import Alert, AlertEvent
from controller.faults import FaultKind


class AlertOut(BaseModel):
    """An alert: stable key (device, kind), severity, its times, and the evidence that tripped it."""

    id: int
    device_id: str
    kind: FaultKind
    severity: Literal["critical", "major", "minor", "warning"]
    state: Literal["active", "acknowledged", "cleared"]
    site: str
    group: str
    raised_at: dt.datetime
    acknowledged_at: dt.datetime | None
    acknowledged_by: str | None
    cleared_at: dt.datetime | None
    evidence: str = Field(description="why it was raised, in words")
    reading: dict[str, Any] | None = Field(description="the reading that tripped it, if a reading did")


class AlertMessage(AlertOut):
    """On `lamplighter/<site>/<device>/alert`, in webhook batches and on `GET /api/v1/events`."""

    event: Literal["raised", "cleared", "acknowledged"]
    at: dt.datetime = Field(description="when this change happened")


def alert_out(a: Alert) -> AlertOut:
    return AlertOut(**_fields(a))


def alert_message(e: AlertEvent) -> AlertMessage:
    a = e.alert
    at = {"raised": a.raised_at, "cleared": a.cleared_at, "acknowledged": a.acknowledged_at}[e.change]
    return AlertMessage(**_fields(a), event=e.change, at=at or a.raised_at)


def _fields(a: Alert) -> dict[str, Any]:
    state = "cleared" if a.cleared_at else "acknowledged" if a.acknowledged_at else "active"
    return {
        "id": a.id if a.id is not None else 0,
        "device_id": a.device_id,
        "kind": a.kind,
        "severity": a.severity,
        "state": state,
        "site": a.site,
        "group": a.group,
        "raised_at": a.raised_at,
        "acknowledged_at": a.acknowledged_at,
        "acknowledged_by": a.acknowledged_by,
        "cleared_at": a.cleared_at,
        "evidence": a.evidence,
        "reading": a.reading,
    }

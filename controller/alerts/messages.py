"""The one shape of an alert event, for MQTT, webhooks, the live event stream and the API."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, Field

from controller.alerts.book import Alert, AlertEvent
from controller.alerts.grouping import AlertGroup
from controller.faults import FaultKind
from controller.words import LANGUAGES, Language, catalog, evidence_in, say

_TITLE = Field(description='what happened, in words, by language: {"vi": "…", "en": "…"}')


class AlertOut(BaseModel):
    """An alert: stable key (device, kind), severity, its times, and the evidence that tripped it."""

    type: Literal["alert"] = "alert"
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
    evidence: str = Field(description="why it was raised: the readings, in figures")
    reading: dict[str, Any] | None = Field(description="the reading that tripped it, if a reading did")
    title: dict[str, str] = _TITLE
    evidence_text: dict[str, str] = Field(
        description='the evidence in words, by language: {"vi": "…", "en": "…"}'
    )
    root_cause: str | None = Field(
        default=None, description="the id of the root-cause group (a failed link) it belongs to, if any"
    )


class AlertMessage(AlertOut):
    """On `lamplighter/<site>/<device>/alert`, in webhook batches and on `GET /api/v1/events`."""

    event: Literal["raised", "cleared", "acknowledged"]
    at: dt.datetime = Field(description="when this change happened")


class AlertGroupOut(BaseModel):
    """One root cause: the devices of one link that failed alike, at once (a gateway, bus, cabinet
    or feeder down). Its members are alerts of their own too."""

    type: Literal["group"] = "group"
    id: str = Field(description="stable while the group lasts: link, kind and first alert id")
    link: str
    kind: FaultKind
    severity: Literal["critical", "major", "minor", "warning"]
    state: Literal["active", "acknowledged", "cleared"]
    site: str
    raised_at: dt.datetime = Field(description="when the first member was raised")
    last_raised_at: dt.datetime
    devices: int = Field(description="devices in the group")
    devices_on_link: int
    device_ids: list[str]
    alert_ids: list[int]
    title: dict[str, str] = _TITLE


class AlertGroupMessage(AlertGroupOut):
    """On `lamplighter/<site>/events`, in webhook batches and as `alert_group` on `GET /api/v1/events`."""

    event: Literal["group_raised", "group_updated", "group_cleared"]
    at: dt.datetime


AnyAlertMessage = AlertMessage | AlertGroupMessage


def alert_out(a: Alert, root_cause: str | None = None, languages: Sequence[Language] = LANGUAGES) -> AlertOut:
    return AlertOut(**_fields(a, languages), root_cause=root_cause)


def alert_message(
    e: AlertEvent, root_cause: str | None = None, languages: Sequence[Language] = LANGUAGES
) -> AlertMessage:
    a = e.alert
    at = {"raised": a.raised_at, "cleared": a.cleared_at, "acknowledged": a.acknowledged_at}[e.change]
    return AlertMessage(**_fields(a, languages), root_cause=root_cause, event=e.change, at=at or a.raised_at)


def group_out(g: AlertGroup, languages: Sequence[Language] = LANGUAGES) -> AlertGroupOut:
    return AlertGroupOut(**_group_fields(g, languages))


def group_message(
    g: AlertGroup,
    event: Literal["group_raised", "group_updated", "group_cleared"],
    at: dt.datetime,
    languages: Sequence[Language] = LANGUAGES,
) -> AlertGroupMessage:
    fields = _group_fields(g, languages)
    if event == "group_cleared":
        fields["state"] = "cleared"
    return AlertGroupMessage(**fields, event=event, at=at)


def group_title(link: str, kind: str, count: int, languages: Sequence[Language]) -> dict[str, str]:
    """ "gw-lethaito: 52 devices unreachable": a kind may have its own wording, else the general one."""
    return {
        lang: say(
            lang,
            f"group.title.{kind}" if f"group.title.{kind}" in catalog(lang) else "group.title",
            link=link,
            count=count,
            kind=say(lang, f"kind.{kind}"),
        )
        for lang in languages
    }


def _fields(a: Alert, languages: Sequence[Language]) -> dict[str, Any]:
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
        "title": {
            lang: say(lang, "alert.title", kind=say(lang, f"kind.{a.kind}"), device=a.device_id)
            for lang in languages
        },
        "evidence_text": {lang: evidence_in(lang, a.evidence) for lang in languages},
    }


def _group_fields(g: AlertGroup, languages: Sequence[Language]) -> dict[str, Any]:
    return {
        "id": g.id,
        "link": g.link,
        "kind": g.kind,
        "severity": g.severity,
        "state": g.state,
        "site": g.site,
        "raised_at": g.raised_at,
        "last_raised_at": g.last_raised_at,
        "devices": len(g.alerts),
        "devices_on_link": g.devices_on_link,
        "device_ids": [a.device_id for a in g.alerts],
        "alert_ids": [a.id or 0 for a in g.alerts],
        "title": group_title(g.link, g.kind, len(g.alerts), languages),
    }

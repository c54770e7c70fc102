"""NGSI-LD (ETSI GS CIM 009) read access in FIWARE Smart Data Models, so a FIWARE-based IOC consumes us as is.

`GET /ngsi-ld/v1/entities?type=Streetlight|StreetlightGroup|AirQualityObserved` and
`GET /ngsi-ld/v1/entities/{id}`, normalized representation, errors as NGSI-LD ProblemDetails.
Mapping (docs/api.md): lamps → Streetlight (dataModel.Streetlighting), their groups →
StreetlightGroup, environmental sensors → AirQualityObserved (dataModel.Environment).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from api.access import Permission, allow
from controller.registry import DeviceRow
from controller.runtime import Controller

router = APIRouter(prefix="/ngsi-ld/v1", tags=["ngsi-ld"], dependencies=[allow(Permission.READ)])
CONTEXT = [
    "https://raw.githubusercontent.com/smart-data-models/dataModel.Streetlighting/master/context.jsonld",
    "https://raw.githubusercontent.com/smart-data-models/dataModel.Environment/master/context.jsonld",
    "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld",
]
TYPES = ("Streetlight", "StreetlightGroup", "AirQualityObserved")
MEDIA = "application/ld+json"
#: open alerts → Streetlight `status` (the model's enumeration)
DEFECTIVE = {"lampFailure", "driverFault", "lampPowerTooLow", "cyclingLamp", "overTemperature"}
COLUMN = {"relayFault", "supplyVoltageTooLow", "supplyVoltageTooHigh", "lampPowerTooHigh"}


def urn(kind: str, key: str) -> str:
    return f"urn:ngsi-ld:{kind}:{key.replace('/', ':')}"


def _problem(status: int, kind: str, title: str, detail: str) -> JSONResponse:
    body = {"type": f"https://uri.etsi.org/ngsi-ld/errors/{kind}", "title": title, "detail": detail}
    return JSONResponse(body, status_code=status, media_type="application/json")


@router.get(
    "/entities",
    summary="NGSI-LD entities of one type",
    description=f"`type` is one of {', '.join(TYPES)}. Paginated with `limit` and `offset`.",
    response_class=JSONResponse,
)
async def entities(
    request: Request,
    type: Annotated[str | None, Query(description="entity type")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> JSONResponse:
    if type is None:
        return _problem(400, "BadRequestData", "type is required", f"give type= one of {', '.join(TYPES)}")
    if type not in TYPES:
        return _problem(
            400, "BadRequestData", "unknown type", f"{type!r}: this broker serves {', '.join(TYPES)}"
        )
    found = await _all(request.app.state.controller, type)
    return JSONResponse(
        found[offset : offset + limit],
        media_type=MEDIA,
        headers={"NGSILD-Results-Count": str(len(found))},
    )


@router.get("/entities/{entity_id}", summary="One NGSI-LD entity", response_class=JSONResponse)
async def entity(request: Request, entity_id: str) -> JSONResponse:
    parts = entity_id.split(":")
    if len(parts) < 4 or parts[:2] != ["urn", "ngsi-ld"] or parts[2] not in TYPES:
        return _problem(404, "ResourceNotFound", "no such entity", entity_id)
    for candidate in await _all(request.app.state.controller, parts[2]):
        if candidate["id"] == entity_id:
            return JSONResponse(candidate, media_type=MEDIA)
    return _problem(404, "ResourceNotFound", "no such entity", entity_id)


async def _all(ctl: Controller, kind: str) -> list[dict[str, Any]]:
    rows = sorted(ctl.devices.values(), key=lambda r: r.id)
    alerts: dict[str, set[str]] = defaultdict(set)
    for device_id, alert_kind in await ctl.open_alerts():
        alerts[device_id].add(alert_kind)
    if kind == "Streetlight":
        return [_streetlight(ctl, r, alerts[r.id]) for r in rows if r.kind == "lamp"]
    if kind == "AirQualityObserved":
        return [e for r in rows if r.kind == "sensor" and (e := _air_quality(ctl, r)) is not None]
    groups: dict[str, list[DeviceRow]] = defaultdict(list)
    for r in rows:
        if r.kind == "lamp":
            groups[r.group_path].append(r)
    return [_group(ctl, path, members, alerts) for path, members in sorted(groups.items())]


def _prop(value: Any, observed: dt.datetime | None = None, unit: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "Property", "value": value}
    if observed is not None:
        out["observedAt"] = observed.isoformat().replace("+00:00", "Z")
    if unit is not None:
        out["unitCode"] = unit
    return out


def _point(lon: float, lat: float) -> dict[str, Any]:
    return {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [lon, lat]}}


def _power_state(values: dict[str, Any]) -> str:
    if not values.get("lamp_on"):
        return "off"
    level = values.get("dim_level_pct")
    return "low" if isinstance(level, int | float) and level < 100 else "on"


def _streetlight(ctl: Controller, row: DeviceRow, alerts: set[str]) -> dict[str, Any]:
    st = ctl.fleet[row.id]
    values = (st.last_reading_doc() or {}).get("values", {})
    status = "defectiveLamp" if alerts & DEFECTIVE else "columnIssue" if alerts & COLUMN else "ok"
    entity: dict[str, Any] = {
        "id": urn("Streetlight", row.id),
        "type": "Streetlight",
        "name": _prop(row.id),
        "location": _point(row.longitude, row.latitude),
        "status": _prop(status),
        "refStreetlightGroup": {"type": "Relationship", "object": urn("StreetlightGroup", row.group_path)},
        "@context": CONTEXT,
    }
    if values:
        entity["powerState"] = _prop(_power_state(values), st.last_seen)
        level = values.get("dim_level_pct")
        if isinstance(level, int | float):
            entity["illuminanceLevel"] = _prop(round(level / 100, 3), st.last_seen)
        power = values.get("power_w")
        if isinstance(power, int | float):
            entity["powerConsumption"] = _prop(round(power, 2), st.last_seen, "WTT")
    if st.state == "offline":
        entity["annotations"] = _prop(["communication lost: values are the last ones received"])
    return entity


def _group(
    ctl: Controller, path: str, members: list[DeviceRow], alerts: dict[str, set[str]]
) -> dict[str, Any]:
    lit = sum(
        1 for m in members if (ctl.fleet[m.id].last_reading_doc() or {}).get("values", {}).get("lamp_on")
    )
    faulty = sum(1 for m in members if alerts[m.id] & (DEFECTIVE | COLUMN))
    lon = sum(m.longitude for m in members) / len(members)
    lat = sum(m.latitude for m in members) / len(members)
    return {
        "id": urn("StreetlightGroup", path),
        "type": "StreetlightGroup",
        "name": _prop(path),
        "location": _point(round(lon, 7), round(lat, 7)),
        "powerState": _prop("on" if lit == len(members) else "off" if lit == 0 else "low"),
        "refStreetlight": {"type": "Relationship", "object": [urn("Streetlight", m.id) for m in members]},
        "annotations": _prop([f"{len(members)} lamps, {lit} lit, {faulty} with an open fault"]),
        "@context": CONTEXT,
    }


def _air_quality(ctl: Controller, row: DeviceRow) -> dict[str, Any] | None:
    st = ctl.fleet[row.id]
    values = (st.last_reading_doc() or {}).get("values", {})
    if not values or st.last_seen is None:
        return None
    entity: dict[str, Any] = {
        "id": urn("AirQualityObserved", row.id),
        "type": "AirQualityObserved",
        "location": _point(row.longitude, row.latitude),
        "dateObserved": _prop(st.last_seen.isoformat().replace("+00:00", "Z")),
        "@context": CONTEXT,
    }
    fields = {
        "pm25": ("pm2_5_ugm3", "GQ", 1.0),
        "pm10": ("pm10_ugm3", "GQ", 1.0),
        "temperature": ("air_temperature_c", "CEL", 1.0),
        "relativeHumidity": ("humidity_pct", "C62", 0.01),  # the model wants a fraction 0–1
    }
    for name, (field, unit, scale) in fields.items():
        value = values.get(field)
        if isinstance(value, int | float):
            entity[name] = _prop(round(value * scale, 4), st.last_seen, unit)
    return entity

"""Our devices as NGSI-LD entities of the FIWARE Smart Data Models, and the terms they are written in.

- a lamp → `Streetlight` (dataModel.Streetlighting): location, status, powerState, illuminanceLevel,
  powerConsumption, refStreetlightGroup, annotations;
- a group of lamps → `StreetlightGroup`: location (centroid), powerState, refStreetlight, annotations;
- a cabinet meter → `StreetlightControlCabinet`, a sensor → `AirQualityObserved`, `WeatherObserved`
  or `NoiseLevelObserved` by what it observes, anything else → `Device` (api/ngsi_devices.py); a
  profile may name another of these (`ngsi_type`).

Entities are built in their normalized form from the live state; the other representations
(keyValues, GeoJSON) are derived from it (api/ngsi_ld.py). The terms' full IRIs are those of the
Smart Data Models' and ETSI's @context documents, so a client may name types and attributes either
way (`Streetlight` or `https://uri.etsi.org/ngsi-ld/default-context/Streetlight`).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from api.ngsi_devices import device_entity
from controller.device import Device
from controller.errors import ServiceError
from controller.fleet import DeviceStatus
from controller.service import ControllerService

CORE_CONTEXT = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld"
STREETLIGHTING = (
    "https://raw.githubusercontent.com/smart-data-models/dataModel.Streetlighting/master/context.jsonld"
)
ENVIRONMENT = (
    "https://raw.githubusercontent.com/smart-data-models/dataModel.Environment/master/context.jsonld"
)
WEATHER = "https://raw.githubusercontent.com/smart-data-models/dataModel.Weather/master/context.jsonld"
DEVICE = "https://raw.githubusercontent.com/smart-data-models/dataModel.Device/master/context.jsonld"
CONTEXT = [STREETLIGHTING, ENVIRONMENT, WEATHER, DEVICE, CORE_CONTEXT]
#: contexts a client may name in its Link header: their terms are ours (we cannot fetch others)
KNOWN_CONTEXTS = frozenset(
    {
        *CONTEXT,
        "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.6.jsonld",
        "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.7.jsonld",
        "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld",
        "https://smartdatamodels.org/context.jsonld",
        "https://smart-data-models.github.io/dataModel.Streetlighting/context.jsonld",
        "https://smart-data-models.github.io/dataModel.Environment/context.jsonld",
        "https://smart-data-models.github.io/dataModel.Weather/context.jsonld",
        "https://smart-data-models.github.io/dataModel.Device/context.jsonld",
    }
)
#: every type we export; the lamps' groups are ours, the others are each device's profile's
DEVICE_TYPES = (
    "StreetlightControlCabinet",
    "AirQualityObserved",
    "WeatherObserved",
    "NoiseLevelObserved",
    "Device",
)
TYPES = ("Streetlight", "StreetlightGroup", *DEVICE_TYPES)
_SDM = "https://smartdatamodels.org/"
_VOCAB = "https://uri.etsi.org/ngsi-ld/default-context/"
#: full IRI → our short name, for types and attributes
_IRIS: dict[str, str] = {
    **{f"{_VOCAB}{t}": t for t in TYPES},
    f"{_SDM}dataModel.Streetlighting/Streetlight": "Streetlight",
    f"{_SDM}dataModel.Streetlighting/StreetlightGroup": "StreetlightGroup",
    f"{_SDM}dataModel.Environment/AirQualityObserved": "AirQualityObserved",
    f"{_SDM}dataModel.Environment/NoiseLevelObserved": "NoiseLevelObserved",
    f"{_SDM}dataModel.Weather/WeatherObserved": "WeatherObserved",
    f"{_SDM}dataModel.Streetlighting/StreetlightControlCabinet": "StreetlightControlCabinet",
    f"{_SDM}dataModel.Device/Device": "Device",
    "https://uri.etsi.org/ngsi-ld/location": "location",
    "https://uri.etsi.org/ngsi-ld/status": "status",
    f"{_SDM}annotations": "annotations",
    f"{_SDM}name": "name",
    f"{_SDM}dataModel.Environment/name": "name",
    **{
        f"{_SDM}dataModel.Streetlighting/{a}": a
        for a in (
            "powerState",
            "illuminanceLevel",
            "powerConsumption",
            "refStreetlightGroup",
            "refStreetlight",
        )
    },
    **{
        f"{_SDM}dataModel.Environment/{a}": a
        for a in ("dateObserved", "pm25", "pm10", "temperature", "relativeHumidity")
    },
}
#: open alerts → Streetlight `status` (the model's enumeration)
DEFECTIVE = {"lampFailure", "driverFault", "lampPowerTooLow", "cyclingLamp", "overTemperature"}
COLUMN = {"relayFault", "supplyVoltageTooLow", "supplyVoltageTooHigh", "lampPowerTooHigh"}


def short_name(term: str) -> str:
    """Our name for a type or attribute written short or as a full IRI (others stay as written)."""
    return _IRIS.get(term, term.removeprefix(_VOCAB))


def urn(kind: str, key: str) -> str:
    return f"urn:ngsi-ld:{kind}:{key.replace('/', ':')}"


async def entities_of(service: ControllerService, kinds: set[str]) -> list[dict[str, Any]]:
    """Every entity of these types, normalized, sorted by type then id."""
    rows = sorted(service.rows(), key=lambda r: r.id)
    states = service.statuses()
    alerts: dict[str, set[str]] = defaultdict(set)
    if kinds & {"Streetlight", "StreetlightGroup"}:
        for device_id, alert_kind in await service.open_alerts():
            alerts[device_id].add(alert_kind)
    typed = [(r, service.settings.profile(r.profile)) for r in rows]
    lamps = [r for r, p in typed if p.profile.entity_type == "Streetlight"]
    found: dict[str, list[dict[str, Any]]] = {}
    for kind in DEVICE_TYPES:
        if kind in kinds:
            made = (
                device_entity(kind, states[r.id], r, p, urn(kind, r.id))
                for r, p in typed
                if p.profile.entity_type == kind
            )
            found[kind] = [e for e in made if e is not None]
    if "AirQualityObserved" in found:
        _add_air_index(service, found["AirQualityObserved"])
    if "Streetlight" in kinds:
        found["Streetlight"] = [_streetlight(states[r.id], r, alerts[r.id]) for r in lamps]
    if "StreetlightGroup" in kinds:
        groups: dict[str, list[Device]] = defaultdict(list)
        for r in lamps:
            groups[r.group_path].append(r)
        found["StreetlightGroup"] = [
            _group(states, p, members, alerts) for p, members in sorted(groups.items())
        ]
    return [e for kind in sorted(found) for e in found[kind]]


def _prop(value: Any, observed: dt.datetime | None = None, unit: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "Property", "value": value}
    if observed is not None:
        out["observedAt"] = observed.isoformat().replace("+00:00", "Z")
    if unit is not None:
        out["unitCode"] = unit
    return out


def _add_air_index(service: ControllerService, entities: list[dict[str, Any]]) -> None:
    """The hourly index (VN_AQI or US EPA, `[air] index`) of each sensor that has one: its value,
    level and reliability, observed at the end of its hour."""
    try:
        figures = service.air.sensors
    except ServiceError:  # the index is off, or not computed yet
        return
    prefix = urn("AirQualityObserved", "")
    hour_s = service.settings.air.hour_s
    for entity in entities:
        figure = figures.get(entity["id"].removeprefix(prefix))
        if figure is None or figure.level is None:
            continue
        observed = figure.hour + dt.timedelta(seconds=hour_s)
        entity["airQualityIndex"] = _prop(figure.index, observed)
        entity["airQualityLevel"] = _prop(figure.level.key, observed)
        entity["reliability"] = _prop(figure.reliability, observed)


def _point(lon: float, lat: float) -> dict[str, Any]:
    return {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [lon, lat]}}


def _power_state(values: Mapping[str, Any]) -> str:
    if not values.get("lamp_on"):
        return "off"
    level = values.get("dim_level_pct")
    return "low" if isinstance(level, int | float) and level < 100 else "on"


def _streetlight(st: DeviceStatus, row: Device, alerts: set[str]) -> dict[str, Any]:
    values = st.last_values()
    status = "defectiveLamp" if alerts & DEFECTIVE else "columnIssue" if alerts & COLUMN else "ok"
    entity: dict[str, Any] = {
        "id": urn("Streetlight", row.id),
        "type": "Streetlight",
        "name": _prop(row.id),
        "location": _point(row.longitude, row.latitude),
        "status": _prop(status),
        "refStreetlightGroup": {"type": "Relationship", "object": urn("StreetlightGroup", row.group_path)},
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
    states: Mapping[str, DeviceStatus], path: str, members: list[Device], alerts: dict[str, set[str]]
) -> dict[str, Any]:
    lit = sum(1 for m in members if states[m.id].last_values().get("lamp_on"))
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
    }

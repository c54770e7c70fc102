"""NGSI-LD entities for the devices that are not lamps: cabinet meters, observing sensors, other devices.

Each profile names its Smart Data Model (`ngsi_type`, else told by its kind and observation,
drivers/profile.py). The well-known fields go where each model puts them, with the model's units
(a cabinet's `totalActivePower` in kW, a `relativeHumidity` as a fraction); a field the profile
declares itself goes out under the attribute its `ngsi` names (`voltageR`), in its own unit.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from controller.device import Device
from controller.fleet import DeviceStatus
from drivers.fields import FieldValue
from drivers.profile import DeviceProfile

#: field → (attribute, UN/CEFACT unit code, factor from our unit to the model's), per model
WELL_KNOWN: dict[str, dict[str, tuple[str, str | None, float]]] = {
    "AirQualityObserved": {
        "pm2_5_ugm3": ("pm25", "GQ", 1.0),
        "pm10_ugm3": ("pm10", "GQ", 1.0),
        "air_temperature_c": ("temperature", "CEL", 1.0),
        "humidity_pct": ("relativeHumidity", "C62", 0.01),  # the model wants a fraction 0–1
    },
    "WeatherObserved": {
        "air_temperature_c": ("temperature", "CEL", 1.0),
        "humidity_pct": ("relativeHumidity", "C62", 0.01),
        "pressure_hpa": ("atmosphericPressure", "A97", 1.0),
        "illuminance_lx": ("illuminance", "LUX", 1.0),
    },
    "NoiseLevelObserved": {"noise_dba": ("LAeq", "2N", 1.0)},
    "StreetlightControlCabinet": {
        "power_w": ("totalActivePower", "KWT", 0.001),
        "energy_wh": ("energyConsumed", "KWH", 0.001),
        "power_factor": ("cosPhi", None, 1.0),
    },
    "Device": {
        "battery_pct": ("batteryLevel", "C62", 0.01),
        "firmware_version": ("firmwareVersion", None, 1.0),
    },
}
#: what a Device measures, in the model's controlledProperty words
CONTROLLED: dict[str, str] = {
    "power_w": "power",
    "energy_wh": "energy",
    "voltage_v": "electricityConsumption",
    "current_a": "electricityConsumption",
    "air_temperature_c": "temperature",
    "temperature_c": "temperature",
    "humidity_pct": "humidity",
    "illuminance_lx": "light",
    "noise_dba": "noiseLevel",
    "pm2_5_ugm3": "airPollution",
    "pm10_ugm3": "airPollution",
    "pressure_hpa": "atmosphericPressure",
    "clients": "occupancy",
}
#: our unit → UN/CEFACT common code, for a declared field's unitCode
UNIT_CODES: dict[str, str] = {
    "V": "VLT", "mV": "2Z", "A": "AMP", "mA": "4K", "W": "WTT", "kW": "KWT", "Wh": "WHR",
    "kWh": "KWH", "VA": "D46", "var": "D44", "kvarh": "K3", "varh": "D45", "Hz": "HTZ", "Cel": "CEL",
    "%RH": "P1", "%": "P1", "ug/m3": "GQ", "mg/m3": "GP", "lx": "LUX", "hPa": "A97", "Pa": "PAL",
    "dB": "2N", "dBm": "2N", "ppm": "59", "s": "SEC", "h": "HUR", "m/s": "MTS", "mm/h": "H67",
}  # fmt: skip


def _prop(value: Any, observed: dt.datetime | None, unit: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "Property", "value": value}
    if observed is not None:
        out["observedAt"] = _iso(observed)
    if unit is not None:
        out["unitCode"] = unit
    return out


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _point(row: Device) -> dict[str, Any]:
    return {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [row.longitude, row.latitude]}}


def measured(
    entity_type: str, profile: DeviceProfile, values: Mapping[str, FieldValue], seen: dt.datetime | None
) -> dict[str, Any]:
    """The attributes the readings give: well-known fields by the model, declared ones by their `ngsi`."""
    out: dict[str, Any] = {}
    for field, (name, unit, factor) in WELL_KNOWN.get(entity_type, {}).items():
        value = values.get(field)
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[name] = _prop(round(value * factor, 6), seen, unit)
        elif isinstance(value, str):
            out[name] = _prop(value, seen)
    for field, declared in profile.fields.items():
        value = values.get(field)
        if declared.ngsi is not None and value is not None and not isinstance(value, bool):
            out[declared.ngsi] = _prop(value, seen, UNIT_CODES.get(declared.unit))
    return out


def device_entity(
    entity_type: str, st: DeviceStatus, row: Device, profile: DeviceProfile, urn: str
) -> dict[str, Any] | None:
    """A cabinet meter, an observing sensor or another device; None for an observation not yet made."""
    values = st.last_values()
    seen = st.last_seen
    entity: dict[str, Any] = {"id": urn, "type": entity_type, "location": _point(row)}
    if entity_type.endswith("Observed"):
        if not values or seen is None:
            return None  # an observation that has not been made is no entity
        if entity_type == "NoiseLevelObserved":
            entity["dateObservedFrom"] = _prop(_iso(seen), None)
            entity["dateObservedTo"] = _prop(_iso(seen), None)
        else:
            entity["dateObserved"] = _prop(_iso(seen), None)
    elif entity_type == "StreetlightControlCabinet":
        entity["name"] = _prop(row.id, None)
        entity["workingMode"] = _prop("semiautomatic", None)  # schedules, and operators may override
        entity["refStreetlightGroup"] = {
            "type": "Relationship",
            "object": [f"urn:ngsi-ld:StreetlightGroup:{row.group_path.replace('/', ':')}"],
        }
        if profile.profile.maker:
            entity["manufacturerName"] = _prop(profile.profile.maker, None)
        entity["modelName"] = _prop(profile.profile.model, None)
    else:  # Device
        entity["name"] = _prop(row.id, None)
        fields = profile.mapped_fields()
        controlled = sorted({CONTROLLED[f] for f in fields if f in CONTROLLED}) or ["power"]
        entity["controlledProperty"] = _prop(controlled, None)
        entity["deviceState"] = _prop(st.state, None)
        if seen is not None:
            entity["dateLastValueReported"] = _prop(_iso(seen), None)
    entity.update(measured(entity_type, profile, values, seen))
    return entity

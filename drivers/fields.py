"""Reading fields and their units: the well-known vocabulary above `drivers/`, and the rules for the
fields a profile declares itself.

Every well-known field name carries its unit, so no scaled integer ever leaves this package. The
well-known fields keep their meaning everywhere (fault detection reads `power_w`, energy reads
`energy_wh`, the dashboard and NGSI-LD `pm2_5_ugm3` …): a profile maps a register or a JSON path
onto one to say "this is the lamp's power". Anything else a device measures (a meter's frequency,
per-phase voltages) a profile declares in its `[fields]` table with a SenML unit (RFC 8428).
"""

from __future__ import annotations

import re
from typing import Annotated, Final

from pydantic import AfterValidator

#: a decoded value: a number with its unit in the field's name, a switch, or text (a version)
FieldValue = float | int | bool | str

#: field name → (unit, description). Profiles may only map registers onto these names.
READING_FIELDS: Final[dict[str, tuple[str, str]]] = {
    "dim_level_pct": ("%", "actual light output level"),
    "lamp_on": ("bool", "lamp relay closed"),
    "voltage_v": ("V", "supply voltage (RMS)"),
    "current_a": ("A", "lamp current (RMS)"),
    "power_w": ("W", "active power"),
    "power_factor": ("", "power factor, 0–1"),
    "energy_wh": ("Wh", "cumulative active energy"),
    "temperature_c": ("°C", "driver temperature"),
    "burning_hours_h": ("h", "cumulative lamp burning time"),
    "firmware_version": ("", "firmware version, major.minor"),
    "rated_power_w": ("W", "nameplate rating reported by the device"),
    # environmental sensors
    "pm2_5_ugm3": ("µg/m³", "fine particulate matter, PM2.5"),
    "pm10_ugm3": ("µg/m³", "coarse particulate matter, PM10"),
    "air_temperature_c": ("°C", "ambient air temperature"),
    "humidity_pct": ("%", "relative humidity"),
    "noise_dba": ("dB(A)", "A-weighted sound level"),
    "illuminance_lx": ("lx", "ambient light"),
    "pressure_hpa": ("hPa", "barometric pressure"),
    "battery_pct": ("%", "battery charge of a battery-powered sensor"),
    # public Wi-Fi access points
    "clients": ("", "associated Wi-Fi clients"),
    "rx_kbps": ("kbit/s", "throughput received from clients"),
    "tx_kbps": ("kbit/s", "throughput sent to clients"),
    "uptime_s": ("s", "time since the access point booted"),
}

#: setpoints a command may write (the controller maps actions onto these).
SETPOINT_FIELDS: Final[dict[str, tuple[str, str]]] = {
    "dim_level_pct": ("%", "commanded dim level, 0–100"),
    "lamp_on": ("bool", "commanded relay state"),
}

#: status flags a status-bits register may declare.
STATUS_FLAGS: Final[frozenset[str]] = frozenset(
    {"lamp_failure", "driver_fault", "relay_fault", "over_temperature", "voltage_sag"}
)


#: a field's name: lower case, digits and _, as it is stored (safe inside any query) and shown
FIELD_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")

#: the unit names a declared field may have: SenML's (RFC 8428 section 12.1, and RFC 8798's
#: additions and secondary units) …
_SENML_NAMES = """
    m kg g s A K cd mol Hz rad sr N Pa J W C V F Ohm S Wb T H Cel lm lx Bq Gy Sv kat
    m2 m3 l m/s m/s2 m3/s l/s W/m2 cd/m2 bit bit/s lat lon pH dB dBW Bspl count / %
    %RH %EL EL 1/s 1/min beat/min beats S/m B VA VAs var vars J/m kg/m3 deg
    ms min h MHz kW kVA kvar Ah Wh kWh varh kvarh kVAh Wh/km KiB GB Mbit/s B/s MB/s
    mV mA dBm ug/m3 mm/h m/h ppm /100m
"""
SENML_UNITS: Final[frozenset[str]] = frozenset(_SENML_NAMES.split())
#: … a few units city sensors report that SenML does not name (so a profile need not convert) …
OTHER_UNITS: Final[frozenset[str]] = frozenset({"hPa", "mm", "km", "km/h", "mW", "NTU", "mg/m3", "ppb"})
#: … and "" for a count or ratio, "bool" for a switch, "text" for a string
UNITS: Final[frozenset[str]] = SENML_UNITS | OTHER_UNITS | {"", "bool", "text"}


def _field_name(name: str) -> str:
    if not FIELD_NAME.match(name):
        raise ValueError(f"field name {name!r}: lower-case letters, digits and _ (e.g. frequency_hz)")
    return name


#: the name of a field a profile layout (registers, JSON, line, GATT) maps onto: well-known
#: (READING_FIELDS) or declared in the profile's [fields] (checked by the profile)
ReadingFieldName = Annotated[str, AfterValidator(_field_name)]

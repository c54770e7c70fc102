"""Canonical reading fields and their units: the vocabulary above `drivers/`.

Every field name carries its unit, so no scaled integer ever leaves this package.
"""

from __future__ import annotations

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


def _reading_field(name: str) -> str:
    if name not in READING_FIELDS:
        raise ValueError(f"unknown field {name!r}; known: {sorted(READING_FIELDS)}")
    return name


#: a field name every profile layout (registers, JSON, line, GATT) must map onto
ReadingFieldName = Annotated[str, AfterValidator(_reading_field)]

"""Converting what a device sends into the unit its field is stored in (`unit = "kWh"` onto `energy_wh`).

A profile says which unit a register or JSON value comes in; the profile's loader turns that into a
gain and an offset once (pint does the arithmetic, so kWh → Wh, mA → A, % → ratio and °F → °C are
all its answer, not ours), and the decoders apply them: value × scale × gain + offset.
"""

from __future__ import annotations

import functools
from typing import Any, Final

#: our unit names (SenML's, and the well-known fields') → pint's
_PINT_NAMES: Final[dict[str, str]] = {
    "": "dimensionless",
    "/": "dimensionless",
    "count": "dimensionless",
    "%": "percent",
    "%RH": "percent",
    "%EL": "percent",
    "Cel": "degC",
    "°C": "degC",
    "degF": "degF",
    "°F": "degF",
    "K": "kelvin",
    "ug/m3": "microgram / meter ** 3",
    "µg/m³": "microgram / meter ** 3",
    "mg/m3": "milligram / meter ** 3",
    "kg/m3": "kilogram / meter ** 3",
    "Ohm": "ohm",
    "l": "liter",
    "l/s": "liter / second",
    "m2": "meter ** 2",
    "m3": "meter ** 3",
    "m3/s": "meter ** 3 / second",
    "m/s2": "meter / second ** 2",
    "W/m2": "watt / meter ** 2",
    "cd/m2": "candela / meter ** 2",
    "kbit/s": "kilobit / second",
    "Mbit/s": "megabit / second",
    "bit/s": "bit / second",
    "B/s": "byte / second",
    "MB/s": "megabyte / second",
    "B": "byte",
    "KiB": "kibibyte",
    "GB": "gigabyte",
    "VA": "volt * ampere",
    "kVA": "kilovolt * ampere",
    "VAs": "volt * ampere * second",
    "kVAh": "kilovolt * ampere * hour",
    "var": "volt * ampere",
    "kvar": "kilovolt * ampere",
    "varh": "volt * ampere * hour",
    "kvarh": "kilovolt * ampere * hour",
    "Wh": "watt * hour",
    "kWh": "kilowatt * hour",
    "Ah": "ampere * hour",
    "h": "hour",
    "min": "minute",
    "ms": "millisecond",
    "km/h": "kilometer / hour",
    "mm/h": "millimeter / hour",
    "m/h": "meter / hour",
    "1/s": "1 / second",
    "1/min": "1 / minute",
    "ppm": "ppm",
    "ppb": "ppb",
}

#: units that are not quantities pint can convert: only the same unit fits
_NOT_CONVERTIBLE: Final[frozenset[str]] = frozenset(
    {
        "bool",
        "text",
        "dB",
        "dBW",
        "dBm",
        "dB(A)",
        "Bspl",
        "lat",
        "lon",
        "pH",
        "beat/min",
        "beats",
        "EL",
        "NTU",
    }
)


class UnitError(ValueError):
    """A unit this profile cannot be converted from (says which and why)."""


@functools.cache
def _registry() -> Any:
    import pint

    return pint.UnitRegistry()


def conversion(source: str, target: str) -> tuple[float, float]:
    """(gain, offset) turning a value in `source` into `target`; UnitError if they do not fit."""
    if source == target:
        return 1.0, 0.0
    if source in _NOT_CONVERTIBLE or target in _NOT_CONVERTIBLE:
        raise UnitError(f"cannot convert {source!r} to {target!r}: only the same unit fits")
    import pint

    units = _registry()
    try:
        zero = units.Quantity(0.0, _PINT_NAMES.get(source, source)).to(_PINT_NAMES.get(target, target))
        one = units.Quantity(1.0, _PINT_NAMES.get(source, source)).to(_PINT_NAMES.get(target, target))
    except pint.DimensionalityError:
        raise UnitError(f"cannot convert {source!r} to {target!r}: they measure different things") from None
    except (pint.UndefinedUnitError, AttributeError, TypeError, ValueError, AssertionError):
        raise UnitError(f"unknown unit {source!r} or {target!r}") from None
    offset = float(zero.magnitude)
    gain = float(one.magnitude) - offset
    return float(f"{gain:.12g}"), float(f"{offset:.12g}")

"""Fault detectors: small pure functions over a device's recent readings and its expected state.

Each returns the evidence (a short, human sentence) when its fault is present, else None. Names follow
TALQ's lamp and device failure vocabulary. No I/O: the reading path gives them what they need, and
tests give them plain values. Thresholds are a `Thresholds` value (profiles and groups tune them).
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

FaultKind = Literal[
    "lampFailure",
    "dayBurning",
    "cyclingLamp",
    "lampPowerTooHigh",
    "lampPowerTooLow",
    "supplyVoltageTooHigh",
    "supplyVoltageTooLow",
    "relayFault",
    "driverFault",
    "communicationFailure",
    "sensorStale",
    "sensorOutOfRange",
    "accessPointOffline",
]


@dataclass(frozen=True)
class Thresholds:
    voltage_min_v: float = 207.0  # 230 V −10 %
    voltage_max_v: float = 253.0  # 230 V +10 %
    power_tolerance: float = 0.25  # ±25 % of the power the level and rating predict
    lamp_failure_ratio: float = 0.2  # below 20 % of the predicted power: the lamp is out
    standby_w: float = 2.0  # what a lit-but-idle controller may draw
    cycling_toggles: int = 4  # on/off changes within the window …
    cycling_window: dt.timedelta = dt.timedelta(minutes=10)
    missed_polls: int = 3  # comms loss by the third missed poll
    stale_after: dt.timedelta = dt.timedelta(minutes=15)


@dataclass(frozen=True)
class DeviceView:
    """What the detectors know about one device at one moment."""

    device_id: str
    kind: Literal["lamp", "sensor", "access_point"]
    now: dt.datetime
    readings: Sequence[Mapping[str, Any]]  # recent reading documents, oldest first ({"ts", "values", …})
    state: str = "ok"
    consecutive_failures: int = 0
    last_seen: dt.datetime | None = None
    rated_power_w: float | None = None
    expected_level: int | None = None  # what the schedule or the last command asked for
    sun_up: bool = False
    thresholds: Thresholds = field(default_factory=Thresholds)

    @property
    def last(self) -> Mapping[str, Any]:
        return self.readings[-1] if self.readings else {}

    def value(self, name: str) -> Any:
        return self.last.get("values", {}).get(name)

    def flag(self, name: str) -> bool:
        return bool(self.last.get("status", {}).get(name))


Detector = Callable[[DeviceView], str | None]


def lamp_failure(d: DeviceView) -> str | None:
    if d.kind != "lamp" or not d.readings:
        return None
    if d.flag("lamp_failure"):
        return "the controller reports lamp failure (status bit 0)"
    expected = _expected_power(d)
    power = d.value("power_w")
    if (
        expected
        and d.value("lamp_on")
        and isinstance(power, int | float)
        and power < d.thresholds.lamp_failure_ratio * expected
    ):
        return f"draws {power:g} W where {expected:g} W is expected at {d.expected_level} %"
    return None


def day_burning(d: DeviceView) -> str | None:
    if d.kind != "lamp" or not d.sun_up or d.expected_level not in (0, None):
        return None
    power = d.value("power_w")
    if d.value("lamp_on") and isinstance(power, int | float) and power > d.thresholds.standby_w:
        return f"lit ({power:g} W) while the sun is up and nothing asked for light"
    return None


def cycling_lamp(d: DeviceView) -> str | None:
    if d.kind != "lamp":
        return None
    since = d.now - d.thresholds.cycling_window
    states = [r.get("values", {}).get("lamp_on") for r in d.readings if _ts(r) >= since]
    toggles = sum(1 for a, b in itertools.pairwise(states) if a is not None and b is not None and a != b)
    if toggles >= d.thresholds.cycling_toggles:
        minutes = d.thresholds.cycling_window / dt.timedelta(minutes=1)
        return f"switched on/off {toggles} times in {minutes:g} min"
    return None


def lamp_power(d: DeviceView) -> tuple[str | None, str | None]:
    """(too high, too low) evidence; a lamp that is out is lampFailure, not lampPowerTooLow."""
    expected = _expected_power(d)
    power = d.value("power_w")
    if d.kind != "lamp" or not expected or not isinstance(power, int | float) or not d.value("lamp_on"):
        return None, None
    tol = d.thresholds.power_tolerance
    if power > expected * (1 + tol):
        return (
            f"draws {power:g} W, more than {expected * (1 + tol):g} W allowed at {d.expected_level} %",
            None,
        )
    if d.thresholds.lamp_failure_ratio * expected <= power < expected * (1 - tol):
        return (
            None,
            f"draws {power:g} W, less than {expected * (1 - tol):g} W expected at {d.expected_level} %",
        )
    return None, None


def supply_voltage(d: DeviceView) -> tuple[str | None, str | None]:
    volts = d.value("voltage_v")
    if not isinstance(volts, int | float):
        return None, None
    t = d.thresholds
    if volts > t.voltage_max_v:
        return f"supply {volts:g} V above {t.voltage_max_v:g} V", None
    if volts < t.voltage_min_v:
        return None, f"supply {volts:g} V below {t.voltage_min_v:g} V"
    return None, None


def relay_fault(d: DeviceView) -> str | None:
    return "the controller reports a relay fault (status bit 2)" if d.flag("relay_fault") else None


def driver_fault(d: DeviceView) -> str | None:
    return "the controller reports a driver fault (status bit 1)" if d.flag("driver_fault") else None


def communication_failure(d: DeviceView) -> str | None:
    if d.kind == "access_point":
        return None  # access points have their own offline alert
    if d.consecutive_failures >= d.thresholds.missed_polls:
        return f"{d.consecutive_failures} polls in a row unanswered"
    return None


def sensor_stale(d: DeviceView) -> str | None:
    if d.kind != "sensor":
        return None
    if d.last_seen is None or d.now - d.last_seen > d.thresholds.stale_after:
        age = (
            "never"
            if d.last_seen is None
            else f"{(d.now - d.last_seen) / dt.timedelta(minutes=1):.0f} min ago"
        )
        return f"last reading {age}"
    return None


def sensor_out_of_range(d: DeviceView) -> str | None:
    rejected = d.last.get("rejected") or {}
    if d.kind == "sensor" and rejected:
        return "; ".join(f"{k}: {v}" for k, v in sorted(rejected.items()))
    return None


def access_point_offline(d: DeviceView) -> str | None:
    if d.kind == "access_point" and d.state == "offline":
        return "offline (last will received, or no report)"
    return None


def detect(d: DeviceView) -> dict[FaultKind, str]:
    """Every fault present on the device now, with its evidence."""
    found: dict[FaultKind, str | None] = {
        "lampFailure": lamp_failure(d),
        "dayBurning": day_burning(d),
        "cyclingLamp": cycling_lamp(d),
        "relayFault": relay_fault(d),
        "driverFault": driver_fault(d),
        "communicationFailure": communication_failure(d),
        "sensorStale": sensor_stale(d),
        "sensorOutOfRange": sensor_out_of_range(d),
        "accessPointOffline": access_point_offline(d),
    }
    found["lampPowerTooHigh"], found["lampPowerTooLow"] = lamp_power(d)
    found["supplyVoltageTooHigh"], found["supplyVoltageTooLow"] = supply_voltage(d)
    return {kind: evidence for kind, evidence in found.items() if evidence}


def _expected_power(d: DeviceView) -> float | None:
    if d.rated_power_w is None or not d.expected_level:
        return None
    return d.rated_power_w * d.expected_level / 100


def _ts(reading: Mapping[str, Any]) -> dt.datetime:
    ts = reading.get("ts")
    return dt.datetime.fromisoformat(ts) if isinstance(ts, str) else ts  # type: ignore[return-value]

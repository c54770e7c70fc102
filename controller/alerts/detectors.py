"""Fault detectors: small pure functions over a device's recent readings and its expected state.

Each returns the evidence (a short, human sentence) when its fault is present, else None. Names follow
TALQ's lamp and device failure vocabulary. No I/O: the reading path gives them what they need, and
tests give them plain values. Thresholds are a `Thresholds` value (profiles and groups tune them).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from controller.faults import FaultKind, Thresholds
from controller.vocabulary import DeviceKind
from drivers.base import Reading


@dataclass(frozen=True)
class Expected:
    """What the schedule or the last command asked of a lamp, and when."""

    on: bool | None = None  # None: nothing has asked anything
    level: int | None = None  # 0–100 when known
    since: dt.datetime | None = None

    @property
    def lit_level(self) -> int | None:
        """The level the lamp should show: 0 when asked off, None when unknown."""
        if self.on is False:
            return 0
        return self.level if self.on else None


@dataclass(frozen=True)
class DeviceView:
    """What the detectors know about one device at one moment."""

    device_id: str
    kind: DeviceKind
    now: dt.datetime
    reading: Reading | None  # the latest reading
    switches: Sequence[tuple[dt.datetime, bool]] = ()  # recent lamp_on changes, oldest first
    state: str = "ok"
    consecutive_failures: int = 0
    last_seen: dt.datetime | None = None
    rated_power_w: float | None = None
    expected: Expected = Expected()
    sun_up: bool = False
    thresholds: Thresholds = field(default_factory=Thresholds)

    @property
    def last(self) -> Reading | None:
        return self.reading

    def value(self, name: str) -> object:
        return self.last.values.get(name) if self.last else None

    def flag(self, name: str) -> bool:
        return bool(self.last.status.get(name)) if self.last else False

    @property
    def settled(self) -> bool:
        """The last reading was taken long enough after the last command to be judged against it."""
        since = self.expected.since
        last = self.last
        if since is None or last is None:
            return True
        return (last.ts - since).total_seconds() >= self.thresholds.settle_s


Detector = Callable[[DeviceView], str | None]


def lamp_failure(d: DeviceView) -> str | None:
    last = d.reading
    if d.kind != "lamp" or last is None:
        return None
    status = last.status
    if status.get("lamp_failure"):
        return "the controller reports lamp failure (status bit 0)"
    if status.get("driver_fault") or status.get("relay_fault"):
        return None  # a dead driver or an open relay explains the dark lamp: that is its own fault
    power = last.values.get("power_w")
    if not last.values.get("lamp_on") or not isinstance(power, int | float):
        return None
    expected = _expected_power(d)
    if expected and power < d.thresholds.lamp_failure_ratio * expected and d.settled:
        return f"draws {power:g} W where {expected:g} W is expected at {d.expected.level} %"
    return None


def day_burning(d: DeviceView) -> str | None:
    if d.kind != "lamp" or not d.sun_up or d.expected.on or not d.settled:
        return None
    power = d.value("power_w")
    if d.value("lamp_on") and isinstance(power, int | float) and power > d.thresholds.standby_w:
        return f"lit ({power:.0f} W) while the sun is up and nothing asked for light"
    return None


def cycling_lamp(d: DeviceView) -> str | None:
    if d.kind != "lamp" or len(d.switches) < d.thresholds.cycling_toggles:
        return None
    since = d.now - dt.timedelta(seconds=d.thresholds.cycling_window_s)
    toggles = sum(1 for ts, _ in d.switches if ts >= since)
    if toggles >= d.thresholds.cycling_toggles:
        return f"switched on/off {toggles} times in {d.thresholds.cycling_window_s:g} s"
    return None


def lamp_power(d: DeviceView) -> tuple[str | None, str | None]:
    """(too high, too low) evidence; a lamp that is out is lampFailure, not lampPowerTooLow."""
    expected = _expected_power(d)
    power = d.value("power_w")
    if (
        d.kind != "lamp"
        or not expected
        or not d.settled
        or not isinstance(power, int | float)
        or not d.value("lamp_on")
    ):
        return None, None
    tol = d.thresholds.power_tolerance
    level = d.expected.level
    if power > expected * (1 + tol):
        return f"draws {power:.1f} W, more than {expected * (1 + tol):g} W allowed at {level} %", None
    if d.thresholds.lamp_failure_ratio * expected <= power < expected * (1 - tol):
        return None, f"draws {power:.1f} W, less than {expected * (1 - tol):g} W expected at {level} %"
    return None, None


def supply_voltage(d: DeviceView) -> tuple[str | None, str | None]:
    volts = d.value("voltage_v")
    if not isinstance(volts, int | float):
        return None, None
    t = d.thresholds
    if volts > t.voltage_max_v:
        return f"supply {volts:.1f} V above {t.voltage_max_v:g} V", None
    if volts < t.voltage_min_v:
        return None, f"supply {volts:.1f} V below {t.voltage_min_v:g} V"
    return None, None


def relay_fault(d: DeviceView) -> str | None:
    return "the controller reports a relay fault (status bit 2)" if d.flag("relay_fault") else None


def driver_fault(d: DeviceView) -> str | None:
    return "the controller reports a driver fault (status bit 1)" if d.flag("driver_fault") else None


def over_temperature(d: DeviceView) -> str | None:
    if not d.flag("over_temperature"):
        return None
    temp = d.value("temperature_c")
    at = f" at {temp:.0f} °C" if isinstance(temp, int | float) else ""
    return f"the controller reports over-temperature{at} (status bit 3)"


def communication_failure(d: DeviceView) -> str | None:
    if d.kind == "access_point":
        return None  # access points have their own offline alert
    if d.consecutive_failures >= d.thresholds.missed_polls:
        return f"{d.consecutive_failures} polls in a row unanswered"
    if d.kind == "sensor" and d.state == "offline":
        return "offline: the broker delivered the sensor's last will"
    return None


def sensor_stale(d: DeviceView) -> str | None:
    if d.kind != "sensor" or d.state == "offline":
        return None  # an offline sensor is a communication failure
    return _silent_for(d)


def sensor_out_of_range(d: DeviceView) -> str | None:
    """A measured value outside its physical range (a sensor's, or a lamp's metering chip)."""
    if d.last is None or not d.last.rejected:
        return None
    return "; ".join(f"{k}: {v}" for k, v in sorted(d.last.rejected.items()))


def access_point_offline(d: DeviceView) -> str | None:
    if d.kind != "access_point":
        return None
    if d.state == "offline":
        return "offline: the broker delivered the access point's last will"
    silent = _silent_for(d)
    return f"no report: {silent}" if silent else None


SINGLE: dict[DeviceKind, tuple[tuple[FaultKind, Detector], ...]] = {
    "lamp": (
        ("lampFailure", lamp_failure),
        ("dayBurning", day_burning),
        ("cyclingLamp", cycling_lamp),
        ("relayFault", relay_fault),
        ("driverFault", driver_fault),
        ("overTemperature", over_temperature),
        ("communicationFailure", communication_failure),
        ("sensorOutOfRange", sensor_out_of_range),
    ),
    "sensor": (
        ("communicationFailure", communication_failure),
        ("sensorStale", sensor_stale),
        ("sensorOutOfRange", sensor_out_of_range),
    ),
    "access_point": (("accessPointOffline", access_point_offline), ("sensorOutOfRange", sensor_out_of_range)),
}
PAIRED: dict[
    DeviceKind, tuple[tuple[FaultKind, FaultKind, Callable[[DeviceView], tuple[str | None, str | None]]], ...]
] = {
    "lamp": (
        ("lampPowerTooHigh", "lampPowerTooLow", lamp_power),
        ("supplyVoltageTooHigh", "supplyVoltageTooLow", supply_voltage),
    ),
    "sensor": (("supplyVoltageTooHigh", "supplyVoltageTooLow", supply_voltage),),
    "access_point": (("supplyVoltageTooHigh", "supplyVoltageTooLow", supply_voltage),),
}


def detect(d: DeviceView) -> dict[FaultKind, str]:
    """Every fault present on the device now, with its evidence (only the detectors for its kind run)."""
    found: dict[FaultKind, str] = {}
    for kind, detector in SINGLE[d.kind]:
        evidence = detector(d)
        if evidence:
            found[kind] = evidence
    for high_kind, low_kind, pair in PAIRED[d.kind]:
        high, low = pair(d)
        if high:
            found[high_kind] = high
        if low:
            found[low_kind] = low
    return found


def _expected_power(d: DeviceView) -> float | None:
    level = d.expected.lit_level
    if d.rated_power_w is None or not level:
        return None
    return d.rated_power_w * level / 100


def _silent_for(d: DeviceView) -> str | None:
    limit = d.thresholds.stale_after_s
    if d.last_seen is None:
        return None  # never heard from since start: not judged until it has spoken once
    age = (d.now - d.last_seen).total_seconds()
    return f"last reading {age:.0f} s ago (limit {limit:g} s)" if age > limit else None

"""Fault detectors: small pure functions over a device's recent readings and its expected state.

Each returns the evidence (a short, human sentence) when its fault is present, else None. Names follow
TALQ's lamp and device failure vocabulary. No I/O: the reading path gives them what they need, and
tests give them plain values. Thresholds are a `Thresholds` value (profiles and groups tune them).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import NamedTuple

from controller.faults import FaultKind, Thresholds
from controller.vocabulary import DeviceKind
from controller.words import say
from drivers.base import Reading


class Expected(NamedTuple):
    """What the schedule or the last command asked of a lamp, and when. (A NamedTuple: a takeover
    builds 32,000 of them at once, three times faster than frozen dataclasses.)"""

    on: bool | None = None  # None: nothing has asked anything
    level: int | None = None  # 0–100 when known
    since: dt.datetime | None = None

    @property
    def lit_level(self) -> int | None:
        """The level the lamp should show: 0 when asked off, None when unknown."""
        if self.on is False:
            return 0
        return self.level if self.on else None


#: what a device nothing asked of and with no limits of its own is judged by (both frozen: shared,
#: not built again for each device at each evaluation)
NOTHING_EXPECTED = Expected()
DEFAULT_THRESHOLDS = Thresholds()


class DeviceView(NamedTuple):
    """What the detectors know about one device at one moment.

    A NamedTuple, not a frozen dataclass: one is built per device at every evaluation (each reading),
    and a frozen dataclass's __init__ took three times as long for the same immutability."""

    device_id: str
    kind: DeviceKind
    now: dt.datetime
    reading: Reading | None  # the latest reading
    switches: Sequence[tuple[dt.datetime, bool]] = ()  # recent lamp_on changes, oldest first
    state: str = "ok"
    consecutive_failures: int = 0
    last_seen: dt.datetime | None = None
    rated_power_w: float | None = None
    expected: Expected = NOTHING_EXPECTED
    sun_up: bool = False
    thresholds: Thresholds = DEFAULT_THRESHOLDS
    #: when it could be heard again after an outage, its own (its "online" after its last will)
    #: or the listening link's (a reconnection to the broker): its silence counts from then
    heard_again_at: dt.datetime | None = None

    @property
    def last(self) -> Reading | None:
        return self.reading

    def value(self, name: str) -> object:
        last = self.reading
        return last.values.get(name) if last is not None else None

    def flag(self, name: str) -> bool:
        last = self.reading
        return bool(last.status.get(name)) if last is not None else False

    @property
    def settled(self) -> bool:
        """The last reading was taken long enough after the last command to be judged against it."""
        since = self.expected.since
        last = self.reading
        if since is None or last is None:
            return True
        return (last.ts - since).total_seconds() >= self.thresholds.settle_s


Detector = Callable[[DeviceView], str | None]
#: isinstance against a tuple: `int | float` builds a union at every call (twice the time)
NUMBER = (int, float)


def lamp_light(d: DeviceView, found: dict[FaultKind, str]) -> None:
    """What a lamp's power says against what it was asked: lampFailure, dayBurning and
    lampPowerTooHigh/TooLow. One function, not four: they read the same power, switch, level and
    settle time, and this runs at every reading of every lamp (bench_polling's CPU per reading).

    A lamp is out (lampFailure) when its status bit says so, or when it is lit but draws less than
    `lamp_failure_ratio` of the power its rating and level predict — unless a dead driver or an open
    relay explains it (their own faults). Outside ±`power_tolerance` of the prediction, its power is
    too high or too low. Lit above `standby_w` while the sun is up and nothing asked it on: day
    burning. Nothing is judged against a command until `settle_s` after it."""
    last = d.reading
    if last is None:
        return
    status = last.status
    if status.get("lamp_failure"):
        found["lampFailure"] = say("en", "evidence.status_lamp_failure")
    values = last.values
    power = values.get("power_w")
    if not values.get("lamp_on") or not isinstance(power, NUMBER):
        return
    t = d.thresholds
    asked = d.expected
    expected = _expected_power(d)
    day = d.sun_up and not asked.on and power > t.standby_w
    if not (expected or day) or not d.settled:
        return
    if day:
        found["dayBurning"] = say("en", "evidence.day_burning", power=f"{power:.0f}")
    if not expected:
        return
    if power < t.lamp_failure_ratio * expected:
        explained = status.get("driver_fault") or status.get("relay_fault")
        if not explained and "lampFailure" not in found:
            lamp_out = say(
                "en", "evidence.lamp_out", power=f"{power:g}", expected=f"{expected:g}", level=asked.level
            )
            found["lampFailure"] = lamp_out
    elif power > expected * (1 + t.power_tolerance):
        limit = f"{expected * (1 + t.power_tolerance):g}"
        high = say("en", "evidence.power_high", power=f"{power:.1f}", limit=limit, level=asked.level)
        found["lampPowerTooHigh"] = high
    elif power < expected * (1 - t.power_tolerance):
        limit = f"{expected * (1 - t.power_tolerance):g}"
        low = say("en", "evidence.power_low", power=f"{power:.1f}", limit=limit, level=asked.level)
        found["lampPowerTooLow"] = low


def cycling_lamp(d: DeviceView) -> str | None:
    if d.kind != "lamp" or len(d.switches) < d.thresholds.cycling_toggles:
        return None
    since = d.now - dt.timedelta(seconds=d.thresholds.cycling_window_s)
    toggles = sum(1 for ts, _ in d.switches if ts >= since)
    if toggles >= d.thresholds.cycling_toggles:
        return say("en", "evidence.cycling", toggles=toggles, window=f"{d.thresholds.cycling_window_s:g}")
    return None


def supply_voltage(d: DeviceView) -> tuple[str | None, str | None]:
    volts = d.value("voltage_v")
    if not isinstance(volts, NUMBER):
        return None, None
    t = d.thresholds
    if volts > t.voltage_max_v:
        return say("en", "evidence.voltage_high", volts=f"{volts:.1f}", limit=f"{t.voltage_max_v:g}"), None
    if volts < t.voltage_min_v:
        return None, say("en", "evidence.voltage_low", volts=f"{volts:.1f}", limit=f"{t.voltage_min_v:g}")
    return None, None


def relay_fault(d: DeviceView) -> str | None:
    return say("en", "evidence.status_relay_fault") if d.flag("relay_fault") else None


def driver_fault(d: DeviceView) -> str | None:
    return say("en", "evidence.status_driver_fault") if d.flag("driver_fault") else None


def over_temperature(d: DeviceView) -> str | None:
    if not d.flag("over_temperature"):
        return None
    temp = d.value("temperature_c")
    if isinstance(temp, NUMBER):
        return say("en", "evidence.status_over_temperature_at", temp=f"{temp:.0f}")
    return say("en", "evidence.status_over_temperature")


def communication_failure(d: DeviceView) -> str | None:
    if d.kind == "access_point":
        return None  # access points have their own offline alert
    if d.consecutive_failures >= d.thresholds.missed_polls:
        return say("en", "evidence.no_answer", count=d.consecutive_failures)
    if d.kind != "lamp" and d.state == "offline":
        return say("en", "evidence.sensor_last_will")
    return None


def sensor_stale(d: DeviceView) -> str | None:
    if d.kind in ("lamp", "access_point") or d.state == "offline" or d.consecutive_failures:
        return None  # an offline sensor, or a polled meter that does not answer: a communication failure
    return _silent_for(d)


def sensor_out_of_range(d: DeviceView) -> str | None:
    """A measured value outside its physical range (a sensor's, or a lamp's metering chip)."""
    if d.last is None or not d.last.rejected:
        return None
    # a time the device wrote unreadably is a payload problem (counted, logged), not a measurement
    measured = {k: v for k, v in d.last.rejected.items() if k != "timestamp"}
    return "; ".join(f"{k}: {v}" for k, v in sorted(measured.items())) or None


def access_point_offline(d: DeviceView) -> str | None:
    if d.kind != "access_point":
        return None
    if d.state == "offline":
        return say("en", "evidence.ap_last_will")
    silent = _silent_for(d)
    return say("en", "evidence.no_report", detail=silent) if silent else None


SINGLE: dict[DeviceKind, tuple[tuple[FaultKind, Detector], ...]] = {
    "lamp": (
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
# a meter or a generic device (a plug, a relay, a light controller without a command path) is
# watched as a sensor is: it answers, it reports in time, its values are in range
SINGLE["meter"] = SINGLE["device"] = SINGLE["sensor"]
PAIRED: dict[
    DeviceKind, tuple[tuple[FaultKind, FaultKind, Callable[[DeviceView], tuple[str | None, str | None]]], ...]
] = {
    "lamp": (("supplyVoltageTooHigh", "supplyVoltageTooLow", supply_voltage),),
    "sensor": (("supplyVoltageTooHigh", "supplyVoltageTooLow", supply_voltage),),
    "access_point": (("supplyVoltageTooHigh", "supplyVoltageTooLow", supply_voltage),),
    "meter": (("supplyVoltageTooHigh", "supplyVoltageTooLow", supply_voltage),),
    "device": (("supplyVoltageTooHigh", "supplyVoltageTooLow", supply_voltage),),
}


def detect(d: DeviceView) -> dict[FaultKind, str]:
    """Every fault present on the device now, with its evidence (only the detectors for its kind run)."""
    found: dict[FaultKind, str] = {}
    if d.kind == "lamp":
        lamp_light(d, found)
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


def awaiting_report(d: DeviceView) -> bool:
    """Back after an outage (its own, or the link's it reports through), and no report since."""
    back = d.heard_again_at
    return back is not None and d.last_seen is not None and back > d.last_seen


def _silent_for(d: DeviceView) -> str | None:
    limit = d.thresholds.stale_after_s
    if d.last_seen is None:
        return None  # never heard from since start: not judged until it has spoken once
    back = d.heard_again_at
    if back is not None and awaiting_report(d):
        age = (d.now - back).total_seconds()
        key = "evidence.silent_since_back"
    else:
        age = (d.now - d.last_seen).total_seconds()
        key = "evidence.silent"
    return say("en", key, age=f"{age:.0f}", limit=f"{limit:g}") if age > limit else None

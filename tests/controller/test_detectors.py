"""Fault detectors and the alert book, with plain values."""

from __future__ import annotations

import datetime as dt
from typing import Any

from controller.alerts.book import AlertBook
from controller.alerts.detectors import DeviceView, Expected, detect
from controller.faults import FaultKind
from drivers.base import Reading

NOW = dt.datetime(2026, 11, 25, 22, 0, tzinfo=dt.UTC)


def reading(
    minutes_ago: float = 0,
    status: dict[str, bool] | None = None,
    rejected: dict[str, str] | None = None,
    **values: Any,
) -> Reading:
    base = {"lamp_on": True, "power_w": 60.0, "voltage_v": 230.0}
    return Reading(
        "lamp-1",
        NOW - dt.timedelta(minutes=minutes_ago),
        {**base, **values},
        status or {},
        rejected=rejected or {},
    )


ASKED_60 = Expected(on=True, level=60, since=NOW - dt.timedelta(hours=1))


def lamp(last: Reading | None = None, **kw: Any) -> DeviceView:
    defaults: dict[str, Any] = {"rated_power_w": 100, "expected": ASKED_60, "last_seen": NOW}
    return DeviceView("lamp-1", "lamp", NOW, last or reading(), **{**defaults, **kw})


def test_a_healthy_lamp_has_no_fault() -> None:
    assert detect(lamp()) == {}


def test_each_lamp_fault_is_found_with_evidence() -> None:
    assert "status bit 0" in detect(lamp(reading(status={"lamp_failure": True})))["lampFailure"]
    assert "draws 3 W where 60 W is expected" in detect(lamp(reading(power_w=3)))["lampFailure"]
    assert "lampPowerTooLow" not in detect(lamp(reading(power_w=3)))  # out is failure, not low power
    assert "more than 75 W" in detect(lamp(reading(power_w=90)))["lampPowerTooHigh"]
    assert "less than 45 W" in detect(lamp(reading(power_w=30)))["lampPowerTooLow"]
    assert "below 207 V" in detect(lamp(reading(voltage_v=185)))["supplyVoltageTooLow"]
    assert "above 253 V" in detect(lamp(reading(voltage_v=260)))["supplyVoltageTooHigh"]
    assert "relayFault" in detect(lamp(reading(status={"relay_fault": True})))
    assert "driverFault" in detect(lamp(reading(status={"driver_fault": True})))
    asked_off = Expected(on=False, level=0, since=NOW - dt.timedelta(hours=1))
    day = detect(lamp(reading(power_w=80), expected=asked_off, sun_up=True))
    assert "while the sun is up" in day["dayBurning"]
    assert (
        "while the sun is up"
        in detect(lamp(reading(power_w=80), expected=Expected(), sun_up=True))["dayBurning"]
    )  # nothing asked at all
    assert "dayBurning" not in detect(lamp(reading(power_w=80), sun_up=True))  # asked for
    switches = [(NOW - dt.timedelta(minutes=9 - i), i % 2 == 0) for i in range(5)]
    assert "5 times in 600 s" in detect(lamp(switches=switches))["cyclingLamp"]
    old = [(NOW - dt.timedelta(minutes=30 + i), i % 2 == 0) for i in range(5)]
    assert "cyclingLamp" not in detect(lamp(switches=old))
    assert (
        "over-temperature at 95 °C"
        in detect(lamp(reading(status={"over_temperature": True}, temperature_c=95.0)))["overTemperature"]
    )
    assert (
        "voltage_v" in detect(lamp(reading(rejected={"voltage_v": "6553.5 V over 300"})))["sensorOutOfRange"]
    )


def test_a_dead_driver_is_a_driver_fault_not_also_a_lamp_failure() -> None:
    found = detect(lamp(reading(power_w=0.3, status={"driver_fault": True})))
    assert set(found) == {"driverFault"}


def test_readings_taken_just_after_a_command_are_not_judged_against_it() -> None:
    just_now = Expected(on=True, level=100, since=NOW - dt.timedelta(seconds=1))
    assert detect(lamp(reading(power_w=60), expected=just_now)) == {}  # still at the old level
    settled = Expected(on=True, level=100, since=NOW - dt.timedelta(seconds=5))
    assert "lampPowerTooLow" in detect(lamp(reading(power_w=60), expected=settled))
    assert "3 polls in a row" in detect(lamp(consecutive_failures=3))["communicationFailure"]
    assert "communicationFailure" not in detect(lamp(consecutive_failures=2))


def test_sensor_and_access_point_faults() -> None:
    sensor = DeviceView(
        "env-1",
        "sensor",
        NOW,
        reading(rejected={"humidity_pct": "value 140 outside 0..100"}),
        last_seen=NOW - dt.timedelta(minutes=20),
    )
    found = detect(sensor)
    assert "last reading 1200 s ago (limit 900 s)" in found["sensorStale"]
    assert "humidity_pct" in found["sensorOutOfRange"]
    # a time the device wrote unreadably is not a measurement out of range (it would never clear)
    zone_less = reading(rejected={"timestamp": "ts: ISO time without a zone; receipt time used"})
    assert "sensorOutOfRange" not in detect(DeviceView("plug-1", "sensor", NOW, zone_less, last_seen=NOW))
    offline = DeviceView("env-1", "sensor", NOW, None, state="offline", last_seen=NOW)
    assert set(detect(offline)) == {"communicationFailure"}
    ap = DeviceView("ap-1", "access_point", NOW, None, state="offline", consecutive_failures=5)
    assert set(detect(ap)) == {"accessPointOffline"}
    silent = DeviceView("ap-1", "access_point", NOW, None, last_seen=NOW - dt.timedelta(minutes=16))
    assert "no report" in detect(silent)["accessPointOffline"]


def test_silence_after_an_outage_counts_from_back_online() -> None:
    """Its last report was 20 minutes ago, before an outage; it said "online" 5 minutes ago."""
    back = DeviceView(
        "env-1", "sensor", NOW, None,
        last_seen=NOW - dt.timedelta(minutes=20), heard_again_at=NOW - dt.timedelta(minutes=5),
    )  # fmt: skip
    assert detect(back) == {}
    later = back._replace(now=NOW + dt.timedelta(minutes=11))
    silent = detect(later)["sensorStale"]
    assert silent == "no reading in the 960 s since it or its link came back (limit 900 s)"
    # a report after it came back (4.5 minutes before NOW): silence is counted from that report
    reported = later._replace(last_seen=NOW - dt.timedelta(seconds=270))
    assert "last reading 930 s ago" in detect(reported)["sensorStale"]


def test_an_alert_is_raised_once_and_cleared_once() -> None:
    book = AlertBook(raise_after=2, clear_after=3)
    t = NOW
    events = []
    for i in range(6):
        events += book.evaluate("lamp-1", {"lampFailure": "out"}, t + dt.timedelta(minutes=i))
    assert [(e.change, e.alert.kind) for e in events] == [("raised", "lampFailure")]
    assert book.active[("lamp-1", "lampFailure")].raised_at == t + dt.timedelta(minutes=1)
    assert book.acknowledge("lamp-1", "lampFailure", t) is not None
    for i in range(6, 12):
        events += book.evaluate("lamp-1", {}, t + dt.timedelta(minutes=i))
    assert [e.change for e in events] == ["raised", "cleared"]
    assert events[1].alert.cleared_at == t + dt.timedelta(minutes=8)
    assert book.active == {}


def test_a_flapping_value_does_not_make_a_storm() -> None:
    book = AlertBook(raise_after=2, clear_after=3)
    events = []
    pattern = [True, True, False, True, False, True, False, False, True, False] * 5
    for i, firing in enumerate(pattern):
        found: dict[FaultKind, str] = {"supplyVoltageTooLow": "supply 205 V"} if firing else {}
        events += book.evaluate("lamp-1", found, NOW + dt.timedelta(minutes=i))
    assert [e.change for e in events] == ["raised"]  # never quiet three times in a row: stays raised

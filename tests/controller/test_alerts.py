"""Fault detection end to end: faults injected in the simulators, alerts raised and cleared once each.

The site is placed where it is local noon now, so the sun is up whenever the suite runs (day burning
needs daylight); every other fault does not care.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from controller.alerts import thresholds_by_device
from controller.commands import Command
from controller.config import load_config
from controller.device import Device
from controller.faults import Thresholds
from drivers.base import Reading
from simulators.city import SimulatedCity
from simulators.lamp import Fault
from tests.controller.city import running_city, running_controller, write_city
from tests.mosquitto import Mosquitto
from tests.waiting import fetched_until, until

THRESHOLDS = """
[alerts]
sweep_interval_s = 0.2

[[alert_thresholds]]
group = "hanoi"
cycling_window_s = 5
cycling_toggles = 5
settle_s = 0.3
"""

# (lamp on the gateway, injected fault, level to command first or None, the alert it must raise)
LAMP_CASES: list[tuple[int, Fault, int | None, str]] = [
    (1, Fault.LAMP_FAILURE, 100, "lampFailure"),
    (2, Fault.DRIVER_FAULT, 100, "driverFault"),
    (3, Fault.RELAY_FAULT, 100, "relayFault"),
    (4, Fault.VOLTAGE_SAG, None, "supplyVoltageTooLow"),
    (5, Fault.VOLTAGE_SURGE, None, "supplyVoltageTooHigh"),
    (6, Fault.OVER_TEMPERATURE, 100, "overTemperature"),
    (7, Fault.CORRUPT_REGISTER, None, "sensorOutOfRange"),
    (8, Fault.OVERDRIVE, 60, "lampPowerTooHigh"),
    (9, Fault.DEGRADED, 100, "lampPowerTooLow"),
    (10, Fault.RELAY_WELDED, 0, "dayBurning"),
    (11, Fault.CYCLING, 100, "cyclingLamp"),
]


def noon_longitude() -> float:
    """The longitude where the sun is highest right now."""
    now = dt.datetime.now(dt.UTC)
    hours = now.hour + now.minute / 60
    return round(((12 - hours) * 15 + 180) % 360 - 180, 3)


def outbound(mosquitto: Mosquitto) -> str:
    return f"""
[outbound]
enabled = true
port = {mosquitto.port}
state_interval_s = 0.2
"""


async def collect_alerts(port: int, into: list[dict[str, Any]], ready: asyncio.Event) -> None:
    async with aiomqtt.Client("127.0.0.1", port) as client:
        await client.subscribe("lamplighter/+/+/alert", qos=1)
        ready.set()
        async for message in client.messages:
            into.append(json.loads(bytes(message.payload)))


async def test_every_lamp_fault_is_raised_once_and_cleared_once(tmp_path: Path, mosquitto: Mosquitto) -> None:
    path = write_city(
        tmp_path,
        gw_lamps=12,
        bus_lamps=2,
        latitude=0.0,
        longitude=noon_longitude(),
        extra=THRESHOLDS + outbound(mosquitto),
    )
    settings = load_config(path)
    received: list[dict[str, Any]] = []
    ready = asyncio.Event()
    listener = asyncio.create_task(collect_alerts(mosquitto.port, received, ready))
    await ready.wait()
    async with running_city(settings) as city, running_controller(settings) as ctl:
        assert ctl.alerts is not None
        assert ctl.dispatcher is not None
        await until(lambda: all(st.last_seen for st in ctl.fleet.devices.values()), what="first polls")
        for unit, _, level, _ in LAMP_CASES:
            if level is not None:
                await ctl.dispatcher.execute(f"gw1-{unit:03d}", Command(action="set_level", value=level))
        await asyncio.sleep(1.0)  # settled, and nothing raised on healthy lamps
        assert ctl.alerts.book.active == {}
        inject(city, True)
        city.segments.find("bus1", 1).faults.add(Fault.NO_RESPONSE)
        expected = {f"gw1-{unit:03d}": kind for unit, _, _, kind in LAMP_CASES}
        expected["bus1-001"] = "communicationFailure"

        def raised() -> dict[str, set[str]]:
            out: dict[str, set[str]] = defaultdict(set)
            for device, kind in ctl.alerts.book.active if ctl.alerts else ():
                out[device].add(kind)
            return out

        await until(lambda: set(raised()) >= set(expected), within_s=15, what="every fault raised")
        await asyncio.sleep(1.0)  # give any extra, wrong alert the time to appear
        assert raised() == {device: {kind} for device, kind in expected.items()}
        inject(city, False)
        city.segments.find("bus1", 1).faults.clear()
        book = ctl.alerts.book
        await until(lambda: not book.active, within_s=20, what="every alert cleared")
        # the book moves first, then the change is stored: wait for what the store says
        page, total = await fetched_until(
            lambda: ctl.alert_store.query(state="all", limit=100),
            lambda found: all(a.cleared_at is not None for a in found[0]),
            what="every clear stored",
        )
        await until(lambda: len(received) >= 2 * len(expected), within_s=5, what="MQTT alert messages")
    listener.cancel()
    # exactly one raised and one cleared per device, stored and published
    assert sorted((a.device_id, a.kind) for a in page) == sorted(expected.items())
    assert total == len(expected)
    assert all(a.cleared_at is not None and a.cleared_at > a.raised_at for a in page)
    by_device: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for msg in received:
        by_device[msg["device_id"]].append((msg["event"], msg["kind"]))
    assert by_device == {d: [("raised", k), ("cleared", k)] for d, k in expected.items()}
    sample = next(m for m in received if m["kind"] == "lampPowerTooLow" and m["event"] == "raised")
    assert "less than 75 W expected at 100 %" in sample["evidence"]
    assert sample["reading"]["values"]["power_w"] == pytest.approx(60, rel=0.02)
    assert sample["group"] == "hanoi/ba-dinh/kim-ma"


def inject(city: SimulatedCity, active: bool) -> None:
    for unit, fault, _, _ in LAMP_CASES:
        faults = city.segments.find("gw1", unit).faults
        if active:
            faults.add(fault)
        else:
            faults.discard(fault)


async def test_a_flapping_supply_makes_one_alert_not_a_storm(tmp_path: Path) -> None:
    settings = load_config(write_city(tmp_path, gw_lamps=2, bus_lamps=1, extra="[alerts]\nclear_after = 5"))
    async with running_city(settings) as city, running_controller(settings) as ctl:
        assert ctl.alerts is not None
        lamp = city.segments.find("gw1", 1)
        for _ in range(10):  # the supply dips below the limit and recovers, again and again
            lamp.faults.add(Fault.VOLTAGE_SAG)
            await asyncio.sleep(0.6)
            lamp.faults.discard(Fault.VOLTAGE_SAG)
            await asyncio.sleep(0.3)
        book = ctl.alerts.book
        await until(lambda: not book.active, within_s=10, what="cleared once quiet")
        alerts, total = await fetched_until(
            lambda: ctl.alert_store.query(state="all"),
            lambda found: all(a.cleared_at is not None for a in found[0]),
            what="every clear stored",
        )
    assert total == 1, [(a.raised_at.time(), a.cleared_at) for a in alerts]
    assert alerts[0].kind == "supplyVoltageTooLow"
    assert ctl.metrics.alerts.labels("supplyVoltageTooLow", "raised")._value.get() == 1


async def test_open_alerts_survive_a_restart_and_clear_afterwards(tmp_path: Path) -> None:
    settings = load_config(write_city(tmp_path, gw_lamps=2, bus_lamps=1))
    async with running_city(settings) as city:
        city.segments.find("gw1", 2).faults.add(Fault.VOLTAGE_SURGE)
        async with running_controller(settings) as ctl:
            assert ctl.alerts is not None
            await until(lambda: bool(ctl.alerts and ctl.alerts.book.active), what="raised")
            (first,) = ctl.alerts.book.active.values()
        async with running_controller(settings) as ctl:
            assert ctl.alerts is not None
            assert [a.id for a in ctl.alerts.book.active.values()] == [
                first.id
            ]  # the same alert, not a new one
            await asyncio.sleep(1.0)
            city.segments.find("gw1", 2).faults.clear()
            await until(lambda: not ctl.alerts or not ctl.alerts.book.active, what="cleared")
            # the book moves first, then the change is stored: wait for what the store says
            alerts, total = await fetched_until(
                lambda: ctl.alert_store.query(state="all"), lambda page: page[0][0].cleared_at is not None
            )
    assert total == 1
    assert alerts[0].cleared_at is not None


async def test_after_a_restart_a_lamp_is_judged_against_its_last_command_only_once_settled(
    tmp_path: Path,
) -> None:
    """A restart finds the lamps as a power cut left them (their fail-safe full level) and the
    schedule asks again at start: what they were asked before it is not held against them at the
    first polls. A lamp still at full once settled is judged as ever."""
    extra = '\n[[alert_thresholds]]\ngroup = "hanoi"\nsettle_s = 2\n'
    settings = load_config(write_city(tmp_path, gw_lamps=1, bus_lamps=1, extra=extra))
    async with running_city(settings) as city:
        lamp = city.segments.find("gw1", 1)
        async with running_controller(settings) as ctl:
            assert ctl.dispatcher is not None
            await ctl.dispatcher.execute("gw1-001", Command(action="set_level", value=40))
            await asyncio.sleep(2.5)  # long settled before the restart
        lamp.level_cmd, lamp.on_cmd = 100, True  # the power came back while the controller was down
        async with running_controller(settings) as ctl:
            assert ctl.alerts is not None
            book = ctl.alerts.book
            start = dt.datetime.now(dt.UTC)
            await asyncio.sleep(1.5)  # seven polls at full power, 40 % asked before the restart
            reading = ctl.fleet.devices["gw1-001"].last_reading
            assert isinstance(reading, Reading)
            assert reading.ts > start
            assert reading.values["dim_level_pct"] == 100
            assert book.active == {}
            await until(lambda: bool(book.active), within_s=10, what="judged once settled")
            assert list(book.active) == [("gw1-001", "lampPowerTooHigh")]


async def test_alerts_of_a_device_removed_from_the_config_are_cleared_at_start(tmp_path: Path) -> None:
    settings = load_config(write_city(tmp_path, gw_lamps=3, bus_lamps=1))
    async with running_city(settings) as city:
        city.segments.find("gw1", 3).faults.add(Fault.VOLTAGE_SURGE)
        async with running_controller(settings) as ctl:
            await until(lambda: bool(ctl.alerts and ctl.alerts.book.active), what="raised")
    smaller = load_config(write_city(tmp_path, gw_lamps=2, bus_lamps=1))
    async with running_city(smaller), running_controller(smaller) as ctl:
        alerts, _ = await ctl.alert_store.query(state="all")
    assert [(a.device_id, a.cleared_at is not None) for a in alerts] == [("gw1-003", True)]


def test_thresholds_come_from_defaults_then_profile_then_groups_outer_first(tmp_path: Path) -> None:
    extra = """
[[alert_thresholds]]
group = "hanoi/ba-dinh/kim-ma"
voltage_max_v = 245

[[alert_thresholds]]
group = "hanoi"
voltage_max_v = 250
voltage_min_v = 200
"""
    settings = load_config(write_city(tmp_path, gw_lamps=1, bus_lamps=1, extra=extra))
    kim_ma = "hanoi/ba-dinh/kim-ma"
    lamp = Device("gw1-001", "hn", "gw1", 1, "1", "lamp_lcu", "lamp", kim_ma, 21.0, 105.8, 150.0, 10.0)
    rows = [lamp, lamp._replace(id="bus1-001", link_id="bus1", group_path="hanoi/hoan-kiem/hang-dao")]
    found = thresholds_by_device(settings, rows)
    assert found["gw1-001"].voltage_max_v == 245  # the inner group wins
    assert found["gw1-001"].voltage_min_v == 200
    assert found["bus1-001"].voltage_max_v == 250
    assert found["bus1-001"].stale_after_s == Thresholds().stale_after_s


async def test_a_feeder_trip_is_published_as_one_root_cause_on_the_site_events(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    city_file = write_city(tmp_path, gw_lamps=5, bus_lamps=2, extra=THRESHOLDS + outbound(mosquitto))
    settings = load_config(city_file)
    said: list[dict[str, Any]] = []
    ready = asyncio.Event()

    async def listen() -> None:
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as client:
            await client.subscribe("lamplighter/+/events", qos=1)
            ready.set()
            async for message in client.messages:
                said.append(json.loads(bytes(message.payload)))

    listener = asyncio.create_task(listen())
    await ready.wait()
    async with running_city(settings) as city, running_controller(settings) as ctl:
        await until(lambda: all(st.last_seen for st in ctl.fleet.devices.values()), what="first polls")
        for lamp in city.segments.segments["gw1"].lamps.values():
            lamp.faults.add(Fault.NO_RESPONSE)

        def groups(event: str) -> list[dict[str, Any]]:
            return [m for m in said if m.get("event") == event]

        await until(
            lambda: any(m["devices"] == 5 for m in groups("group_raised") + groups("group_updated")),
            within_s=15,
            what="the root cause, all five lamps in it",
        )
        (raised,) = groups("group_raised")  # said once, then updated as it grew
        for lamp in city.segments.segments["gw1"].lamps.values():
            lamp.faults.clear()
        await until(lambda: bool(groups("group_cleared")), within_s=20, what="the root cause cleared")
    listener.cancel()
    assert len(groups("group_raised")) == 1  # members clearing one by one: the same group, then gone
    assert raised["link"] == "gw1"
    assert raised["kind"] == "communicationFailure"
    assert raised["title"]["vi"].startswith("gw1: ")
    assert raised["title"]["vi"].endswith(" thiết bị mất liên lạc")
    assert groups("group_cleared")[0]["id"] == raised["id"]
    assert [m["event"] for m in said].count("controller_started") == 1  # the site's own events too

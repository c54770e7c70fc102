"""Faults of sensors and access points on a real Mosquitto: stale, out of range, offline."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from pathlib import Path

from controller.config import load_config
from simulators.mqtt_devices import BrokerSpec, MqttDeviceFleet, MqttFault, SimMqttDevice
from tests.controller.city import running_controller, write_mqtt_city
from tests.mosquitto import Mosquitto
from tests.waiting import until

DEVICES = {  # key → (device id, profile, injected fault, expected alert)
    "hk1": ("env-stale", "env_sensor", MqttFault.STALE, "sensorStale"),
    "hk2": ("env-humid", "env_sensor", MqttFault.OUT_OF_RANGE, "sensorOutOfRange"),
    "hk3": ("env-dead", "env_sensor", MqttFault.OFFLINE, "communicationFailure"),
    "hk4": ("env-fine", "env_sensor", None, None),
    "ap1": ("ap-dead", "wifi_ap", MqttFault.OFFLINE, "accessPointOffline"),
    "ap2": ("ap-silent", "wifi_ap", MqttFault.STALE, "accessPointOffline"),
}


def city(tmp_path: Path, broker: Mosquitto) -> Path:
    devices = [(device_id, key, profile) for key, (device_id, profile, _, _) in DEVICES.items()]
    extra = """
[alerts]
sweep_interval_s = 0.2

[[alert_thresholds]]
group = "hanoi"
stale_after_s = 1.5
"""
    return write_mqtt_city(tmp_path, broker.port, devices, extra=extra)


async def test_each_sensor_and_access_point_fault_is_raised_once_and_cleared_once(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    settings = load_config(city(tmp_path, mosquitto))
    spec = BrokerSpec(
        name="broker",
        host="127.0.0.1",
        port=mosquitto.port,
        devices=tuple(SimMqttDevice(key=k, profile=p) for k, (_, p, _, _) in DEVICES.items()),
        interval_s=0.3,
    )
    sims = MqttDeviceFleet(spec)
    await sims.start()
    try:
        async with running_controller(settings) as ctl:
            assert ctl.alerts is not None
            await until(lambda: all(st.last_seen for st in ctl.fleet.devices.values()), what="first reports")
            await asyncio.sleep(2.0)  # longer than stale_after_s: healthy devices stay quiet
            assert ctl.alerts.book.active == {}
            for key, (_, _, fault, _) in DEVICES.items():
                if fault is not None:
                    sims.set_fault(key, fault, True)
            expected = {d: kind for d, _, _, kind in DEVICES.values() if kind}
            await until(
                lambda: dict(ctl.alerts.book.active.keys()) == expected if ctl.alerts else False,
                within_s=15,
                what=f"alerts {expected}",
            )
            for key, (_, _, fault, _) in DEVICES.items():
                if fault is not None:
                    sims.set_fault(key, fault, False)
            await until(lambda: not ctl.alerts or not ctl.alerts.book.active, within_s=15, what="cleared")
            alerts, total = await ctl.alert_store.query(state="all")
    finally:
        await sims.stop()
    per_device: dict[str, list[str]] = defaultdict(list)
    for a in alerts:
        per_device[a.device_id].append(a.kind)
    assert per_device == {d: [k] for d, k in expected.items()}
    assert total == len(expected)
    evidence = {a.device_id: a.evidence for a in alerts}
    assert "humidity_pct" in evidence["env-humid"]
    # normally the last will (within milliseconds); silence past stale_after_s says the same
    assert "last will" in evidence["ap-dead"] or "no report" in evidence["ap-dead"]
    assert "no report" in evidence["ap-silent"]


async def test_an_open_alert_restored_after_a_restart_waits_for_good_readings(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    """docs/alerts.md: open alerts survive a restart and clear only after good readings — a sensor
    that has not spoken since the restart has shown nothing either way."""
    sweeps_fast = "[alerts]\nsweep_interval_s = 0.2\n"
    path = write_mqtt_city(tmp_path, mosquitto.port, [("env-humid", "hk2", "env_sensor")], extra=sweeps_fast)
    settings = load_config(path)
    spec = BrokerSpec(
        name="broker", host="127.0.0.1", port=mosquitto.port,
        devices=(SimMqttDevice(key="hk2", profile="env_sensor"),), interval_s=0.3,
    )  # fmt: skip
    sims = MqttDeviceFleet(spec)
    await sims.start()
    sims.set_fault("hk2", MqttFault.OUT_OF_RANGE, True)
    try:
        async with running_controller(settings) as ctl:
            assert ctl.alerts is not None
            book = ctl.alerts.book
            await until(lambda: ("env-humid", "sensorOutOfRange") in book.active, what="raised")
        await sims.stop()  # silent from now on
        async with running_controller(settings) as ctl:
            assert ctl.alerts is not None
            book = ctl.alerts.book
            service = ctl.alerts
            sweeps = service.evaluations
            await until(lambda: service.evaluations >= sweeps + 10, what="ten sweeps (clear_after is 3)")
            assert ("env-humid", "sensorOutOfRange") in book.active  # silence cleared nothing
            sims = MqttDeviceFleet(spec)
            await sims.start()  # good readings again
            await until(lambda: not book.active, within_s=15, what="cleared by good readings")
    finally:
        await sims.stop()

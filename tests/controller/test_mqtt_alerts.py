"""Faults of sensors and access points on a real Mosquitto: stale, out of range, offline."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import defaultdict
from pathlib import Path

import aiomqtt

from controller.config import load_config
from drivers.tasks import cancel_and_wait
from simulators.mqtt_devices import BrokerSpec, MqttDeviceFleet, MqttDeviceModel, MqttFault, SimMqttDevice
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


def city_extra(stale_after_s: float = 1.5) -> str:
    return f"""
[alerts]
sweep_interval_s = 0.2

[[alert_thresholds]]
group = "hanoi"
stale_after_s = {stale_after_s}
"""


def city(tmp_path: Path, broker: Mosquitto) -> Path:
    devices = [(device_id, key, profile) for key, (device_id, profile, _, _) in DEVICES.items()]
    return write_mqtt_city(tmp_path, broker.port, devices, extra=city_extra())


def sensor(broker: Mosquitto, key: str) -> MqttDeviceModel:
    """A simulated sensor's payloads, published by the test's own client at the test's pace."""
    spec = BrokerSpec(
        name="b", host="127.0.0.1", port=broker.port, devices=(SimMqttDevice(key=key, profile="env_sensor"),)
    )
    return MqttDeviceFleet(spec).devices[key]


async def report(device: aiomqtt.Client, model: MqttDeviceModel) -> None:
    payload = model.payload(dt.datetime.now(dt.UTC), 60.0)
    await device.publish(f"city/env/{model.spec.key}/telemetry", payload, qos=1)


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


async def test_a_sensor_back_online_is_not_called_stale_before_its_first_report(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    """A sensor says "online" when it reconnects and reports at its own pace after that: the silence
    before its next report starts at "online", not at its last report before the outage. One
    outage is one alert (communicationFailure), cleared when it is back — no sensorStale after it."""
    path = write_mqtt_city(
        tmp_path, mosquitto.port, [("env-dead", "hk3", "env_sensor")], extra=city_extra(3.0)
    )
    settings = load_config(path)
    model, status = sensor(mosquitto, "hk3"), "city/env/hk3/status"

    async with running_controller(settings) as ctl, aiomqtt.Client("127.0.0.1", mosquitto.port) as device:
        assert ctl.alerts is not None
        book = ctl.alerts.book
        await device.publish(status, "online", qos=1, retain=True)
        await report(device, model)
        await until(lambda: ctl.fleet["env-dead"].state == "ok", what="first report")
        await device.publish(status, "offline", qos=1, retain=True)  # as its last will says
        await until(lambda: ("env-dead", "communicationFailure") in book.active, what="outage raised")
        await asyncio.sleep(3.5)  # an outage longer than stale_after_s (3 s)
        await device.publish(status, "online", qos=1, retain=True)
        await until(lambda: ("env-dead", "communicationFailure") not in book.active, what="back online")
        sweeps = ctl.alerts.evaluations
        await until(lambda: ctl.alerts is not None and ctl.alerts.evaluations >= sweeps + 4, what="4 sweeps")
        assert book.active == {}  # its next report is not due yet: not stale
        await report(device, model)
        # then silent past stale_after_s since that report: stale, rightly
        await until(lambda: list(book.active) == [("env-dead", "sensorStale")], what="stale after it")


async def test_a_controller_down_longer_than_stale_after_s_calls_no_sensor_stale_at_start(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    """The sensors' last reports are older than stale_after_s when the controller comes back from a
    stop: it could not hear them meanwhile, so their silence counts from its start."""
    devices = [("env-live", "hk1", "env_sensor")]
    settings = load_config(write_mqtt_city(tmp_path, mosquitto.port, devices, extra=city_extra(3.0)))
    async with running_controller(settings) as ctl, aiomqtt.Client("127.0.0.1", mosquitto.port) as device:
        await report(device, sensor(mosquitto, "hk1"))
        await until(lambda: ctl.fleet["env-live"].last_seen is not None, what="a report")
    await asyncio.sleep(4.0)  # the controller stopped longer than stale_after_s (3 s)
    async with running_controller(settings) as ctl:
        assert ctl.alerts is not None
        assert ctl.fleet["env-live"].last_seen is not None  # its last report, kept over the stop
        await until(lambda: ctl.alerts is not None and ctl.alerts.evaluations >= 4, what="4 sweeps")
        assert ctl.alerts.book.active == {}  # its next report is not due yet


async def test_a_broker_outage_is_not_every_sensor_s_silence(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """While the controller's broker connection is down it cannot hear any sensor: none is called
    stale for that, nor after the link is back before its next report is due; a sensor already
    stale before stays stale, not cleared by the outage."""
    devices = [("env-live", "hk1", "env_sensor"), ("env-quiet", "hk2", "env_sensor")]
    settings = load_config(write_mqtt_city(tmp_path, mosquitto.port, devices, extra=city_extra(3.0)))
    live, quiet = sensor(mosquitto, "hk1"), sensor(mosquitto, "hk2")

    async def reporting(*models: MqttDeviceModel) -> None:
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as device:
            while True:
                for model in models:
                    await report(device, model)
                await asyncio.sleep(0.3)

    quiet_stale = [("env-quiet", "sensorStale")]
    async with running_controller(settings) as ctl:
        assert ctl.alerts is not None
        book, link = ctl.alerts.book, ctl.drivers["broker"].stats
        reports = asyncio.create_task(reporting(live, quiet))
        await until(lambda: ctl.fleet["env-quiet"].last_seen is not None, what="both report")
        await cancel_and_wait([reports])
        reports = asyncio.create_task(reporting(live))  # env-quiet falls silent
        await until(lambda: list(book.active) == quiet_stale, what="env-quiet stale")
        await cancel_and_wait([reports])
        mosquitto.stop()
        await until(lambda: not link.connected, what="the link down")
        await asyncio.sleep(4.0)  # longer than stale_after_s: neither is heard
        assert list(book.active) == quiet_stale  # env-live not called stale, env-quiet not cleared
        mosquitto.start()
        await until(lambda: link.connected, within_s=15, what="the link back")
        sweeps = ctl.alerts.evaluations
        await until(
            lambda: ctl.alerts is not None and ctl.alerts.evaluations >= sweeps + 6, what="3 sweeps of 2"
        )
        assert list(book.active) == quiet_stale  # env-live's next report is not due yet
        reports = asyncio.create_task(reporting(live))
        try:
            await until(
                lambda: ctl.fleet["env-live"].counters["polls_ok"] > 10, what="env-live reports again"
            )
            assert list(book.active) == quiet_stale
        finally:
            await cancel_and_wait([reports])

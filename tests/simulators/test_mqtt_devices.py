"""Simulated sensors and access points publish through a real broker; their faults reach the controller."""

from __future__ import annotations

import random
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from controller.config import load_config
from lamplighter.simulate import city_from_config
from simulators.mqtt_devices import MqttFault, access_point_values, sensor_values
from tests.controller.city import running_city, running_controller
from tests.controller.test_mqtt_devices import city_with_broker
from tests.mosquitto import Mosquitto
from tests.waiting import until

HANOI = ZoneInfo("Asia/Ho_Chi_Minh")


def test_daily_patterns_are_plausible() -> None:
    rng = random.Random(1)
    noon = sensor_values(datetime(2026, 6, 21, 12, 0, tzinfo=HANOI), rng)
    night = sensor_values(datetime(2026, 6, 21, 2, 0, tzinfo=HANOI), rng)
    rush = sensor_values(datetime(2026, 6, 21, 8, 0, tzinfo=HANOI), rng)
    assert noon["illuminance_lx"] > 50_000 > 100 > night["illuminance_lx"]
    assert noon["air_temperature_c"] > night["air_temperature_c"]
    assert noon["noise_dba"] > night["noise_dba"]
    assert rush["pm2_5_ugm3"] > noon["pm2_5_ugm3"]
    evening = access_point_values(datetime(2026, 6, 21, 20, 0, tzinfo=HANOI), 100, rng)
    dawn = access_point_values(datetime(2026, 6, 21, 4, 0, tzinfo=HANOI), 100, rng)
    assert int(evening["clients"]) > 3 * int(dawn["clients"])


async def test_simulated_devices_report_and_their_faults_show(tmp_path: Path, mosquitto: Mosquitto) -> None:
    path = city_with_broker(tmp_path, mosquitto)
    path.write_text(path.read_text() + "\n[simulator]\nmqtt_interval_s = 0.2\n")
    settings = load_config(path)
    assert city_from_config(settings).brokers[0].devices[0].key == "hk1"
    async with running_city(settings) as city, running_controller(settings) as ctl:
        fleet = city.segments.mqtt["broker"]
        await until(
            lambda: ctl.fleet["env-hoankiem"].state == "ok" and ctl.fleet["ap-hoankiem"].state == "ok"
        )
        assert 0 <= float(ctl.fleet["ap-hoankiem"].last_values()["clients"]) <= 100

        fleet.set_fault("ap1", MqttFault.OFFLINE, True)  # power cut: the broker sends the last will
        await until(lambda: ctl.fleet["ap-hoankiem"].state == "offline")
        fleet.set_fault("ap1", MqttFault.OFFLINE, False)
        await until(lambda: ctl.fleet["ap-hoankiem"].state == "ok")

        fleet.set_fault("hk1", MqttFault.GARBAGE, True)
        await until(lambda: ctl.fleet["env-hoankiem"].counters["rejected"] >= 2)
        with pytest.raises(LookupError, match="no device 'nope'"):
            fleet.set_fault("nope", MqttFault.STALE, True)

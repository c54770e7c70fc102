"""A lux-triggered switch driven by a sensor over MQTT: ambient light turns simulated lamps on and off."""

from __future__ import annotations

import json
from pathlib import Path

import aiomqtt

from controller.config import load_config
from tests.controller.city import running_city, running_controller, write_city
from tests.mosquitto import Mosquitto
from tests.waiting import until

SENSOR = """
[[links]]
id = "broker"
site = "hn"
kind = "mqtt"
host = "127.0.0.1"
port = {port}

[[devices]]
id = "env-1"
link = "broker"
profile = "env_sensor"
group = "hanoi/ba-dinh/sensors"
latitude = 21.03
longitude = 105.82
"""
DUSK_SENSOR = {
    "id": "dusk-sensor",
    "steps": [{"at": "12:00", "level": 70, "photocell": {"on_below_lx": 20, "off_above_lx": 50}}],
}


async def test_lamps_follow_the_ambient_light_with_hysteresis(tmp_path: Path, mosquitto: Mosquitto) -> None:
    path = write_city(tmp_path, interval=0.2)
    path.write_text(path.read_text() + SENSOR.format(port=mosquitto.port))
    settings = load_config(path)
    async with running_city(settings) as city, running_controller(settings) as ctl:
        sched = ctl.scheduling
        assert sched is not None
        sched.runner.photocell_every_s = 0.2
        lamps = [city.segments.find("gw1", u) for u in range(1, 7)]
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as sensor:

            async def lux(value: float) -> None:
                body = {
                    "pm": {"pm2_5": 20, "pm10": 30},
                    "climate": {"temperature": 28, "humidity": 70},
                    "noise_dba": 50,
                    "lux": value,
                }
                await sensor.publish("city/env/env-1/telemetry", json.dumps(body), qos=1)

            await until(lambda: ctl.drivers["broker"].stats.connected)
            await lux(10)  # a dark storm cloud
            await until(lambda: ctl.fleet["env-1"].last_values().get("illuminance_lx") == 10)
            await sched.put("program", "dusk-sensor", DUSK_SENSOR)
            await sched.put("calendar", "city", {"id": "city", "default_program": "dusk-sensor"})
            await sched.put("group_calendar", "hanoi/ba-dinh", {"calendar": "city"})
            await until(lambda: all(lamp.level_cmd == 70 for lamp in lamps))

            await lux(80)  # the sun comes out
            await until(lambda: all(lamp.level_cmd == 0 for lamp in lamps))
            await lux(35)  # between the thresholds: nothing changes
            await until(lambda: ctl.fleet["env-1"].last_values().get("illuminance_lx") == 35)
            await sched._photocell_tick()
            assert all(lamp.level_cmd == 0 for lamp in lamps)
            await lux(5)  # dusk
            await until(lambda: all(lamp.level_cmd == 70 for lamp in lamps))
        assert city.segments.find("bus1", 1).level_cmd == 0  # lamps of other groups are not touched

"""Sensors and access points over a real Mosquitto reach the same reading path and API as lamps."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiomqtt
import httpx

from api.app import create_app
from api.server import ApiServer
from controller.config import load_config
from controller.service import ControllerService
from tests.api.keys import auth_headers
from tests.api.smart_data_models import model_problems
from tests.controller.city import running_controller, write_mqtt_city
from tests.mosquitto import Mosquitto
from tests.waiting import until


def city_with_broker(tmp_path: Path, broker: Mosquitto) -> Path:
    devices = [("env-hoankiem", "hk1", "env_sensor"), ("ap-hoankiem", "ap1", "wifi_ap")]
    return write_mqtt_city(tmp_path, broker.port, devices)


async def test_sensor_and_access_point_appear_in_the_api_like_lamps(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    settings = load_config(city_with_broker(tmp_path, mosquitto))
    async with running_controller(settings) as ctl:
        await until(lambda: ctl.drivers["broker"].stats.connected)
        server = ApiServer(create_app(ControllerService(ctl)), "127.0.0.1", 0)
        await server.start()
        try:
            async with aiomqtt.Client("127.0.0.1", mosquitto.port) as device:
                await device.publish(
                    "city/env/hk1/telemetry",
                    json.dumps(
                        {
                            "pm": {"pm2_5": 55.5, "pm10": 80},
                            "climate": {"temperature": 29, "humidity": 70},
                            "noise_dba": 66,
                            "lux": 30000,
                        }
                    ),
                    qos=1,
                )
                await device.publish("city/wifi/ap1/status", "online", qos=1, retain=True)
                await device.publish(
                    "city/wifi/ap1/stats",
                    json.dumps(
                        {
                            "radio": {"clients": 31, "rx_kbps": 1200, "tx_kbps": 8800},
                            "uptime_s": 7200,
                            "fw": "3.2",
                        }
                    ),
                    qos=1,
                )
                await until(
                    lambda: ctl.fleet["env-hoankiem"].state == "ok" and ctl.fleet["ap-hoankiem"].state == "ok"
                )
                async with httpx.AsyncClient(base_url=server.url, headers=await auth_headers(ctl)) as api:
                    listing = (await api.get("/api/v1/devices", params={"group": "hanoi/hoan-kiem"})).json()
                    assert {(d["id"], d["kind"], d["address"]) for d in listing["items"]} == {
                        ("env-hoankiem", "sensor", "hk1"),
                        ("ap-hoankiem", "access_point", "ap1"),
                    }
                    env = (await api.get("/api/v1/devices/env-hoankiem")).json()
                    assert env["last_reading"]["values"]["pm2_5_ugm3"] == 55.5
                    (air,) = (
                        await api.get("/ngsi-ld/v1/entities", params={"type": "AirQualityObserved"})
                    ).json()
                    assert air["id"] == "urn:ngsi-ld:AirQualityObserved:env-hoankiem"
                    assert air["pm25"]["value"] == 55.5
                    assert air["relativeHumidity"]["value"] == 0.7  # a fraction, as the data model says
                    assert air["location"]["value"] == {"type": "Point", "coordinates": [105.8524, 21.0287]}
                    assert await model_problems([air]) == []  # as the Smart Data Model says
                    assert env["unit_id"] is None
                    await asyncio.sleep(0.2)  # let the ingest batch reach the store
                    history = (
                        await api.get(
                            "/api/v1/devices/ap-hoankiem/telemetry", params={"fields": "clients,tx_kbps"}
                        )
                    ).json()
                    assert history["points"][-1]["values"] == {"clients": 31, "tx_kbps": 8800}

                    # the access point loses power: its last will (here sent as the broker would) → offline
                    await device.publish("city/wifi/ap1/status", "offline", qos=1, retain=True)
                    await until(lambda: ctl.fleet["ap-hoankiem"].state == "offline")
                    offline = (await api.get("/api/v1/devices", params={"state": "offline"})).json()
                    assert [d["id"] for d in offline["items"]] == ["ap-hoankiem"]

                    # garbage from the sensor: rejected and counted; its last good reading stays
                    await device.publish("city/env/hk1/telemetry", b"\x00\x01garbage", qos=1)
                    await until(lambda: ctl.fleet["env-hoankiem"].counters["rejected"] == 1)
                    env = (await api.get("/api/v1/devices/env-hoankiem")).json()
                    assert "rejected message (not_json)" in env["last_error"]
                    assert env["last_reading"]["values"]["pm2_5_ugm3"] == 55.5

                    # a sensor takes no commands: said so (it was "no device", though it exists)
                    command = {"action": "set_level", "value": 50}
                    refused = await api.post("/api/v1/devices/env-hoankiem/commands", json=command)
                    assert refused.status_code == 422, refused.text
                    assert refused.json()["error"]["code"] == "not_commandable"
                    assert "sensor on mqtt link 'broker'" in refused.json()["error"]["message"]
        finally:
            await server.stop()

"""Open data the city may publish: per district, the dust its air sensors measure now and how much of
its public Wi-Fi is up — with no credentials, no device ids, and a rate limit per client address."""

from __future__ import annotations

import json
from pathlib import Path

import aiomqtt
import httpx

from api.app import create_app
from api.server import ApiServer
from controller.config import load_config
from controller.service import ControllerService
from tests.controller.city import running_controller, write_mqtt_city
from tests.mosquitto import Mosquitto
from tests.waiting import fetched_until


async def test_districts_air_and_wifi_without_credentials_and_rate_limited(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    devices = [
        ("air-1", "air-1", "env_sensor"),
        ("air-2", "air-2", "env_sensor"),
        ("ap-1", "ap-1", "wifi_ap"),
        ("ap-2", "ap-2", "wifi_ap"),
    ]
    settings = load_config(write_mqtt_city(tmp_path, mosquitto.port, devices))
    async with running_controller(settings) as ctl:
        server = ApiServer(create_app(ControllerService(ctl)), "127.0.0.1", 0)
        await server.start()
        try:
            async with aiomqtt.Client("127.0.0.1", mosquitto.port) as device:
                for key, pm25, pm10 in (("air-1", 30.0, 50.0), ("air-2", 50.0, 90.0)):
                    doc = {
                        "pm": {"pm2_5": pm25, "pm10": pm10},
                        "climate": {"temperature": 28, "humidity": 70},
                    }
                    await device.publish(f"city/env/{key}/telemetry", json.dumps(doc), qos=1)
                wifi = {"radio": {"clients": 9, "rx_kbps": 10, "tx_kbps": 20}, "uptime_s": 60, "fw": "3.2.1"}
                await device.publish("city/wifi/ap-1/stats", json.dumps(wifi), qos=1)
            async with httpx.AsyncClient(base_url=server.url, timeout=10) as anyone:  # no key, no token
                await fetched_until(
                    lambda: anyone.get("/api/v1/kpis"), lambda r: r.status_code == 401, what="the API closed"
                )
                answer = await fetched_until(
                    lambda: anyone.get("/open-data/v1/city"),
                    # the sensors' readings and the access point's stats are ingested apart: the copy
                    # may be taken between them, and the next one is at most 30 s later
                    lambda r: (
                        r.status_code == 200
                        and r.json()["districts"][0]["air"]["sensors"] == 2
                        and r.json()["districts"][0]["wifi"]["up"] == 1
                    ),
                    within_s=45,
                    every_s=3,
                    what="both sensors and the access point published",
                )
                body = answer.json()
                assert body["districts"] == [
                    {
                        "district": "hanoi/hoan-kiem",
                        # no index yet: a NowCast needs 2 of the 3 latest hours, never a guess
                        "air": {
                            "sensors": 2,
                            "pm2_5_ugm3": 40.0,
                            "pm10_ugm3": 70.0,
                            "scheme": None,
                            "index": None,
                            "level": None,
                            "hour": None,
                        },
                        "wifi": {"access_points": 2, "up": 1, "availability_pct": 50.0},
                    }
                ]
                assert "air-1" not in answer.text  # no device ids
                answers = [(await anyone.get("/open-data/v1/city")).status_code for _ in range(12)]
                assert 429 in answers
                refused = await anyone.get("/open-data/v1/city")
                assert refused.status_code == 429
                assert int(refused.headers["retry-after"]) >= 1
                assert refused.json()["error"]["code"] == "rate_limited"
        finally:
            await server.stop()

"""`/api/v1/noise` for a sensor by Hoàn Kiếm lake: its stored readings become the site day's hourly,
day and night Leq, judged by the configured limits; an access point is no noise sensor."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

from controller.config import load_config
from drivers.base import Reading
from tests.api.keys import api_client
from tests.controller.city import running_controller, write_mqtt_city
from tests.mosquitto import Mosquitto

HANOI = ZoneInfo("Asia/Ho_Chi_Minh")
DAY = dt.date(2026, 11, 20)


async def test_a_sensors_day_and_night_against_the_limits(tmp_path: Path, mosquitto: Mosquitto) -> None:
    path = write_mqtt_city(
        tmp_path,
        mosquitto.port,
        [("noise-lake", "noise-lake", "env_sensor"), ("ap-lake", "ap-lake", "wifi_ap")],
        extra="[noise]\nnight_dba = 50\n",
    )
    settings = load_config(path)
    start = dt.datetime.combine(DAY, dt.time(0), HANOI)
    readings = [
        Reading(
            "noise-lake",
            (start + dt.timedelta(minutes=m)).astimezone(dt.UTC),
            {"noise_dba": 66.0 if 6 * 60 <= m < 21 * 60 else 52.0},
        )
        for m in range(30 * 60)  # to 06:00 the next morning
    ]
    async with running_controller(settings) as ctl:
        await ctl.store.write(readings)
        async with api_client(ctl, "viewer") as api:
            body = (
                await api.get("/api/v1/noise", params={"device": "noise-lake", "date": DAY.isoformat()})
            ).json()
            missing = await api.get("/api/v1/noise", params={"device": "nobody", "date": DAY.isoformat()})
            hotspot = await api.get("/api/v1/noise", params={"device": "ap-lake", "date": DAY.isoformat()})
    assert body["timezone"] == "Asia/Ho_Chi_Minh"
    assert [h["leq_dba"] for h in body["hours"]] == [52.0] * 6 + [66.0] * 15 + [52.0] * 3
    assert (body["day"]["leq_dba"], body["day"]["limit_dba"], body["day"]["exceeds"]) == (66.0, 70.0, False)
    assert (body["night"]["leq_dba"], body["night"]["limit_dba"], body["night"]["exceeds"]) == (
        52.0,
        50.0,
        True,
    )
    assert missing.status_code == 404
    assert hotspot.status_code == 400
    assert "does not report noise_dba" in hotspot.json()["error"]["message"]

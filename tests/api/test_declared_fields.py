"""A new device model by profile alone: its own fields with SenML units, readings picked from a list
by a key's value, numbers as strings, a time written without a zone — published through a real
Mosquitto and read back from the API, with no code touched."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from zoneinfo import ZoneInfo

import aiomqtt

from controller.config import load_config
from tests.api.keys import api_client
from tests.controller.city import running_controller, write_mqtt_city
from tests.mosquitto import Mosquitto
from tests.waiting import fetched_until

HANOI = ZoneInfo("Asia/Ho_Chi_Minh")
PROFILE = """
[profile]
name = "community_air_node"
model = "Community air-quality node (sensor.community JSON, bridged to MQTT)"
kind = "sensor"
protocol = "mqtt"

[fields.pm1_ugm3]
unit = "ug/m3"
description = "PM1.0"

[fields.wifi_signal_dbm]
unit = "dBm"
description = "the node's Wi-Fi signal"

[mqtt]
telemetry_topic = "airrohr/{device}/data"
timestamp_path = "ts"
timestamp_zone = "Asia/Ho_Chi_Minh"   # the node writes local time without an offset

[[mqtt.fields]]
field = "pm10_ugm3"
path = "sensordatavalues[value_type=P1].value"
max = 2000

[[mqtt.fields]]
field = "pm2_5_ugm3"
path = "sensordatavalues[value_type=P2].value"
max = 1000

[[mqtt.fields]]
field = "pm1_ugm3"
path = "sensordatavalues[value_type=P0].value"

[[mqtt.fields]]
field = "humidity_pct"
path = "sensordatavalues[value_type=humidity].value"
max = 100

[[mqtt.fields]]
field = "wifi_signal_dbm"
path = "sensordatavalues[value_type=signal].value"
"""


async def test_a_profile_with_its_own_fields_and_list_by_key_paths_works_without_code(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "community_air_node.toml").write_text(PROFILE, encoding="utf-8")
    path = write_mqtt_city(tmp_path, mosquitto.port, [("air-1", "esp-1234", "community_air_node")])
    path.write_text(f'profiles_dir = "{profiles}"\n' + path.read_text(encoding="utf-8"), encoding="utf-8")
    settings = load_config(path)
    local = dt.datetime.now(HANOI).replace(microsecond=0) - dt.timedelta(minutes=1)
    listed = [("signal", "-71"), ("humidity", "81.00"), ("P0", "5.10"), ("P2", "11.10"), ("P1", "23.40")]
    message = {
        "esp8266id": "1234",
        "ts": local.replace(tzinfo=None).isoformat(sep=" "),
        "sensordatavalues": [{"value_type": t, "value": v} for t, v in listed],
    }
    async with running_controller(settings) as ctl, api_client(ctl, "viewer") as client:
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as publisher:
            await publisher.publish("airrohr/esp-1234/data", json.dumps(message), qos=1)
        detail = await fetched_until(
            lambda: client.get("/api/v1/devices/air-1"), lambda r: r.json()["last_reading"] is not None
        )
        reading = detail.json()["last_reading"]
        assert reading["values"] == {
            "pm10_ugm3": 23.4,
            "pm2_5_ugm3": 11.1,
            "pm1_ugm3": 5.1,
            "humidity_pct": 81.0,
            "wifi_signal_dbm": -71,
        }
        assert reading["rejected"] == {}
        assert dt.datetime.fromisoformat(reading["ts"]) == local  # local time, read in the node's zone
        assert detail.json()["units"]["wifi_signal_dbm"] == "dBm"
        assert detail.json()["units"]["pm10_ugm3"] == "µg/m³"
        since = (local - dt.timedelta(hours=1)).isoformat()
        window = {"from": since, "to": dt.datetime.now(HANOI).isoformat()}
        history = await fetched_until(
            lambda: client.get("/api/v1/devices/air-1/telemetry", params=window),
            lambda r: bool(r.json()["points"]),
        )
        assert history.json()["fields"] == [
            "pm10_ugm3", "pm2_5_ugm3", "pm1_ugm3", "humidity_pct", "wifi_signal_dbm"
        ]  # fmt: skip
        assert history.json()["points"][0]["values"]["pm1_ugm3"] == 5.1
        refused = await client.get("/api/v1/devices/air-1/telemetry", params={"fields": "volts"})
        assert refused.status_code == 400
        assert "wifi_signal_dbm" in refused.json()["error"]["message"]  # what it may ask for

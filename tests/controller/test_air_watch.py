"""The city's air end to end on a real Mosquitto: simulated sensors publish, the controller stores,
the air watch computes each hour's VN_AQI, keeps it as telemetry, and a dust episode injected into
the simulated sensors raises one alert for its district, once, and clears it once.

`[air] hour_s = 4`: the regulation's hour is 3600 s; four seconds lets the whole path — quarter-hour
means, the 2-of-3 rule, the NowCast's decay after the episode, the hysteresis — run in a test.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from controller.air_figures import INDEX_FIELD
from controller.config import load_config
from controller.runtime import Controller
from simulators.mqtt_devices import BrokerSpec, MqttDeviceFleet, MqttFault, SimMqttDevice
from tests.api.keys import api_client
from tests.api.smart_data_models import model_problems
from tests.controller.city import running_controller, write_mqtt_city
from tests.mosquitto import Mosquitto
from tests.waiting import fetched_until, until

SENSORS = {"hk1": "air-hk-1", "hk2": "air-hk-2", "bd1": "air-bd-1"}  # key → device id
HOUR_S = 4


def city(tmp_path: Path, broker: Mosquitto) -> Path:
    devices = [(device_id, key, "env_sensor") for key, device_id in SENSORS.items()]
    extra = f"[air]\nhour_s = {HOUR_S}\nhysteresis = 10\n"
    path = write_mqtt_city(tmp_path, broker.port, devices, extra=extra)
    text = path.read_text(encoding="utf-8")
    moved = 'key = "bd1"\nprofile = "env_sensor"\ngroup = "hanoi/ba-dinh"'
    path.write_text(text.replace(moved.replace("ba-dinh", "hoan-kiem"), moved), encoding="utf-8")
    return path


def air_alerts(ctl: Controller) -> list[str]:
    assert ctl.alerts is not None
    return sorted(subject for subject, kind in ctl.alerts.book.active if kind == "airQuality")


async def test_a_dust_episode_raises_one_district_alert_and_clears_it(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    settings = load_config(city(tmp_path, mosquitto))
    spec = BrokerSpec(
        name="broker",
        host="127.0.0.1",
        port=mosquitto.port,
        devices=tuple(SimMqttDevice(key=k, profile="env_sensor") for k in SENSORS),
        interval_s=0.2,
    )
    sims = MqttDeviceFleet(spec)
    await sims.start()
    try:
        async with running_controller(settings) as ctl:
            watch = ctl.air
            assert watch is not None
            assert set(watch.members) == {"hanoi/hoan-kiem", "hanoi/ba-dinh"}
            await until(
                lambda: all(f.index is not None for f in watch.districts.values()),
                within_s=6 * HOUR_S,
                what="every district's first index (2 of the 3 latest hours)",
            )
            usual = {name: f.index for name, f in watch.districts.items()}
            assert all(i is not None and i < 151 for i in usual.values()), usual  # a usual day is not "bad"
            assert air_alerts(ctl) == []

            sims.set_fault("hk1", MqttFault.DUST, True)
            await until(lambda: air_alerts(ctl) == ["hanoi/hoan-kiem"], within_s=4 * HOUR_S, what="the alert")
            district = watch.districts["hanoi/hoan-kiem"]
            assert district.sensor == "air-hk-1"
            assert district.level is not None
            assert district.level.number >= 4
            assert watch.districts["hanoi/ba-dinh"].index == watch.sensors["air-bd-1"].index
            assert (watch.districts["hanoi/ba-dinh"].index or 0) < 151

            async with api_client(ctl, "viewer") as api:
                body = (await api.get("/api/v1/air", params={"group": "hanoi/hoan-kiem"})).json()
                ngsi = {"type": "AirQualityObserved"}
                entities = (await api.get("/ngsi-ld/v1/entities", params=ngsi)).json()
                chart = (await api.get("/api/v1/air/history", params={"group": "hanoi/hoan-kiem"})).json()
                public = (await api.get("/open-data/v1/city")).json()
            (hk,) = body["districts"]
            assert hk["alert"] is True
            assert hk["sensor"] == "air-hk-1"
            assert hk["level"]["name"]["vi"] in ("Xấu", "Rất xấu", "Nguy hại")
            assert hk["level"]["colour"] in ("#FF0000", "#8F3F97", "#7E0023")
            assert hk["level"]["advice"]["vi"]
            assert hk["level"]["advice_sensitive"]["en"]
            assert {s["device_id"] for s in body["sensors"]} == {"air-hk-1", "air-hk-2"}
            dusty = next(e for e in entities if e["id"] == "urn:ngsi-ld:AirQualityObserved:air-hk-1")
            assert dusty["airQualityIndex"]["value"] == watch.sensors["air-hk-1"].index
            assert dusty["airQualityLevel"]["value"] in ("bad", "very_bad", "hazardous")
            assert 0 < dusty["reliability"]["value"] <= 1
            assert await model_problems(entities) == []  # as the Smart Data Model says
            assert chart["sensors"] == 2
            assert max(h["index"] for h in chart["hours"]) >= 151
            published = {d["district"]: d["air"] for d in public["districts"]}
            assert published["hanoi/hoan-kiem"]["index"] == hk["index"]
            assert published["hanoi/hoan-kiem"]["level"]["colour"] == hk["level"]["colour"]
            assert "sensor" not in published["hanoi/hoan-kiem"]  # no device ids in open data

            sims.set_fault("hk1", MqttFault.DUST, False)
            await until(lambda: air_alerts(ctl) == [], within_s=12 * HOUR_S, what="the alert cleared")
            stored = await ctl.store.query(
                "air-hk-1",
                dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5),
                dt.datetime.now(dt.UTC),
                fields=[INDEX_FIELD],
            )
            # the book moves first, then the clear is stored: wait for what the store says
            alerts, total = await fetched_until(
                lambda: ctl.alert_store.query(state="all"),
                lambda found: all(a.cleared_at is not None for a in found[0]),
                what="the clear stored",
            )
    finally:
        await sims.stop()
    assert total == 1  # raised once, cleared once, for the dusty district only
    (alert,) = alerts
    assert alert.device_id == "hanoi/hoan-kiem"
    assert alert.kind == "airQuality"
    assert alert.cleared_at is not None
    # the dusty sensor, by the dust that set its index (PM2.5 or PM10: the simulated air's mix
    # follows the hour of the day, and past 500 both are at the top of the scale)
    assert re.search(r"air-hk-1 \(PM(2\.5|10)\)", alert.evidence), alert.evidence
    indices = [v for p in stored if isinstance(v := p.values.get(INDEX_FIELD), int | float)]
    assert max(indices) >= 151  # the episode is in the sensor's own telemetry
    hours = [p.ts for p in stored if INDEX_FIELD in p.values]
    assert len(hours) == len(set(hours))  # one index per hour

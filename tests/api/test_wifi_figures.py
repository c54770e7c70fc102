"""The city's public Wi-Fi as it reports it: two access points over two Hà Nội days — a busy evening
on one, nobody and a six-hour outage on the other — from the telemetry store and the alerts to
`/api/v1/wifi`: peak and mean clients, data carried, availability, the busiest place first."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from zoneinfo import ZoneInfo

import aiomqtt
import pytest
from playwright.async_api import Browser, expect

from api.app import create_app
from api.server import ApiServer
from controller.alerts.store import AlertRow
from controller.config import load_config
from controller.service import ControllerService
from drivers.base import Reading
from tests.api.keys import api_client
from tests.api.test_dashboard import PASSWORD, browser, log_in, shot  # noqa: F401 - `browser` is a fixture
from tests.controller.city import running_controller, write_mqtt_city
from tests.mosquitto import Mosquitto
from tests.waiting import fetched_until

HANOI = ZoneInfo("Asia/Ho_Chi_Minh")
DAY1 = dt.datetime(2026, 11, 20, tzinfo=HANOI)


async def test_clients_data_and_availability_per_access_point_and_day(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    devices = [("ap-lake", "ap-lake", "wifi_ap"), ("ap-market", "ap-market", "wifi_ap")]
    settings = load_config(write_mqtt_city(tmp_path, mosquitto.port, devices))
    readings = []
    for minute in range(0, 2 * 24 * 60, 10):
        at = DAY1 + dt.timedelta(minutes=minute)
        busy = 18 <= at.hour < 22  # the evening by the lake
        readings.append(
            Reading(
                "ap-lake",
                at.astimezone(dt.UTC),
                {"clients": 10 if busy else 2, "rx_kbps": 100.0, "tx_kbps": 300.0},
            )
        )
        readings.append(
            Reading("ap-market", at.astimezone(dt.UTC), {"clients": 0, "rx_kbps": 0.0, "tx_kbps": 0.0})
        )
    async with running_controller(settings) as ctl:
        await ctl.store.write(readings)
        async with ctl.alert_store.session() as s, s.begin():
            s.add(
                AlertRow(
                    device_id="ap-market",
                    kind="accessPointOffline",
                    severity="major",
                    site_id="hn",
                    group_path="hanoi/hoan-kiem",
                    raised_at=(DAY1 + dt.timedelta(hours=2)).astimezone(dt.UTC),
                    evidence="last will",
                    cleared_at=(DAY1 + dt.timedelta(hours=8)).astimezone(dt.UTC),
                )
            )
        async with api_client(ctl, "viewer") as api:
            params = {
                "group": "hanoi",
                "from": DAY1.isoformat(),
                "to": (DAY1 + dt.timedelta(days=2)).isoformat(),
            }
            body = (await api.get("/api/v1/wifi", params=params)).json()
            hourly = await api.get("/api/v1/wifi", params={**params, "every": "1h"})
            nowhere = await api.get("/api/v1/wifi", params={**params, "group": "nowhere"})
            # live: the operations room's tile counts who is on the city's Wi-Fi now
            async with aiomqtt.Client("127.0.0.1", mosquitto.port) as device:
                for key, clients in (("ap-lake", 17), ("ap-market", 4)):
                    doc = {
                        "radio": {"clients": clients, "rx_kbps": 80, "tx_kbps": 420},
                        "uptime_s": 3600,
                        "fw": "3.2.1",
                    }
                    await device.publish(f"city/wifi/{key}/stats", json.dumps(doc), qos=1)
            kpis = await fetched_until(
                lambda: api.get("/api/v1/kpis"),
                lambda r: r.json()["access_points"]["clients_now"] == 21,
                what="21 clients on the city's Wi-Fi",
            )
    assert kpis.json()["access_points"]["up_pct"] == 100.0
    assert body["access_points"] == 2
    assert body["busiest"] == ["ap-lake", "ap-market"]
    lake, market = body["per_access_point"]
    assert [w["start"] for w in lake["windows"]] == [
        DAY1.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
        (DAY1 + dt.timedelta(days=1)).astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
    ]  # Hà Nội's days
    day = lake["windows"][0]
    assert day["peak_clients"] == 10
    assert day["mean_clients"] == pytest.approx((4 * 10 + 20 * 2) / 24, abs=0.01)
    assert day["data_mb"] == pytest.approx(24 * 400 * 3600 / 8 / 1000, rel=1e-6)  # 400 kbit/s all day
    assert day["availability_pct"] == 100.0
    assert market["windows"][0]["availability_pct"] == pytest.approx(75.0)  # six hours offline
    assert market["windows"][1]["availability_pct"] == 100.0
    assert market["availability_pct"] == pytest.approx(100 * (1 - 6 / 48))
    assert market["mean_clients"] == 0
    assert body["peak_clients"] == 10
    assert body["data_mb"] == pytest.approx(2 * 24 * 180, rel=1e-6)
    # up all evening with no one served, twice: a dead radio behind a live link?
    assert market["idle_evenings"] == ["2026-11-20", "2026-11-21"]
    assert lake["idle_evenings"] == []
    assert body["idle_in_the_evening"] == ["ap-market"]
    assert hourly.status_code == 200
    assert len(hourly.json()["per_access_point"][0]["windows"]) == 48
    assert nowhere.status_code == 404


async def test_the_operations_room_sees_the_busiest_places_and_a_dead_radio(
    tmp_path: Path,
    mosquitto: Mosquitto,
    browser: Browser,  # noqa: F811 - the fixture
) -> None:
    devices = [("ap-lake", "ap-lake", "wifi_ap"), ("ap-market", "ap-market", "wifi_ap")]
    settings = load_config(write_mqtt_city(tmp_path, mosquitto.port, devices))
    now = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    readings = [
        Reading(key, now - dt.timedelta(minutes=m), {"clients": clients, "rx_kbps": 50.0, "tx_kbps": 150.0})
        for m in range(0, 48 * 60, 10)  # two days: at least one whole evening
        for key, clients in (("ap-lake", 14), ("ap-market", 0))
    ]
    async with running_controller(settings) as ctl:
        await ctl.store.write(readings)
        await ctl.auth.create_user("ioc", "viewer", PASSWORD)
        server = ApiServer(create_app(ControllerService(ctl)), "127.0.0.1", 0)
        await server.start()
        try:
            page = await log_in(browser, server.url, "ioc")
            await page.select_option("#language", "en")
            await expect(page.locator("#wifi")).to_be_visible()
            await expect(page.locator("#wifi-group")).to_have_value("hanoi")
            await expect(page.locator("#wifi-summary")).to_contain_text("2 access points")
            await expect(page.locator("#wifi-busiest li").first).to_contain_text("ap-lake: 14")
            await expect(page.locator("#wifi-idle")).to_contain_text("serving no one: ap-market")
            await shot(page, "10-public-wifi")
        finally:
            await server.stop()

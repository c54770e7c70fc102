"""The operations room sees the city's air: a tile per district in its VN_AQI level's colour with the
regulation's words, a 48-hour chart, and each air sensor ringed on the map in its level's colour —
from readings in the telemetry store, through the air watch and `/api/v1/air`, to a real browser."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from playwright.async_api import Browser, expect

from api.app import create_app
from api.server import ApiServer
from controller.air_figures import INDEX_FIELD, hour_end
from controller.config import load_config
from controller.service import ControllerService
from drivers.base import Reading
from tests.api.test_dashboard import PASSWORD, browser, log_in, shot  # noqa: F401 - `browser` is a fixture
from tests.controller.city import running_controller, write_mqtt_city
from tests.mosquitto import Mosquitto

# sensor → (district, PM2.5 µg/m³ for the last 12 hours): VN_AQI 40 "Tốt" and 250 "Rất xấu"
AIR = {"air-lake": ("hanoi/hoan-kiem", 20.0), "air-kiln": ("hanoi/ba-dinh", 200.0)}


async def test_the_operations_room_sees_each_districts_air(
    tmp_path: Path,
    mosquitto: Mosquitto,
    browser: Browser,  # noqa: F811 - the fixture
) -> None:
    path = write_mqtt_city(tmp_path, mosquitto.port, [(d, d, "env_sensor") for d in AIR])
    text = path.read_text(encoding="utf-8")
    kiln = 'key = "air-kiln"\nprofile = "env_sensor"\ngroup = "hanoi/'
    path.write_text(text.replace(kiln + "hoan-kiem", kiln + "ba-dinh"), encoding="utf-8")
    settings = load_config(path)
    now = dt.datetime.now(dt.UTC)
    end = hour_end(now, 3600)
    readings = [
        Reading(device, now - dt.timedelta(minutes=m), {"pm2_5_ugm3": pm, "pm10_ugm3": pm * 1.5})
        for m in range(1, 13 * 60, 5)
        for device, (_, pm) in AIR.items()
    ]
    # the index kept by earlier hours (the chart reads it back)
    readings += [
        Reading("air-kiln", end - dt.timedelta(hours=h), {INDEX_FIELD: 100 + 10 * (48 - h)})
        for h in range(2, 30)
    ]
    async with running_controller(settings) as ctl:
        assert ctl.air is not None
        await ctl.store.write(readings)
        await ctl.air.compute(end)
        assert {d: f.index for d, f in ctl.air.districts.items()} == {
            "hanoi/ba-dinh": 250,
            "hanoi/hoan-kiem": 40,
        }
        await ctl.auth.create_user("ioc", "viewer", PASSWORD)
        server = ApiServer(create_app(ControllerService(ctl)), "127.0.0.1", 0)
        await server.start()
        try:
            page = await log_in(browser, server.url, "ioc", locale="vi-VN")
            await page.select_option("#language", "vi")
            await expect(page.locator("#air")).to_be_visible()
            kiln_tile = page.locator('.air-tile[data-district="hanoi/ba-dinh"]')
            await expect(kiln_tile).to_contain_text("250")
            await expect(kiln_tile).to_contain_text("Rất xấu")
            await expect(kiln_tile).to_have_css("background-color", "rgb(143, 63, 151)")  # table 1: tím
            lake_tile = page.locator('.air-tile[data-district="hanoi/hoan-kiem"]')
            await expect(lake_tile).to_contain_text("Tốt")
            await expect(lake_tile).to_have_css("background-color", "rgb(0, 228, 0)")  # table 1: xanh
            await kiln_tile.click()
            await expect(page.locator("#air-advice")).to_contain_text(
                "hạn chế tối đa các hoạt động ngoài trời"
            )
            await expect(page.locator("#air-chart path.line")).to_have_count(1)
            ring = "() => window.lamplighter.devices.byId.get('air-kiln').properties.airColour"
            await page.wait_for_function(ring)
            assert await page.evaluate(ring) == "#8F3F97"
            await page.locator("#air").scroll_into_view_if_needed()
            await shot(page, "11-air-quality-vi")
        finally:
            await server.stop()

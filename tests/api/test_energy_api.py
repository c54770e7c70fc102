"""`GET /api/v1/energy` over both telemetry stores: kWh from the lamps' counters, and the saving."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from controller.config import load_config
from drivers.base import Reading
from tests.api.keys import api_client
from tests.conftest import free_port
from tests.controller.city import running_city, running_controller, settings_for, write_city
from tests.tsdb import InfluxDB1

HANOI = ZoneInfo("Asia/Ho_Chi_Minh")


@pytest.fixture(params=["sqlite", "influxdb"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield ""
        return
    server = InfluxDB1(tmp_path / "influx")
    server.start()
    yield f"""[telemetry]
backend = "influxdb"
[telemetry.influxdb]
url = "{server.url}"
write_endpoint = "v1"
database = "city"
buffer_dir = "{tmp_path}/buffer"
"""
    server.stop()


def with_backend(text: str, section: str) -> str:
    if not section:
        return text
    lines = text.splitlines()
    i = lines.index("[telemetry]")
    return "\n".join([*lines[:i], *section.strip().splitlines(), *lines[i + 2 :]]) + "\n"


async def test_energy_per_lamp_and_day_against_the_dusk_to_dawn_baseline(
    tmp_path: Path, backend: str
) -> None:
    path = write_city(tmp_path, gw_lamps=2, bus_lamps=1)
    path.write_text(with_backend(path.read_text(), backend))
    settings = load_config(path)
    day1 = dt.datetime(2026, 11, 20, tzinfo=HANOI)  # local midnights
    day2 = day1 + dt.timedelta(days=1)
    async with running_city(settings), running_controller(settings) as ctl:
        # each 100 W lamp burns all night at 50 %: its counter grows 650 Wh a day (13 dark hours)
        history = []
        for device, daily_wh in (("gw1-001", 650.0), ("gw1-002", 325.0)):
            for hour in range(48):
                ts = day1 + dt.timedelta(hours=hour, minutes=30)
                history.append(
                    Reading(device, ts.astimezone(dt.UTC), {"energy_wh": 10_000 + daily_wh * hour / 24})
                )
        await ctl.store.write(history)
        if hasattr(ctl.store, "flush"):
            assert await ctl.store.flush()
        async with api_client(ctl) as client:
            params = {
                "group": "hanoi/ba-dinh",
                "from": day1.isoformat(),
                "to": (day2 + dt.timedelta(days=1)).isoformat(),
                "every": "1d",
            }
            body = (await client.get("/api/v1/energy", params=params)).json()
            missing = await client.get("/api/v1/energy", params={"group": "nowhere"})
            inverted = await client.get(
                "/api/v1/energy", params={**params, "from": params["to"], "to": params["from"]}
            )
    assert body["lamps"] == 2
    assert [w["start"] for w in body["windows"]] == [
        day1.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
        day2.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
    ]
    lamp1 = next(p for p in body["per_lamp"] if p["device_id"] == "gw1-001")
    # 23 of 24 hourly steps fall inside one day: 650 × 23/24 Wh
    assert lamp1["windows"][0]["kwh"] == pytest.approx(0.650 * 23 / 24, abs=0.001)
    assert 1.2 < lamp1["windows"][0]["baseline_kwh"] < 1.45  # 100 W × ~13 dark hours in late November
    assert 45 < lamp1["saving_pct"] < 60
    assert body["kwh"] == pytest.approx((0.650 + 0.325) * 2 * 23 / 24, abs=0.002)
    assert missing.status_code == 404
    assert inverted.status_code == 400


async def test_a_group_with_a_cabinet_meter_reports_the_meters_kwh_and_says_so(
    tmp_path: Path, backend: str
) -> None:
    """ba-dinh's cabinet meter (an Eastron SDM630, counting kWh) sees its lamps and the cables:
    1,100 Wh a day against the lamps' own 975. The report counts the meter and names it."""
    cabinet = f"""
[[links]]
id = "cabinet-link"
site = "hn"
kind = "modbus_tcp"
host = "127.0.0.1"
port = {free_port()}

[[devices]]
id = "cabinet-badinh"
link = "cabinet-link"
unit_id = 1
profile = "eastron_sdm630"
group = "hanoi/ba-dinh"
latitude = 21.03
longitude = 105.82
"""
    path = write_city(tmp_path, gw_lamps=2, bus_lamps=1, interval=60.0, extra=cabinet)
    path.write_text(with_backend(path.read_text(), backend))
    settings = load_config(path)
    day1 = dt.datetime(2026, 11, 20, tzinfo=HANOI)
    async with running_controller(settings) as ctl:
        history = [
            Reading(
                device,
                (day1 + dt.timedelta(hours=hour, minutes=30)).astimezone(dt.UTC),
                {"energy_wh": 10_000 + daily_wh * hour / 24},
            )
            for device, daily_wh in (("gw1-001", 650.0), ("gw1-002", 325.0), ("cabinet-badinh", 1100.0))
            for hour in range(25)
        ]
        await ctl.store.write(history)
        if hasattr(ctl.store, "flush"):
            assert await ctl.store.flush()
        async with api_client(ctl) as client:
            params = {
                "group": "hanoi/ba-dinh",
                "from": day1.isoformat(),
                "to": (day1 + dt.timedelta(days=1)).isoformat(),
            }
            body = (await client.get("/api/v1/energy", params=params)).json()
            lamps_only = (
                await client.get("/api/v1/energy", params={**params, "group": "hanoi/hoan-kiem"})
            ).json()
    assert (body["source"], body["meters"]) == ("meters", ["cabinet-badinh"])
    assert body["kwh"] == pytest.approx(1.100 * 23 / 24, abs=0.002)  # the meter's, not the lamps' 0.975
    assert body["lamps"] == 2
    assert (lamps_only["source"], lamps_only["meters"]) == ("lamps", [])


async def test_no_saving_is_claimed_for_the_hours_before_a_lamp_first_reported(tmp_path: Path) -> None:
    """A lamp first heard at 18:00 (the controller started then): its first day's baseline is the
    six dark hours it was measured in, not the thirteen of the whole day."""
    settings = settings_for(tmp_path, gw_lamps=1, bus_lamps=1, interval=60.0)
    day1 = dt.datetime(2026, 11, 20, tzinfo=HANOI)
    async with running_controller(settings) as ctl:
        await ctl.store.write(
            [
                Reading("gw1-001", (day1 + dt.timedelta(hours=h)).astimezone(dt.UTC), {"energy_wh": 50.0 * h})
                for h in range(18, 48)
            ]
        )
        async with api_client(ctl) as client:
            params = {
                "group": "hanoi/ba-dinh",
                "from": day1.isoformat(),
                "to": (day1 + dt.timedelta(days=2)).isoformat(),
            }
            body = (await client.get("/api/v1/energy", params=params)).json()
    first, second = body["windows"]
    assert first["baseline_kwh"] == pytest.approx(0.6, abs=0.01)  # 100 W, 18:00 to midnight
    assert 1.1 < second["baseline_kwh"] < 1.35  # the night of day 2 up to its last reading, 23:00

"""The energy KPI's baseline covers what the energy figure covers: no saving claimed for hours the
controller never measured, nothing for lamps without data."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from controller.device import Device
from controller.energy import totals
from controller.telemetry.sqlite import SqliteTelemetryStore
from drivers.base import Reading
from schedules.astro import AstroClock

HANOI = ZoneInfo("Asia/Ho_Chi_Minh")
CLOCKS = {"hn": AstroClock(21.0285, 105.8542, "Asia/Ho_Chi_Minh")}
MIDNIGHT = dt.datetime(2026, 11, 30, 0, 0, tzinfo=HANOI)


def lamp(device_id: str, group: str = "hn/old-quarter/hang-dao") -> Device:
    return Device(device_id, "hn", "gw1", 1, "1", "lamp_lcu", "lamp", group, 21.0, 105.8, 100.0, 60.0)


def meter(device_id: str, group: str) -> Device:
    return Device(
        device_id, "hn", "meters", 1, "1", "eastron_sdm120", "meter", group, 21.0, 105.8, None, 60.0
    )


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteTelemetryStore]:
    s = SqliteTelemetryStore(f"sqlite+aiosqlite:///{tmp_path}/t.db")
    await s.open()
    try:
        yield s
    finally:
        await s.close()


async def test_a_controller_started_in_the_evening_claims_no_saving_for_the_night_before(
    store: SqliteTelemetryStore,
) -> None:
    # The lamp reported from 20:00 to 21:00 (it is dark): 60 Wh at 60 % of 100 W for an hour.
    await store.write(
        [
            Reading("a", MIDNIGHT + dt.timedelta(hours=h), {"energy_wh": wh}, {}, 0)
            for h, wh in ((20, 1000.0), (20.5, 1030.0), (21, 1060.0))
        ]
    )
    end = MIDNIGHT + dt.timedelta(hours=22)
    kwh, baseline, reporting, source = await totals(store, CLOCKS, [lamp("a"), lamp("silent")], MIDNIGHT, end)
    assert source == "lamps"
    assert reporting == 1  # the silent lamp counts for nothing
    assert kwh == pytest.approx(0.06)
    assert baseline == pytest.approx(0.1)  # one dark hour at 100 W, not the night since midnight
    nothing = await totals(store, CLOCKS, [lamp("silent")], MIDNIGHT, end)
    assert nothing == (0.0, 0.0, 0, "lamps")


async def test_a_group_with_a_cabinet_meter_is_counted_by_the_meter_and_says_so(
    store: SqliteTelemetryStore,
) -> None:
    """The cabinet meter of hang-dao sees its two lamps and the cable losses (130 Wh in the hour);
    their own counters (60 Wh each) are not added to it. A meter of one street inside the cabinet's
    group is not counted twice; the lamp of another group, without a meter, counts by its own."""

    def counter(device: str, start_wh: float, wh_per_hour: float) -> list[Reading]:
        return [
            Reading(
                device,
                MIDNIGHT + dt.timedelta(hours=h),
                {"energy_wh": start_wh + wh_per_hour * (h - 20)},
                {},
                0,
            )
            for h in (20, 20.5, 21)
        ]

    await store.write(
        [
            *counter("a", 1000, 60),
            *counter("b", 1000, 60),
            *counter("elsewhere", 1000, 60),
            *counter("cabinet", 5e6, 130),
            *counter("street-meter", 7e6, 65),
        ]
    )
    end = MIDNIGHT + dt.timedelta(hours=22)
    lamps = [lamp("a"), lamp("b", "hn/old-quarter/hang-dao/north")]
    meters = [meter("cabinet", "hn/old-quarter"), meter("street-meter", "hn/old-quarter/hang-dao/north")]
    kwh, baseline, reporting, source = await totals(store, CLOCKS, lamps, MIDNIGHT, end, meters)
    assert (source, reporting) == ("meters", 2)
    assert kwh == pytest.approx(0.13)  # the cabinet's, not 0.12 from the lamps nor 0.195 with the street's
    assert baseline == pytest.approx(0.2)  # two lamps, one dark hour (the meter's span), 100 W
    mixed = await totals(store, CLOCKS, [*lamps, lamp("elsewhere", "hn/west")], MIDNIGHT, end, meters)
    assert mixed[3] == "meters+lamps"
    assert mixed[0] == pytest.approx(0.13 + 0.06)

"""The energy KPI's baseline covers what the energy figure covers: no saving claimed for hours the
controller never measured, nothing for lamps without data."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from controller.energy import totals
from controller.registry import DeviceRow
from controller.telemetry.sqlite import SqliteTelemetryStore
from drivers.base import Reading
from schedules.astro import AstroClock

HANOI = ZoneInfo("Asia/Ho_Chi_Minh")
CLOCKS = {"hn": AstroClock(21.0285, 105.8542, "Asia/Ho_Chi_Minh")}
MIDNIGHT = dt.datetime(2026, 11, 30, 0, 0, tzinfo=HANOI)


def lamp(device_id: str) -> DeviceRow:
    return DeviceRow(id=device_id, site_id="hn", rated_power_w=100.0)


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
    kwh, baseline, reporting = await totals(store, CLOCKS, [lamp("a"), lamp("silent")], MIDNIGHT, end)
    assert reporting == 1  # the silent lamp counts for nothing
    assert kwh == pytest.approx(0.06)
    assert baseline == pytest.approx(0.1)  # one dark hour at 100 W, not the night since midnight
    nothing = await totals(store, CLOCKS, [lamp("silent")], MIDNIGHT, end)
    assert nothing == (0.0, 0.0, 0)

"""The embedded telemetry store: batch writes, raw and windowed queries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from controller.telemetry import SqliteTelemetryStore
from drivers.base import Reading

T0 = datetime(2026, 11, 25, 18, 0, tzinfo=UTC)


def reading(device: str, minute: float, power: float, **extra: object) -> Reading:
    values = {"power_w": power, "lamp_on": power > 0, "firmware_version": "1.4", **extra}
    return Reading(device, T0 + timedelta(minutes=minute), values, raw_status=0)  # type: ignore[arg-type]


@pytest.fixture
async def store(tmp_path: Path):  # type: ignore[no-untyped-def]
    s = SqliteTelemetryStore(f"sqlite+aiosqlite:///{tmp_path}/t.db")
    await s.open()
    yield s
    await s.close()


async def test_raw_points_come_back_in_time_order_for_one_device(
    store: SqliteTelemetryStore,
) -> None:
    await store.write([reading("a", 2, 20), reading("a", 1, 10), reading("b", 1, 99)])
    points = await store.query("a", T0, T0 + timedelta(hours=1), fields=["power_w", "firmware_version"])
    assert [p.values for p in points] == [
        {"power_w": 10, "firmware_version": "1.4"},
        {"power_w": 20, "firmware_version": "1.4"},
    ]
    assert points[0].ts == T0 + timedelta(minutes=1)


async def test_windowed_aggregation(store: SqliteTelemetryStore) -> None:
    await store.write([reading("a", m, p) for m, p in [(0, 10), (5, 30), (10, 50), (15, 70)]])
    end = T0 + timedelta(hours=1)
    mean = await store.query("a", T0, end, fields=["power_w", "lamp_on"], every_s=600)
    assert [(p.ts, p.values["power_w"]) for p in mean] == [
        (T0, 20),
        (T0 + timedelta(minutes=10), 60),
    ]
    assert mean[0].values["lamp_on"] == 1  # fraction of the window the lamp was on
    peak = await store.query("a", T0, end, fields=["power_w"], every_s=600, aggregate="max")
    assert [p.values["power_w"] for p in peak] == [30, 70]


async def test_range_end_is_exclusive_and_names_that_are_no_field_names_are_refused(
    store: SqliteTelemetryStore,
) -> None:
    await store.write([reading("a", 0, 1), reading("a", 10, 2)])
    points = await store.query("a", T0, T0 + timedelta(minutes=10), fields=["power_w"])
    assert [p.values["power_w"] for p in points] == [1]
    with pytest.raises(ValueError, match="not field names"):
        await store.query("a", T0, T0 + timedelta(minutes=10), fields=["power_w') --"])

"""What the air watch works with: hourly means read from the telemetry store, the figure of a
sensor or a district, and the hysteresis of a district's alert.

Hourly means come from the store as quarter-hour means: an hour counts when at least 3 of its 4
quarters have readings (45 of its 60 minutes, 75 %), and is then the mean of those quarters — so a
sensor that reports in bursts is not weighed by how often it speaks, and a sensor that fell silent for
half an hour leaves a gap, never a guess.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from controller.air_index import (
    DUST,
    LEVELS,
    NOWCAST_HOURS,
    POLLUTANT_FIELDS,
    IndexResult,
    Level,
    Scheme,
    level_of,
)
from controller.air_settings import QUARTERS, AirSettings
from controller.telemetry import TelemetryStore

#: the field the hourly index is kept under, in each sensor's telemetry
INDEX_FIELD = "air_quality_index"
MIN_QUARTERS = 3


def district_of(group_path: str, depth: int) -> str:
    return "/".join(group_path.split("/")[:depth])


def hour_end(now: dt.datetime, hour_s: int) -> dt.datetime:
    """The end of the last complete hour before `now` (hours are aligned on the epoch, as the
    stores align their windows)."""
    ts = int(now.timestamp()) // hour_s * hour_s
    return dt.datetime.fromtimestamp(ts, dt.UTC)


async def hourly_means(
    store: TelemetryStore,
    device_id: str,
    fields: Sequence[str],
    end: dt.datetime,
    hours: int,
    hour_s: int = 3600,
) -> dict[str, list[float | None]]:
    """Per reading field, the means of the `hours` hours before `end`, the newest first."""
    start = end - dt.timedelta(seconds=hours * hour_s)
    quarter = hour_s // QUARTERS
    points = await store.query(
        device_id,
        start,
        end,
        fields=list(fields),
        every_s=quarter,
        aggregate="mean",
        limit=hours * QUARTERS + 4,
    )
    sums: dict[str, list[list[float]]] = {f: [[] for _ in range(hours)] for f in fields}
    for p in points:
        offset = int((p.ts - start).total_seconds() // hour_s)
        if not 0 <= offset < hours:
            continue
        for f in fields:
            v = p.values.get(f)
            if isinstance(v, int | float) and not isinstance(v, bool):
                sums[f][offset].append(float(v))
    return {
        f: [sum(q) / len(q) if len(q) >= MIN_QUARTERS else None for q in reversed(per_hour)]
        for f, per_hour in sums.items()
    }


def by_pollutant(means: dict[str, list[float | None]]) -> dict[str, list[float | None]]:
    return {POLLUTANT_FIELDS[f]: v for f, v in means.items() if f in POLLUTANT_FIELDS}


def reliability(hourly: dict[str, list[float | None]], dominant: str | None) -> float:
    """The share of the NowCast's 12 hours that had data, for the pollutant that set the index."""
    series = (
        hourly.get(dominant or "", []) if dominant in DUST else hourly.get("pm25") or hourly.get("pm10") or []
    )
    return round(sum(v is not None for v in series[:NOWCAST_HOURS]) / NOWCAST_HOURS, 2)


@dataclass(frozen=True)
class AirFigure:
    """The hourly index of a sensor or a district for the hour that starts at `hour`."""

    scheme: Scheme
    hour: dt.datetime
    result: IndexResult
    reliability: float
    #: for a district: the sensor that set its index, and how many of its sensors had one
    sensor: str | None = None
    sensors: int = 1
    sensors_with_index: int = 0
    members: tuple[str, ...] = field(default=())

    @property
    def index(self) -> int | None:
        return self.result.index

    @property
    def level(self) -> Level | None:
        return None if self.result.index is None else level_of(self.scheme, self.result.index)


@dataclass
class DistrictAlarm:
    """Raised once on entering `level` (its lowest index), cleared once `hysteresis` points below it.

    An hour without an index ("not enough data") neither raises nor clears."""

    raise_at: int
    clear_at: int
    raised: bool = False

    @classmethod
    def of(cls, settings: AirSettings) -> DistrictAlarm:
        low = LEVELS[settings.index][settings.alert_level - 1].low
        return cls(raise_at=low, clear_at=max(0, low - 1 - settings.hysteresis))

    def judge(self, index: int | None) -> Literal["raised", "cleared"] | None:
        if index is None:
            return None
        if not self.raised and index >= self.raise_at:
            self.raised = True
            return "raised"
        if self.raised and index <= self.clear_at:
            self.raised = False
            return "cleared"
        return None

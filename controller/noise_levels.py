"""Noise as a city judges it: the equivalent continuous sound level (Leq) per hour, for the day and for
the night, against limits — by default those of QCVN 26:2010/BTNMT (the national technical regulation
on noise) for ordinary residential areas: 70 dB(A) from 06:00 to 21:00, 55 dB(A) from 21:00 to 06:00.

Leq is an energy average: 10·log10 of the mean of 10^(L/10) over the period — not the mean of the
decibels (a quiet hour does not cancel a loud one). Each reading stands for the time until the next
one (at most `max_gap`), so a sensor that reports more often in a loud minute does not weigh it more.
A period with less than `min_coverage` of its time reported is "not enough data", never a guess.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field

#: QCVN 26:2010/BTNMT, "khu vực thông thường" (ordinary areas, residential among them)
DAY_LIMIT_DBA = 70.0
NIGHT_LIMIT_DBA = 55.0
DAY_STARTS = 6  # 06:00
NIGHT_STARTS = 21  # 21:00


class NoiseLimits(BaseModel):
    """`[noise]`: the limits sensors are judged by; the regulation's for ordinary areas unless configured."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    day_dba: float = Field(default=DAY_LIMIT_DBA, gt=0, le=140)
    night_dba: float = Field(default=NIGHT_LIMIT_DBA, gt=0, le=140)
    day_starts: int = Field(default=DAY_STARTS, ge=0, le=23)
    night_starts: int = Field(default=NIGHT_STARTS, ge=0, le=23)


class PeriodLevel(BaseModel):
    start: dt.datetime
    end: dt.datetime
    leq_dba: float | None = Field(description="null: less than the minimum coverage was reported")
    coverage_pct: float
    limit_dba: float | None = None
    exceeds: bool | None = Field(default=None, description="null when there is no Leq to judge")


class NoiseDay(BaseModel):
    device_id: str
    date: dt.date
    timezone: str
    hours: list[PeriodLevel]
    day: PeriodLevel = Field(description="from day_starts to night_starts, site time")
    night: PeriodLevel = Field(description="from night_starts to day_starts the next morning, site time")


def leq(
    samples: Sequence[tuple[dt.datetime, float]],
    start: dt.datetime,
    end: dt.datetime,
    *,
    max_gap: dt.timedelta,
    min_coverage: float,
) -> tuple[float | None, float]:
    """(Leq in dB, share of [start, end) covered) from (time, level) samples sorted by time; each
    sample holds until the next one, at most `max_gap`."""
    energy = 0.0
    covered = 0.0
    for i, (at, level) in enumerate(samples):
        nxt = samples[i + 1][0] if i + 1 < len(samples) else at + max_gap
        a, b = max(at, start), min(nxt, at + max_gap, end)
        if a < b:
            seconds = (b - a).total_seconds()
            energy += seconds * 10 ** (level / 10)
            covered += seconds
    span = (end - start).total_seconds()
    share = covered / span if span > 0 else 0.0
    if covered == 0 or share < min_coverage:
        return None, round(100 * share, 2)
    return round(10 * math.log10(energy / covered), 2), round(100 * share, 2)


def noise_day(
    device_id: str,
    day: dt.date,
    tz: ZoneInfo,
    samples: Sequence[tuple[dt.datetime, float]],
    limits: NoiseLimits,
    *,
    max_gap: dt.timedelta = dt.timedelta(minutes=5),
    min_coverage: float = 0.75,
) -> NoiseDay:
    """A site day's 24 hourly Leq, its day Leq and the night that follows it, judged by `limits`."""

    def at(d: dt.date, hour: int) -> dt.datetime:
        return dt.datetime.combine(d, dt.time(hour), tz).astimezone(dt.UTC)

    def period(a: dt.datetime, b: dt.datetime, limit: float | None) -> PeriodLevel:
        value, coverage = leq(samples, a, b, max_gap=max_gap, min_coverage=min_coverage)
        judged = None if value is None or limit is None else value > limit
        return PeriodLevel(
            start=a, end=b, leq_dba=value, coverage_pct=coverage, limit_dba=limit, exceeds=judged
        )

    midnight = dt.datetime.combine(day, dt.time(0), tz)
    hours = []
    for h in range(24):
        a = (midnight + dt.timedelta(hours=h)).astimezone(dt.UTC)  # hours of a DST day stay whole
        local = a.astimezone(tz).hour
        daytime = limits.day_starts <= local < limits.night_starts
        hours.append(period(a, a + dt.timedelta(hours=1), limits.day_dba if daytime else limits.night_dba))
    after = day + dt.timedelta(days=1)
    return NoiseDay(
        device_id=device_id,
        date=day,
        timezone=str(tz),
        hours=hours,
        day=period(at(day, limits.day_starts), at(day, limits.night_starts), limits.day_dba),
        night=period(at(day, limits.night_starts), at(after, limits.day_starts), limits.night_dba),
    )

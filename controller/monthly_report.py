"""The month of a group, as a city hands it on: energy and saving per day (from its meters where it
has some, else its lamps' counters — and which), burning hours, availability, faults and repair times.

Days and the month are the site's (local midnight to midnight). A month still running ends now.
The figures are built by pure functions from what the stores answer; `monthly_report` asks them.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field

from controller.device import Device
from controller.energy import EnergyReport, EnergySource
from controller.faults import DARKENING
from controller.wifi_figures import WifiSummary

#: (device, kind, raised, cleared) as the alert store answers
AlertSpan = tuple[str, str, dt.datetime, dt.datetime | None]


class DayFigures(BaseModel):
    day: dt.date
    kwh: float
    baseline_kwh: float
    saving_pct: float | None
    burning_hours: float = Field(description="summed over the group's lamps (their counters' spread)")


class FaultFigures(BaseModel):
    kind: str
    raised: int = Field(description="raised in the month")
    cleared: int = Field(description="of those, cleared in the month")
    mttr_hours: float | None = Field(description="mean time from raised to cleared, of those cleared")


class MonthlyReport(BaseModel):
    group: str
    month: str = Field(description="YYYY-MM, in the site's calendar")
    timezone: str
    start: dt.datetime
    end: dt.datetime = Field(description="the month's end, or now for the month still running")
    lamps: int
    source: EnergySource = Field(description="meters, lamps (their counters) or both")
    meters: list[str]
    kwh: float
    baseline_kwh: float
    saving_pct: float | None
    burning_hours: float
    availability_pct: float | None = Field(
        description="share of lamp-hours without an open alert that stops the light "
        f"({', '.join(sorted(DARKENING))})"
    )
    faults_raised: int
    mttr_hours: float | None
    faults: list[FaultFigures]
    days: list[DayFigures]
    wifi: WifiSummary | None = Field(
        default=None, description="the group's public Wi-Fi, if it has access points"
    )


def month_span(month: str, tz: ZoneInfo, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """[local midnight of the 1st, local midnight of the next 1st or now), in UTC; ValueError if
    the month is not YYYY-MM or has not begun."""
    try:
        year, number = (int(p) for p in month.split("-"))
        first = dt.datetime(year, number, 1, tzinfo=tz)
    except ValueError:
        raise ValueError(f"month {month!r}: write it YYYY-MM, e.g. 2026-11") from None
    following = dt.datetime(year + number // 12, number % 12 + 1, 1, tzinfo=tz)
    start, end = first.astimezone(dt.UTC), min(following.astimezone(dt.UTC), now)
    if end <= start:
        raise ValueError(f"month {month} has not begun")
    return start, end


def faults_of(spans: Iterable[AlertSpan], start: dt.datetime, end: dt.datetime) -> list[FaultFigures]:
    """Raised, cleared and mean repair time per kind, of the alerts raised in [start, end)."""
    raised: Counter[str] = Counter()
    repairs: dict[str, list[float]] = defaultdict(list)
    for _, kind, up, down in spans:
        if not start <= up < end:
            continue
        raised[kind] += 1
        if down is not None and down < end:
            repairs[kind].append((down - up).total_seconds() / 3600)
    return [
        FaultFigures(
            kind=kind,
            raised=n,
            cleared=len(repairs[kind]),
            mttr_hours=round(statistics.fmean(repairs[kind]), 3) if repairs[kind] else None,
        )
        for kind, n in sorted(raised.items(), key=lambda kv: (-kv[1], kv[0]))
    ]


def availability(
    lamps: Sequence[Device], spans: Iterable[AlertSpan], start: dt.datetime, end: dt.datetime
) -> float | None:
    """Share of the lamps' hours in [start, end) with no darkening alert open (overlaps merged)."""
    hours = (end - start).total_seconds() / 3600
    if not lamps or hours <= 0:
        return None
    ids = {r.id for r in lamps}
    dark: dict[str, list[tuple[dt.datetime, dt.datetime]]] = defaultdict(list)
    for device, kind, up, down in spans:
        if device in ids and kind in DARKENING:
            a, b = max(up, start), min(down or end, end)
            if a < b:
                dark[device].append((a, b))
    lost = 0.0
    for intervals in dark.values():
        intervals.sort()
        cur_a, cur_b = intervals[0]
        for a, b in intervals[1:]:
            if a > cur_b:
                lost += (cur_b - cur_a).total_seconds()
                cur_a, cur_b = a, b
            else:
                cur_b = max(cur_b, b)
        lost += (cur_b - cur_a).total_seconds()
    return round(100 * (1 - lost / 3600 / (hours * len(lamps))), 3)


def assemble(
    group: str,
    month: str,
    tz: ZoneInfo,
    lamps: Sequence[Device],
    energy: EnergyReport,
    burning: Mapping[str, Mapping[dt.datetime, float]],
    spans: Sequence[AlertSpan],
    wifi: WifiSummary | None = None,
) -> MonthlyReport:
    """The report from the month's energy table (one window a day), the lamps' burning-hour
    spreads per day, and the group's alerts open in the month."""
    per_day: dict[dt.datetime, float] = defaultdict(float)
    for windows in burning.values():
        for w, h in windows.items():
            per_day[w] += h
    days = [
        DayFigures(
            day=w.start.astimezone(tz).date(),
            kwh=w.kwh,
            baseline_kwh=w.baseline_kwh,
            saving_pct=w.saving_pct,
            burning_hours=round(per_day.get(w.start, 0.0), 2),
        )
        for w in energy.windows
    ]
    faults = faults_of(spans, energy.start, energy.end)
    repaired = [f.mttr_hours * f.cleared for f in faults if f.mttr_hours is not None]
    cleared = sum(f.cleared for f in faults)
    return MonthlyReport(
        group=group,
        month=month,
        timezone=str(tz),
        start=energy.start,
        end=energy.end,
        lamps=len(lamps),
        source=energy.source,
        meters=energy.meters,
        kwh=energy.kwh,
        baseline_kwh=energy.baseline_kwh,
        saving_pct=energy.saving_pct,
        burning_hours=round(sum(d.burning_hours for d in days), 2),
        availability_pct=availability(lamps, spans, energy.start, energy.end),
        faults_raised=sum(f.raised for f in faults),
        mttr_hours=round(sum(repaired) / cleared, 3) if cleared else None,
        faults=faults,
        days=days,
        wifi=wifi,
    )

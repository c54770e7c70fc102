"""Public Wi-Fi as a city reports it: per access point and window, the peak and mean of associated
clients, the data carried and the share of time the access point was up; the group's totals and its
busiest places.

Built from hourly aggregates of the telemetry store (mean and peak clients, mean throughput), so a
month of an access point is 744 figures whatever its reporting interval; windows of hours, days or
months start at the site's local midnight. Availability comes from the `accessPointOffline` alerts
(the hours an access point was reported offline or silent), as the lamps' does from theirs.
"""

from __future__ import annotations

import bisect
import datetime as dt
import statistics
from collections.abc import Mapping, Sequence

from pydantic import BaseModel, Field

HOUR = dt.timedelta(hours=1)
#: the local hours a public hotspot is busiest: up all through them and no one served is suspect
EVENING = range(18, 22)


class HourFigures(BaseModel):
    """One hour of one access point, as the store aggregates it."""

    mean_clients: float | None
    peak_clients: float | None
    mean_kbps: float | None = Field(description="received plus sent, kbit/s")


class WifiWindow(BaseModel):
    start: dt.datetime
    peak_clients: int | None = Field(description="null: no report in the window")
    mean_clients: float | None
    data_mb: float = Field(description="data carried (received and sent), MB, from hourly mean throughput")
    availability_pct: float = Field(description="share of the window without an accessPointOffline alert")


class AccessPointFigures(BaseModel):
    device_id: str
    group: str
    peak_clients: int | None
    mean_clients: float | None
    data_mb: float
    availability_pct: float
    idle_evenings: list[dt.date] = Field(
        description="site days it was up all evening (18–22 h) and served no one: a dead radio "
        "behind a live link?"
    )
    windows: list[WifiWindow]


class WifiReport(BaseModel):
    group: str
    start: dt.datetime
    end: dt.datetime
    every_s: float
    access_points: int
    peak_clients: int | None = Field(description="the highest number of clients on one access point")
    mean_clients: float | None = Field(description="per access point, over the reported hours")
    data_mb: float
    availability_pct: float | None
    busiest: list[str] = Field(description="the access points with most clients on average, most first")
    idle_in_the_evening: list[str] = Field(description="access points with at least one idle evening")
    per_access_point: list[AccessPointFigures]


class WifiSummary(BaseModel):
    """A group's public Wi-Fi over a period, for reports."""

    access_points: int
    peak_clients: int | None
    mean_clients: float | None
    data_mb: float
    availability_pct: float | None
    busiest: list[str]
    idle_in_the_evening: list[str]

    @classmethod
    def of(cls, report: WifiReport) -> WifiSummary:
        return cls(**report.model_dump(include=set(cls.model_fields)))


def _window_of(at: dt.datetime, windows: Sequence[dt.datetime]) -> dt.datetime | None:
    i = bisect.bisect_right(windows, at) - 1
    return windows[i] if i >= 0 else None


def _down_hours(
    spans: Sequence[tuple[dt.datetime, dt.datetime | None]], a: dt.datetime, b: dt.datetime
) -> float:
    lost = 0.0
    for up, down in sorted(spans):
        lo, hi = max(up, a), min(down or b, b)
        if lo < hi:
            lost += (hi - lo).total_seconds()
    return lost / 3600


def hour_figures(
    means: Sequence[tuple[dt.datetime, Mapping[str, object]]],
    peaks: Sequence[tuple[dt.datetime, Mapping[str, object]]],
) -> dict[dt.datetime, HourFigures]:
    """Hourly figures from the store's hourly mean and max points of clients, rx_kbps, tx_kbps."""

    def num(v: object) -> float | None:
        return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None

    out: dict[dt.datetime, HourFigures] = {}
    top = {t: num(values.get("clients")) for t, values in peaks}
    for t, values in means:
        rx, tx = num(values.get("rx_kbps")), num(values.get("tx_kbps"))
        kbps = None if rx is None and tx is None else (rx or 0.0) + (tx or 0.0)
        out[t] = HourFigures(mean_clients=num(values.get("clients")), peak_clients=top.get(t), mean_kbps=kbps)
    return out


def idle_evenings(
    hours: Mapping[dt.datetime, HourFigures],
    spans: Sequence[tuple[dt.datetime, dt.datetime | None]],
    tz: dt.tzinfo,
) -> list[dt.date]:
    """Site days whose every evening hour was reported, with no client, and no offline alert open."""
    evenings: dict[dt.date, list[tuple[dt.datetime, HourFigures]]] = {}
    for at, figures in hours.items():
        local = at.astimezone(tz)
        if local.hour in EVENING:
            evenings.setdefault(local.date(), []).append((at, figures))
    idle = []
    for day, seen in sorted(evenings.items()):
        served = any((f.peak_clients or 0) > 0 for _, f in seen)
        start = min(at for at, _ in seen)
        if (
            len(seen) == len(EVENING)
            and not served
            and _down_hours(spans, start, start + len(EVENING) * HOUR) == 0
        ):
            idle.append(day)
    return idle


def wifi_report(
    group: str,
    aps: Sequence[tuple[str, str]],
    hours: Mapping[str, Mapping[dt.datetime, HourFigures]],
    offline: Mapping[str, Sequence[tuple[dt.datetime, dt.datetime | None]]],
    windows: Sequence[dt.datetime],
    end: dt.datetime,
    tz: dt.tzinfo,
    *,
    busiest: int = 10,
) -> WifiReport:
    """`aps`: (device id, group path); `hours`: each one's hourly figures; `offline`: its
    accessPointOffline alert spans; `windows`: the windows' starts (the last ends at `end`)."""
    bounds = [*windows[1:], end]
    out = []
    for device_id, path in aps:
        mine = hours.get(device_id, {})
        per: dict[dt.datetime, list[HourFigures]] = {w: [] for w in windows}
        for at, figures in mine.items():
            w = _window_of(at, windows)
            if w is not None and at < end:
                per[w].append(figures)
        spans = offline.get(device_id, ())
        rows = []
        for w, w_end in zip(windows, bounds, strict=True):
            hs = per[w]
            means = [h.mean_clients for h in hs if h.mean_clients is not None]
            peaks = [h.peak_clients for h in hs if h.peak_clients is not None]
            mb = sum((h.mean_kbps or 0.0) * 3600 / 8 / 1000 for h in hs)
            span_h = (w_end - w).total_seconds() / 3600
            rows.append(
                WifiWindow(
                    start=w,
                    peak_clients=round(max(peaks)) if peaks else None,
                    mean_clients=round(statistics.fmean(means), 2) if means else None,
                    data_mb=round(mb, 3),
                    availability_pct=round(100 * (1 - _down_hours(spans, w, w_end) / span_h), 3)
                    if span_h
                    else 100.0,
                )
            )
        all_means = [h.mean_clients for h in mine.values() if h.mean_clients is not None]
        all_peaks = [h.peak_clients for h in mine.values() if h.peak_clients is not None]
        total_h = (end - windows[0]).total_seconds() / 3600 if windows else 0.0
        out.append(
            AccessPointFigures(
                device_id=device_id,
                group=path,
                peak_clients=round(max(all_peaks)) if all_peaks else None,
                mean_clients=round(statistics.fmean(all_means), 2) if all_means else None,
                data_mb=round(sum(r.data_mb for r in rows), 3),
                availability_pct=round(100 * (1 - _down_hours(spans, windows[0], end) / total_h), 3)
                if total_h
                else 100.0,
                idle_evenings=idle_evenings(mine, spans, tz),
                windows=rows,
            )
        )
    peaks = [a.peak_clients for a in out if a.peak_clients is not None]
    means = [a.mean_clients for a in out if a.mean_clients is not None]
    ranked = sorted(
        (a for a in out if a.mean_clients is not None), key=lambda a: (-(a.mean_clients or 0), a.device_id)
    )
    return WifiReport(
        group=group,
        start=windows[0] if windows else end,
        end=end,
        every_s=(bounds[0] - windows[0]).total_seconds() if windows else 0.0,
        access_points=len(out),
        peak_clients=round(max(peaks)) if peaks else None,
        mean_clients=round(statistics.fmean(means), 2) if means else None,
        data_mb=round(sum(a.data_mb for a in out), 3),
        availability_pct=round(statistics.fmean(a.availability_pct for a in out), 3) if out else None,
        busiest=[a.device_id for a in ranked[:busiest]],
        idle_in_the_evening=[a.device_id for a in out if a.idle_evenings],
        per_access_point=out,
    )

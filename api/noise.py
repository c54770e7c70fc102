"""`GET /api/v1/noise`: a noise sensor's day as QCVN 26:2010/BTNMT judges it — hourly, day and night
equivalent levels (Leq) against the configured limits (`[noise]`)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Query, Response

from api.access import Permission, allow
from api.deps import Heavy, Service
from api.errors import ApiError, ErrorBody
from controller.errors import UnknownDevice
from controller.noise_levels import NoiseDay, noise_day

router = APIRouter(prefix="/api/v1", tags=["environment"], dependencies=[allow(Permission.READ)])
#: readings of one sensor read for one day and the night after it (every 10 s: 10,800)
MAX_READINGS = 60_000


@router.get(
    "/noise",
    response_model=NoiseDay,
    responses={400: {"model": ErrorBody}, 404: {"model": ErrorBody}},
    summary="A noise sensor's day: hourly, day and night Leq against the limits",
    description="Equivalent continuous levels (energy averages of `noise_dba`) for each hour of the "
    "site day, for the day (06:00–21:00) and the night after it (21:00–06:00), judged by `[noise]` "
    "(QCVN 26:2010/BTNMT ordinary areas by default: 70 and 55 dB(A)). A period less than 75 % "
    f"reported has no Leq (`null`). At most {MAX_READINGS:,} readings are read.",
)
async def noise(
    service: Service,
    heavy: Heavy,
    device: Annotated[str, Query(max_length=64, description="a sensor that reports noise_dba")],
    date: Annotated[dt.date, Query(description="the site day, YYYY-MM-DD")],
) -> Response:
    try:
        row = service.device(device).row
    except UnknownDevice:
        raise ApiError(404, "not_found", f"no device {device!r}") from None
    profile = service.settings.profile(row.profile)
    if "noise_dba" not in profile.mapped_fields():
        raise ApiError(400, "no_noise", f"device {device!r} ({row.profile}) does not report noise_dba")
    tz = service.clocks[row.site_id].tz
    limits = service.settings.noise
    start = dt.datetime.combine(date, dt.time(0), tz).astimezone(dt.UTC)
    end = dt.datetime.combine(date + dt.timedelta(days=1), dt.time(limits.day_starts), tz).astimezone(dt.UTC)
    points = await service.telemetry(
        device,
        start - dt.timedelta(minutes=5),
        end,
        fields=["noise_dba"],
        every_s=None,
        aggregate="mean",
        limit=MAX_READINGS,
    )
    samples = [
        (p.ts, float(v))
        for p in points
        if isinstance(v := p.values.get("noise_dba"), int | float) and not isinstance(v, bool)
    ]
    return await heavy.json(lambda: noise_day(device, date, tz, samples, limits))

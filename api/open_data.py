"""`GET /open-data/v1/city`: what the city may publish as it is — per district, the current dust
levels of its air sensors and how much of its public Wi-Fi is up. No credentials, no device ids,
no personal data; read-only, rate-limited per client address, answered from a copy at most 30 s old.

Each district's air quality index (VN_AQI, or the US EPA AQI: `[air] index`) for the last complete
hour is published with its level, colour and advice, beside the sensors' own PM2.5 and PM10.
"""

from __future__ import annotations

import datetime as dt
import math
import statistics
import time
from collections import defaultdict
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from api.air import level_out
from api.deps import Service
from api.errors import ApiError, ErrorBody
from api.throttle import RateLimiter
from controller.air_figures import district_of
from controller.errors import ServiceError
from controller.service import ControllerService

router = APIRouter(prefix="/open-data/v1", tags=["open data"])
#: per client address: one request a second, bursts of ten
RATE_PER_S = 1.0
BURST = 10
#: the answer is rebuilt at most this often, whoever asks
FRESH_S = 30.0
#: readings older than this are not "current"
CURRENT = dt.timedelta(hours=1)


class _Published:
    """One app's rate limiter and its copy of the answer (kept on the app, not in the module)."""

    def __init__(self) -> None:
        self.limiter = RateLimiter(RATE_PER_S, BURST)
        self.answer: OpenCity | None = None
        self.at = 0.0


def _published(request: Request) -> _Published:
    state = request.app.state
    if not hasattr(state, "open_data"):
        state.open_data = _Published()
    published: _Published = state.open_data
    return published


class PublicLevel(BaseModel):
    number: int = Field(description="1 (good) … 6 (hazardous)")
    key: str
    colour: str = Field(description="#RRGGBB")
    name: dict[str, str]
    advice: dict[str, str]
    advice_sensitive: dict[str, str]


class DistrictAir(BaseModel):
    sensors: int = Field(description="air sensors with a reading in the last hour")
    pm2_5_ugm3: float | None = Field(description="their mean PM2.5 now, µg/m³")
    pm10_ugm3: float | None = Field(description="their mean PM10 now, µg/m³")
    scheme: str | None = Field(default=None, description="vn_aqi or us_epa; null: no index computed")
    index: int | None = Field(default=None, description="the district's hourly index (its worst sensor's)")
    level: PublicLevel | None = None
    hour: dt.datetime | None = Field(default=None, description="start of the hour the index is for")


class DistrictWifi(BaseModel):
    access_points: int
    up: int
    availability_pct: float | None


class District(BaseModel):
    district: str
    air: DistrictAir
    wifi: DistrictWifi


class OpenCity(BaseModel):
    published_at: dt.datetime
    districts: list[District]


def _mean(values: list[float]) -> float | None:
    return round(statistics.fmean(values), 1) if values else None


def open_city(service: ControllerService, now: dt.datetime) -> OpenCity:
    """The figures, from the live state (no store queries)."""
    air: dict[str, dict[str, list[float]]] = defaultdict(lambda: {"pm2_5_ugm3": [], "pm10_ugm3": [], "n": []})
    wifi: dict[str, list[bool]] = defaultdict(list)
    depth = service.settings.air.district_depth
    for device in service.find():
        row, st = device.row, device.status
        district = district_of(row.group_path, depth)
        if row.kind == "sensor" and st.last_seen is not None and now - st.last_seen <= CURRENT:
            values = st.last_values()
            seen = False
            for field in ("pm2_5_ugm3", "pm10_ugm3"):
                v = values.get(field)
                if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
                    air[district][field].append(float(v))
                    seen = True
            if seen:
                air[district]["n"].append(1.0)
        elif row.kind == "access_point":
            wifi[district].append(st.state not in ("offline", "unknown"))
    indices = _indices(service)
    districts = []
    for name in sorted(set(air) | set(wifi) | set(indices)):
        a, w = air.get(name), wifi.get(name, [])
        districts.append(
            District(
                district=name,
                air=DistrictAir(
                    sensors=len(a["n"]) if a else 0,
                    pm2_5_ugm3=_mean(a["pm2_5_ugm3"]) if a else None,
                    pm10_ugm3=_mean(a["pm10_ugm3"]) if a else None,
                    **indices.get(name, {}),
                ),
                wifi=DistrictWifi(
                    access_points=len(w),
                    up=sum(w),
                    availability_pct=round(100 * sum(w) / len(w), 1) if w else None,
                ),
            )
        )
    return OpenCity(published_at=now.replace(microsecond=0), districts=districts)


def _indices(service: ControllerService) -> dict[str, dict[str, Any]]:
    """District → its index fields, for the districts with an index (none while it is off)."""
    try:
        watch = service.air
    except ServiceError:
        return {}
    scheme = watch.settings.index
    out: dict[str, dict[str, Any]] = {}
    for name, figure in watch.districts.items():
        if figure.index is None or figure.level is None:
            continue
        full = level_out(scheme, figure.level)
        level = PublicLevel(**full.model_dump(include=set(PublicLevel.model_fields)))
        out[name] = {"scheme": scheme, "index": figure.index, "level": level, "hour": figure.hour}
    return out


@router.get(
    "/city",
    response_model=OpenCity,
    responses={429: {"model": ErrorBody, "description": "too many requests from this address"}},
    summary="Open data: air and public Wi-Fi per district, now",
    description="No credentials. Per district (the first levels of the group paths, `[air] district_depth`: "
    "two by default, `hanoi/hoan-kiem`): "
    "the air quality index of the last complete hour with its level, colour and advice, the mean "
    "PM2.5 and PM10 of the air sensors that reported in the last hour, and how many public "
    f"Wi-Fi access points are up. No device ids, no personal data. At most {RATE_PER_S:g} request a "
    f"second per client address (bursts of {BURST}; else 429); the answer is at most {FRESH_S:g} s old.",
)
async def city(request: Request, service: Service) -> OpenCity:
    client = request.client.host if request.client else "unknown"
    published = _published(request)
    wait = published.limiter.take(client)
    if wait > 0:
        raise ApiError(
            429,
            "rate_limited",
            f"open data: at most {RATE_PER_S:g} request a second (bursts of {BURST}); retry in {wait:.1f} s",
            headers={"Retry-After": str(math.ceil(wait))},
        )
    if published.answer is None or time.monotonic() - published.at > FRESH_S:
        published.answer = open_city(service, dt.datetime.now(dt.UTC))
        published.at = time.monotonic()
    return published.answer

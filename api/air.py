"""The city's air as the IOC shows it: `GET /api/v1/air` (each district's and sensor's hourly index
now, its level, colour, health effects and advice), `GET /api/v1/air/history` (the hourly index of
a district or sensor over up to a week) and `GET /api/v1/air/daily` (a site day's index).

VN_AQI (Decision 1459/QĐ-TCMT) unless `[air] index = "us_epa"`; docs/air.md says how each figure is
computed and when it is "not enough data" (`index: null`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from api.access import Permission, allow
from api.deps import Service
from api.errors import ApiError, ErrorBody
from controller.air_figures import INDEX_FIELD, AirFigure, by_pollutant, district_of
from controller.air_index import DAY_MIN_HOURS, IndexResult, Level, Scheme, daily_index, level_of, max_8h_mean
from controller.groups import in_group
from controller.service import ControllerService
from controller.words import LANGUAGES, say

router = APIRouter(prefix="/api/v1", tags=["environment"], dependencies=[allow(Permission.READ)])
MAX_HOURS = 168
#: sensors read from the store for one history or daily answer
MAX_SENSORS = 2_000
#: store queries under way at once for one answer
CONCURRENCY = 16

Words = dict[str, str]


class LevelOut(BaseModel):
    number: int = Field(description="1 (good) … 6 (hazardous)")
    key: str = Field(description="good, moderate, poor, bad, very_bad, hazardous (VN_AQI)")
    low: int
    high: int
    colour: str = Field(description="#RRGGBB, as the regulation gives it")
    name: Words
    health: Words = Field(description="effects on health (VN_AQI: table 4)")
    advice: Words = Field(description="advice for everyone (VN_AQI: table 5)")
    advice_sensitive: Words = Field(description="advice for sensitive groups (VN_AQI: table 5)")


class IndexOut(BaseModel):
    index: int | None = Field(description="null: not enough data (docs/air.md)")
    level: LevelOut | None
    dominant: str | None = Field(description="the pollutant with the highest sub-index: pm25, pm10, o3 …")
    sub_indices: dict[str, int]
    inputs_ugm3: dict[str, float] = Field(description="what each sub-index was computed from, µg/m³")
    reliability: float = Field(description="share of the NowCast's 12 hours with data, 0–1")


class SensorAir(IndexOut):
    device_id: str
    district: str


class DistrictAir(IndexOut):
    district: str
    site: str
    sensor: str | None = Field(description="the sensor that set the district's index (its worst)")
    sensors: int
    sensors_with_index: int
    alert: bool = Field(description="the district's air quality alert is open")


class CityAir(BaseModel):
    scheme: Scheme
    hour: dt.datetime | None = Field(
        description="start of the hour the indices are for; null: not yet computed"
    )
    hour_s: int
    districts: list[DistrictAir]
    sensors: list[SensorAir]


class AirHour(BaseModel):
    hour: dt.datetime
    index: int
    level: int
    colour: str


class AirHistory(BaseModel):
    scheme: Scheme
    sensors: int = Field(description="sensors read; a district's hour is its worst sensor's")
    hours: list[AirHour]


class AirDay(IndexOut):
    date: dt.date
    timezone: str
    hours_with_data: dict[str, int] = Field(description=f"per pollutant, of 24 (needs {DAY_MIN_HOURS})")
    device_id: str | None = None
    sensor: str | None = Field(default=None, description="for a group: the sensor that set its index")
    per_sensor: list[SensorAir] = []


def words(key: str) -> Words:
    return {lang: say(lang, key) for lang in LANGUAGES}


def level_out(scheme: Scheme, level: Level) -> LevelOut:
    base = f"air.{scheme}"
    return LevelOut(
        number=level.number,
        key=level.key,
        low=level.low,
        high=level.high,
        colour=level.colour,
        name=words(f"{base}.level.{level.number}"),
        health=words(f"{base}.health.{level.number}"),
        advice=words(f"{base}.advice.{level.number}.general"),
        advice_sensitive=words(f"{base}.advice.{level.number}.sensitive"),
    )


def index_fields(scheme: Scheme, result: IndexResult, reliability: float) -> dict[str, Any]:
    return {
        "index": result.index,
        "level": None if result.index is None else level_out(scheme, level_of(scheme, result.index)),
        "dominant": result.dominant,
        "sub_indices": result.sub_indices,
        "inputs_ugm3": result.inputs,
        "reliability": reliability,
    }


def _sensor(scheme: Scheme, device_id: str, district: str, f: AirFigure) -> SensorAir:
    return SensorAir(device_id=device_id, district=district, **index_fields(scheme, f.result, f.reliability))


@router.get(
    "/air",
    response_model=CityAir,
    responses={503: {"model": ErrorBody}},
    summary="The air now: each district's and sensor's hourly index, level, colour and advice",
    description="The hourly air quality index (VN_AQI, Decision 1459/QĐ-TCMT, or the US EPA AQI: "
    "`[air] index`) of every air sensor and district for the last complete hour: PM2.5 and PM10 by "
    "their NowCast over 12 hours. A district's index is its worst sensor's. `index: null` — not "
    "enough data (fewer than 2 of the 3 latest hours). Levels carry their colour and the "
    "regulation's health effects and advice in Vietnamese and English.",
)
async def air(
    service: Service,
    group: Annotated[str | None, Query(max_length=300, description="only this group and below")] = None,
) -> CityAir:
    watch = service.air
    scheme = watch.settings.index
    depth = watch.settings.district_depth
    open_alerts = {d for d, kind in await service.open_alerts() if kind == "airQuality"}
    sensors = [
        _sensor(scheme, d, district_of(service.device(d).row.group_path, depth), f)
        for d, f in sorted(watch.sensors.items())
        if group is None or in_group(service.device(d).row.group_path, group)
    ]
    districts = [
        DistrictAir(
            district=name,
            site=service.device(f.members[0]).row.site_id,
            sensor=f.sensor,
            sensors=f.sensors,
            sensors_with_index=f.sensors_with_index,
            alert=name in open_alerts,
            **index_fields(scheme, f.result, f.reliability),
        )
        for name, f in watch.districts.items()
        if group is None or in_group(name, group) or in_group(group, name)
    ]
    hour = next(iter(watch.sensors.values())).hour if watch.sensors else None
    return CityAir(
        scheme=scheme, hour=hour, hour_s=watch.settings.hour_s, districts=districts, sensors=sensors
    )


def _subject(service: ControllerService, group: str | None, device: str | None) -> list[str]:
    """The air sensors of a group, or one sensor; 404/400/422 otherwise."""
    watch = service.air
    if (group is None) == (device is None):
        raise ApiError(400, "invalid_request", "give either group or device")
    if device is not None:
        service.device(device)  # 404 if unknown
        if device not in watch.fields:
            raise ApiError(400, "not_air_sensor", f"device {device!r} reports neither PM2.5 nor PM10")
        return [device]
    assert group is not None
    ids = [d for d in sorted(watch.fields) if in_group(service.device(d).row.group_path, group)]
    if not ids:
        raise ApiError(404, "not_found", f"no air sensors in group {group!r}")
    if len(ids) > MAX_SENSORS:
        raise ApiError(
            422, "too_many_sensors", f"{len(ids):,} air sensors in {group!r}; at most {MAX_SENSORS:,}"
        )
    return ids


@router.get(
    "/air/history",
    response_model=AirHistory,
    responses={400: {"model": ErrorBody}, 404: {"model": ErrorBody}, 422: {"model": ErrorBody}},
    summary="The hourly index of a district or sensor, over up to a week",
    description="From the index each sensor keeps in its telemetry (`air_quality_index`), the newest "
    f"`hours` (at most {MAX_HOURS}); a group's hour is the highest of its sensors'. Hours without "
    f"an index are left out. At most {MAX_SENSORS:,} sensors an answer (else 422).",
)
async def history(
    service: Service,
    group: Annotated[str | None, Query(max_length=300, description="a district or any group")] = None,
    device: Annotated[str | None, Query(max_length=64)] = None,
    hours: Annotated[int, Query(ge=1, le=MAX_HOURS)] = 48,
) -> AirHistory:
    ids = _subject(service, group, device)
    watch = service.air
    hour_s = watch.settings.hour_s
    end = dt.datetime.now(dt.UTC)
    start = end - dt.timedelta(seconds=hour_s * (hours + 1))
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(d: str) -> list[tuple[dt.datetime, int]]:
        async with gate:
            points = await service.telemetry(
                d, start, end, fields=[INDEX_FIELD], every_s=None, aggregate="mean", limit=hours + 2
            )
        return [(p.ts, int(v)) for p in points if isinstance(v := p.values.get(INDEX_FIELD), int | float)]

    worst: dict[dt.datetime, int] = {}
    for series in await asyncio.gather(*(one(d) for d in ids)):
        for at, index in series:
            worst[at] = max(index, worst.get(at, 0))
    scheme = watch.settings.index
    out = []
    for at in sorted(worst)[-hours:]:
        level = level_of(scheme, worst[at])
        out.append(AirHour(hour=at, index=worst[at], level=level.number, colour=level.colour))
    return AirHistory(scheme=scheme, sensors=len(ids), hours=out)


@router.get(
    "/air/daily",
    response_model=AirDay,
    responses={400: {"model": ErrorBody}, 404: {"model": ErrorBody}, 422: {"model": ErrorBody}},
    summary="A site day's index of a district or sensor",
    description="The daily index (VN_AQI 2.2.2: PM from 24-hour means; O3 the larger of its highest "
    "1-hour and 8-hour means; NO2, SO2, CO their highest 1-hour mean) of the site day `date`, from "
    f"the hourly means of the store. A pollutant needs {DAY_MIN_HOURS} of the 24 hours. A group's "
    f"index is its worst sensor's. At most {MAX_SENSORS:,} sensors an answer (else 422).",
)
async def daily(
    service: Service,
    date: Annotated[dt.date, Query(description="the site day, YYYY-MM-DD")],
    group: Annotated[str | None, Query(max_length=300)] = None,
    device: Annotated[str | None, Query(max_length=64)] = None,
) -> AirDay:
    ids = _subject(service, group, device)
    watch = service.air
    scheme = watch.settings.index
    depth = watch.settings.district_depth
    first = service.device(ids[0]).row
    tz = service.clocks[first.site_id].tz
    # the day's 24 hours, and 7 before them for O3's 8-hour windows that end in the day
    end = dt.datetime.combine(date + dt.timedelta(days=1), dt.time(0), tz).astimezone(dt.UTC)
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(d: str) -> tuple[str, IndexResult, dict[str, int]]:
        async with gate:
            means = by_pollutant(await service.air_means(d, watch.fields[d], end, 31))
        day = {p: v[:24][::-1] for p, v in means.items()}
        o3 = means.get("o3")
        result = daily_index(scheme, day, max_8h_mean(o3[::-1]) if o3 else None)
        return d, result, {p: sum(x is not None for x in v) for p, v in day.items()}

    done = await asyncio.gather(*(one(d) for d in ids))
    per_sensor = [
        SensorAir(
            device_id=d,
            district=district_of(service.device(d).row.group_path, depth),
            **index_fields(scheme, r, round(max(hours.values(), default=0) / 24, 2)),
        )
        for d, r, hours in done
    ]
    d, result, hours = max(done, key=lambda item: (item[1].index or -1, -ids.index(item[0])))
    return AirDay(
        date=date,
        timezone=str(tz),
        hours_with_data=hours,
        device_id=device,
        sensor=d if group is not None and result.index is not None else None,
        per_sensor=per_sensor if group is not None else [],
        **index_fields(scheme, result, round(max(hours.values(), default=0) / 24, 2)),
    )

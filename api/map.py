"""What the dashboard's map needs beyond `/api/v1/geojson`: the sites and base map (`/api/v1/map`),
and the small changes since the page last asked (`/api/v1/geojson/changes`), so that a city of
50,000 lamps is loaded once and then updated by deltas, not re-sent every few seconds."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from api.access import Permission, allow
from api.deps import Service
from controller.config import ControllerSettings
from controller.service import ControllerService

router = APIRouter(prefix="/api/v1", tags=["map"], dependencies=[allow(Permission.READ)])
Light = Literal["on", "dimmed", "off"]
DIMMED_BELOW_PCT = 95.0  # a lamp lit below this level is drawn as dimmed


class SiteOut(BaseModel):
    id: str
    name: str
    timezone: str = Field(description="IANA name; the dashboard shows every time in it")
    latitude: float
    longitude: float


class BaseMapOut(BaseModel):
    style_url: str | None = Field(description="a MapLibre style; null: no tiles")
    raster_tiles: str | None = Field(description="an XYZ raster tile template; null: none")
    attribution: str


class MapOut(BaseModel):
    sites: list[SiteOut]
    base_map: BaseMapOut
    bounds: list[float] | None = Field(description="[west, south, east, north] of every device")
    streets: dict[str, Any] = Field(
        description="GeoJSON FeatureCollection of LineStrings: the streets the configured device ranges "
        "run along, with their name and group (drawn when there is no base map)"
    )


class ChangesOut(BaseModel):
    seq: int = Field(description="ask again with since=<seq>")
    devices: dict[str, list[Any]] = Field(
        description="device id → [state, light (on/dimmed/off, or null), open alert count] for "
        "each device that changed since `since` (every device when since=0)"
    )


def light_of(values: Mapping[str, Any]) -> Light | None:
    """On, dimmed or off, from a lamp's last reading (None if it has not said)."""
    on = values.get("lamp_on")
    if on is None:
        return None
    if not on:
        return "off"
    level = values.get("dim_level_pct")
    return "dimmed" if isinstance(level, int | float) and level < DIMMED_BELOW_PCT else "on"


@router.get("/map", response_model=MapOut, summary="The map's frame: sites, base map, streets")
async def map_frame(service: Service) -> MapOut:
    return _frame(service.settings, service)


def _frame(settings: ControllerSettings, service: ControllerService) -> MapOut:
    rows = [d.row for d in service.find()]
    bounds = (
        [
            min(r.longitude for r in rows),
            min(r.latitude for r in rows),
            max(r.longitude for r in rows),
            max(r.latitude for r in rows),
        ]
        if rows
        else None
    )
    streets = [
        {
            "type": "Feature",
            "geometry": {
                "type": "LineString",
                "coordinates": [[r.start[1], r.start[0]], [r.end[1], r.end[0]]],
            },
            "properties": {"name": r.street or r.group.rsplit("/", 1)[-1], "group": r.group},
        }
        for r in settings.device_ranges
    ]
    m = settings.map
    return MapOut(
        sites=[SiteOut(**s.model_dump(include=set(SiteOut.model_fields))) for s in settings.sites],
        base_map=BaseMapOut(
            style_url=str(m.style_url) if m.style_url else None,
            raster_tiles=m.raster_tiles,
            attribution=m.attribution,
        ),
        bounds=bounds,
        streets={"type": "FeatureCollection", "features": streets},
    )


class MapChanges:
    """Per device, what the map draws and the sequence number of its last change. The devices are
    looked at again at most once per `every_s`, whoever asks."""

    def __init__(self, every_s: float = 1.0) -> None:
        self.every_s = every_s
        self.seq = 0
        self._marks: dict[str, tuple[tuple[str, Light | None, int], int]] = {}
        self._looked_at = -1e9

    async def since(self, service: ControllerService, seq: int) -> ChangesOut:
        if time.monotonic() - self._looked_at >= self.every_s:
            await self._look(service)
        if seq <= 0 or seq > self.seq:  # a new page, or a restarted server: everything
            return ChangesOut(seq=self.seq, devices={d: list(m[0]) for d, m in self._marks.items()})
        return ChangesOut(seq=self.seq, devices={d: list(m[0]) for d, m in self._marks.items() if m[1] > seq})

    async def _look(self, service: ControllerService) -> None:
        self._looked_at = time.monotonic()
        alerts: dict[str, int] = {}
        for device_id, _ in await service.open_alerts():
            alerts[device_id] = alerts.get(device_id, 0) + 1
        for device in service.find():
            st = device.status
            light = light_of(st.last_values()) if device.row.kind == "lamp" else None
            mark = (st.state, light, alerts.get(st.device_id, 0))
            old = self._marks.get(st.device_id)
            if old is None or old[0] != mark:
                self.seq += 1
                self._marks[st.device_id] = (mark, self.seq)


@router.get(
    "/geojson/changes",
    response_model=ChangesOut,
    summary="What changed on the map since a sequence number",
    description="Each device's state, light and open alert count, for the devices that changed since "
    "`since` (all with since=0). Looked at once a second at most, whoever asks.",
)
async def map_changes(
    request: Request,
    service: Service,
    since: Annotated[int, Query(ge=0, le=2**53, description="the last seq seen")] = 0,
) -> ChangesOut:
    changes: MapChanges = request.app.state.map_changes
    return await changes.since(service, since)

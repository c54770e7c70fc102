"""`GET /api/v1/map/view`: what a map shows of a viewport at a zoom, small whatever the city's size.

The GeoJSON of a whole city of 50,000 lamps is ~20 MB; an IOC's map of a district needs a few
hundred kilobytes at most. Zoomed in (or where the viewport holds few devices) each device is a
point with what the map draws (state, light, open alerts); zoomed out, devices are counted in
clusters on a grid of cells about `CELL_PX` screen pixels wide, each with its counts by state.
Devices are found through a grid index built once per device set, so a request costs what is in its
viewport, not the city.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Mapping
from typing import Annotated

from fastapi import APIRouter, Query, Response

from api.access import Permission, allow
from api.deps import Service
from api.geo import parse_bbox
from api.map import light_of
from controller.device import Device

router = APIRouter(prefix="/api/v1", tags=["map"], dependencies=[allow(Permission.READ)])

#: at this zoom and closer every device is a point (a street: ~500 m across on a screen)
POINTS_FROM_ZOOM = 16
#: fewer devices than this in the viewport are points at any zoom (~150 bytes each)
MAX_POINTS = 1000
#: cluster cells are about this many screen pixels wide
CELL_PX = 64
#: the index's cells, in degrees (~1 km): a district's viewport touches a few dozen
INDEX_DEG = 0.01

_DUMPS = json.JSONEncoder(separators=(",", ":")).encode


class GridIndex:
    """Device ids by INDEX_DEG cell of their position."""

    def __init__(self, rows: Mapping[str, Device]) -> None:
        self.rows = rows
        self.cells: dict[tuple[int, int], list[tuple[float, float, str]]] = defaultdict(list)
        for device_id, row in rows.items():
            lon, lat = row.longitude, row.latitude
            self.cells[_cell(lon, lat)].append((lon, lat, device_id))

    def inside(self, west: float, south: float, east: float, north: float) -> list[tuple[float, float, str]]:
        (x0, y0), (x1, y1) = _cell(west, south), _cell(east, north)
        if (x1 - x0 + 1) * (y1 - y0 + 1) > len(self.cells):  # a wide viewport: walk the cells there are
            keys = [k for k in self.cells if x0 <= k[0] <= x1 and y0 <= k[1] <= y1]
        else:
            keys = [(x, y) for x in range(x0, x1 + 1) for y in range(y0, y1 + 1)]
        return [
            point
            for key in keys
            for point in self.cells.get(key, ())
            if west <= point[0] <= east and south <= point[1] <= north
        ]


def _cell(lon: float, lat: float) -> tuple[int, int]:
    return math.floor(lon / INDEX_DEG), math.floor(lat / INDEX_DEG)


_INDEX: dict[int, GridIndex] = {}  # by the identity of the device set (a restart makes a new one)


def grid_index(rows: Mapping[str, Device]) -> GridIndex:
    index = _INDEX.get(id(rows))
    if index is None or index.rows is not rows:
        _INDEX.clear()
        index = _INDEX[id(rows)] = GridIndex(rows)
    return index


@router.get(
    "/map/view",
    summary="The map of a viewport: devices, or clusters when zoomed out",
    description="A GeoJSON FeatureCollection for the viewport `bbox` at map zoom `zoom` (0–22, as "
    f"MapLibre and Leaflet count it). From zoom {POINTS_FROM_ZOOM}, or when the viewport holds at "
    f"most {MAX_POINTS} devices, one Point per device with `kind`, `state`, `light` (lamps: on, "
    "dimmed, off) and `alerts` (open alert count). Else one Point per grid cell about "
    f"{CELL_PX} px wide, at its devices' mean position, with `cluster: true`, `count`, `states` "
    "(count per state), `lit` (lamps on or dimmed) and `alerts`. `mode` says which.",
    response_class=Response,
    responses={200: {"content": {"application/geo+json": {}}}},
)
async def map_view(
    service: Service,
    bbox: Annotated[str, Query(max_length=120, description="west,south,east,north in degrees")],
    zoom: Annotated[int, Query(ge=0, le=22, description="the map's zoom level")],
) -> Response:
    west, south, east, north = parse_bbox(bbox)
    found = grid_index(service.devices_by_id()).inside(west, south, east, north)
    alerts = Counter(device_id for device_id, _ in await service.open_alerts())
    rows, statuses = service.devices_by_id(), service.statuses()
    parts: list[str] = []
    if zoom >= POINTS_FROM_ZOOM or len(found) <= MAX_POINTS:
        mode = "points"
        for lon, lat, device_id in found:
            row, st = rows[device_id], statuses[device_id]
            light = light_of(st.last_values()) if row.kind == "lamp" else None
            parts.append(
                f'{{"type":"Feature","id":{_DUMPS(device_id)},"geometry":{{"type":"Point",'
                f'"coordinates":[{lon},{lat}]}},"properties":{{"kind":"{row.kind}","state":"{st.state}",'
                f'"light":{_DUMPS(light)},"alerts":{alerts.get(device_id, 0)}}}}}'
            )
    else:
        mode = "clusters"
        size = 360 / 2**zoom * CELL_PX / 256
        cells: dict[tuple[int, int], list[str]] = defaultdict(list)
        for lon, lat, device_id in found:
            cells[(math.floor(lon / size), math.floor(lat / size))].append(device_id)
        for members in cells.values():
            states: Counter[str] = Counter()
            lit = faults = 0
            lon_sum = lat_sum = 0.0
            for device_id in members:
                row, st = rows[device_id], statuses[device_id]
                lon_sum += row.longitude
                lat_sum += row.latitude
                states[st.state] += 1
                faults += alerts.get(device_id, 0)
                if row.kind == "lamp" and light_of(st.last_values()) in ("on", "dimmed"):
                    lit += 1
            n = len(members)
            parts.append(
                f'{{"type":"Feature","geometry":{{"type":"Point","coordinates":'
                f"[{lon_sum / n:.6f},{lat_sum / n:.6f}]}},"
                f'"properties":{{"cluster":true,"count":{n},"states":{_DUMPS(states)},'
                f'"lit":{lit},"alerts":{faults}}}}}'
            )
    body = f'{{"type":"FeatureCollection","mode":"{mode}","features":[' + ",".join(parts) + "]}"
    return Response(body, media_type="application/geo+json")

"""`GET /api/v1/geojson`: every device as a GeoJSON Feature, for the IOC's map."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import AsyncIterator, Mapping
from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.responses import StreamingResponse

from api.access import Permission, allow
from api.deps import Service
from api.errors import ApiError
from api.map import light_of
from api.models import DeviceStateName
from controller.device import Device
from controller.service import DeviceInfo
from controller.vocabulary import DeviceKind

#: features encoded and sent at a time (~20 ms of encoding here)
FEATURES_PER_CHUNK = 1000

router = APIRouter(prefix="/api/v1", tags=["map"], dependencies=[allow(Permission.READ)])


@router.get(
    "/geojson",
    summary="Devices as GeoJSON (RFC 7946)",
    description="A FeatureCollection: one Point per device (`[longitude, latitude]`) with its kind, "
    "profile, site, group, live state, light (lamps: on, dimmed or off), last reading's values and "
    "open alert kinds. Filters as on `/api/v1/devices`, and `bbox` for a map's viewport.",
    response_class=Response,
    responses={200: {"content": {"application/geo+json": {}}}},
)
async def geojson(
    service: Service,
    site: Annotated[str | None, Query(max_length=64)] = None,
    group: Annotated[str | None, Query(max_length=300, description="includes sub-groups")] = None,
    state: Annotated[DeviceStateName | None, Query()] = None,
    kind: Annotated[DeviceKind | None, Query()] = None,
    bbox: Annotated[
        str | None,
        Query(
            max_length=120,
            description="west,south,east,north in degrees: only the devices inside (a map's viewport)",
        ),
    ] = None,
    with_values: Annotated[
        bool, Query(alias="values", description="false: without the last reading's values (a map's load)")
    ] = True,
) -> Response:
    box = parse_bbox(bbox) if bbox else None
    alerts: dict[str, list[str]] = defaultdict(list)
    for device_id, alert_kind in await service.open_alerts():
        alerts[device_id].append(alert_kind)
    devices = list(service.find(site=site, group=group, state=state, kind=kind))
    if box is not None:
        west, south, east, north = box
        devices = [d for d in devices if west <= d.row.longitude <= east and south <= d.row.latitude <= north]

    async def body() -> AsyncIterator[bytes]:
        # Sent as it is encoded, a thousand features at a time: the whole city is ~24 MB and ~1 s
        # of encoding, which in one piece held the event loop (the pollers, every other request)
        # and twice the memory (the text, then its bytes).
        yield b'{"type":"FeatureCollection","features":['
        for start in range(0, len(devices), FEATURES_PER_CHUNK):
            chunk = ",".join(
                _feature(d, alerts, with_values) for d in devices[start : start + FEATURES_PER_CHUNK]
            )
            yield (chunk if start == 0 else "," + chunk).encode()
            await asyncio.sleep(0)  # sending does not wait while the socket takes it all: turn here
        yield b"]}"

    return StreamingResponse(body(), media_type="application/geo+json")


def _feature(device: DeviceInfo, alerts: Mapping[str, list[str]], with_values: bool) -> str:
    dumps = _COMPACT.encode
    st = device.status
    values = st.last_values()
    # What never changes is encoded once per device; each request adds only the live part.
    return (
        f'{_static_part(st.device_id, device.row)}"state":"{st.state}",'
        f'"last_seen":{dumps(st.last_seen.isoformat()) if st.last_seen else "null"},'
        f'"light":{dumps(light_of(values) if device.row.kind == "lamp" else None)},'
        f'"values":{dumps(values) if with_values else "{}"},'
        f'"alerts":{dumps(sorted(alerts.get(st.device_id, ())))}}}}}'
    )


def parse_bbox(text: str) -> tuple[float, float, float, float]:
    try:
        west, south, east, north = (float(v) for v in text.split(","))
    except ValueError:
        raise ApiError(422, "invalid", f"bbox {text!r} is not west,south,east,north in degrees") from None
    if not (-180 <= west <= east <= 180 and -90 <= south <= north <= 90):
        raise ApiError(
            422, "invalid", f"bbox {text!r}: need -180 ≤ west ≤ east ≤ 180 and -90 ≤ south ≤ north ≤ 90"
        )
    return west, south, east, north


_COMPACT = json.JSONEncoder(separators=(",", ":"))
_STATIC: dict[str, tuple[Device, str]] = {}


def _static_part(device_id: str, row: Device) -> str:
    """The feature up to its live properties, encoded once per device row (a new row after a
    restart or config change is encoded again)."""
    cached = _STATIC.get(device_id)
    if cached is not None and cached[0] is row:
        return cached[1]
    head = _COMPACT.encode(
        {
            "type": "Feature",
            "id": row.id,
            "geometry": {"type": "Point", "coordinates": [row.longitude, row.latitude]},
            "properties": {
                "kind": row.kind,
                "profile": row.profile,
                "site": row.site_id,
                "group": row.group_path,
            },
        }
    )
    part = head[:-2] + ","  # reopen "properties" to append the live fields
    _STATIC[device_id] = (row, part)
    return part

"""NGSI-LD geo-queries (ETSI GS CIM 009, 4.10) on the `location` of our Point entities, as pure functions.

`georel`: `near;maxDistance==m` / `near;minDistance==m` (metres, to a Point), `within`,
`contains`, `intersects`, `equals`, `disjoint`, `overlaps`; `geometry`: Point, LineString,
Polygon or MultiPolygon; `coordinates`: GeoJSON positions ([longitude, latitude]). Distances are
great-circle (haversine) metres.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass
from typing import Any

from api.ngsi_query import QueryError

MAX_COORDINATES = 1000  # points in a query geometry

_EARTH_M = 6_371_008.8
_RELATIONS = ("near", "within", "contains", "intersects", "equals", "disjoint", "overlaps")


@dataclass(frozen=True)
class GeoQuery:
    relation: str
    geometry: str
    coordinates: Any
    max_distance_m: float | None = None
    min_distance_m: float | None = None

    def matches(self, lon: float, lat: float) -> bool:
        """Whether a Point entity at (lon, lat) stands in this relation to the query geometry."""
        if self.relation == "near":
            d = _distance_m((lon, lat), tuple(self.coordinates))
            return (self.max_distance_m is None or d <= self.max_distance_m) and (
                self.min_distance_m is None or d >= self.min_distance_m
            )
        touches = self._intersects(lon, lat)
        if self.relation in ("intersects",):
            return touches
        if self.relation == "disjoint":
            return not touches
        if self.relation == "within":
            return self.geometry in ("Polygon", "MultiPolygon") and touches
        if self.relation in ("equals", "contains"):  # a point contains, or equals, only itself
            return self.geometry == "Point" and touches
        return False  # overlaps: a point overlaps nothing (shapes of the same dimension only)

    def _intersects(self, lon: float, lat: float) -> bool:
        c = self.coordinates
        if self.geometry == "Point":
            return _distance_m((lon, lat), tuple(c)) < 0.01
        if self.geometry == "LineString":
            return any(_on_segment((lon, lat), a, b) for a, b in itertools.pairwise(c))
        polygons = [c] if self.geometry == "Polygon" else c
        return any(_in_polygon((lon, lat), polygon) for polygon in polygons)


def parse_georel(georel: str, geometry: str | None, coordinates: str | None) -> GeoQuery:
    if geometry is None or coordinates is None:
        raise QueryError("georel needs geometry and coordinates")
    relation, *modifiers = georel.split(";")
    if relation not in _RELATIONS:
        raise QueryError(f"georel {relation!r}: one of {', '.join(_RELATIONS)}")
    if geometry not in ("Point", "LineString", "Polygon", "MultiPolygon"):
        raise QueryError(f"geometry {geometry!r}: Point, LineString, Polygon or MultiPolygon")
    if len(coordinates) > 100_000:
        raise QueryError("coordinates are too long", "TooComplexQuery")
    try:
        coords = json.loads(coordinates)
    except ValueError:
        raise QueryError(f"coordinates {coordinates[:60]!r} are not a JSON array") from None
    _check_coordinates(geometry, coords)
    distances: dict[str, float] = {}
    for modifier in modifiers:
        key, sep, value = modifier.partition("==")
        try:
            distances[key] = float(value)
        except ValueError:
            distances[key] = math.nan
        if not sep or key not in ("maxDistance", "minDistance") or not 0 <= distances[key] < math.inf:
            raise QueryError(f"georel modifier {modifier!r}: maxDistance==metres or minDistance==metres")
    if relation == "near":
        if geometry != "Point":
            raise QueryError("georel near needs geometry=Point")
        if not distances:
            raise QueryError("georel near needs maxDistance== or minDistance==")
    elif distances:
        raise QueryError(f"georel {relation} takes no distance")
    return GeoQuery(relation, geometry, coords, distances.get("maxDistance"), distances.get("minDistance"))


def _check_coordinates(geometry: str, coords: Any) -> None:
    def position(p: Any) -> bool:
        return (
            isinstance(p, list)
            and len(p) in (2, 3)
            and all(isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) for x in p)
            and -180 <= p[0] <= 180
            and -90 <= p[1] <= 90
        )

    def ring(r: Any) -> bool:
        return isinstance(r, list) and len(r) >= 4 and all(position(p) for p in r) and r[0] == r[-1]

    ok = {
        "Point": lambda c: position(c),
        "LineString": lambda c: isinstance(c, list) and len(c) >= 2 and all(position(p) for p in c),
        "Polygon": lambda c: isinstance(c, list) and len(c) >= 1 and all(ring(r) for r in c),
        "MultiPolygon": lambda c: (
            isinstance(c, list)
            and len(c) >= 1
            and all(isinstance(p, list) and p and all(ring(r) for r in p) for p in c)
        ),
    }[geometry](coords)
    if not ok:
        raise QueryError(f"coordinates are not a GeoJSON {geometry} ([longitude, latitude] positions)")
    if len(json.dumps(coords)) > MAX_COORDINATES * 40:
        raise QueryError(f"a query geometry of at most {MAX_COORDINATES} points", "TooComplexQuery")


def _distance_m(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    lon1, lat1, lon2, lat2 = map(math.radians, (a[0], a[1], b[0], b[1]))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * _EARTH_M * math.asin(min(1.0, math.sqrt(h)))


def _in_polygon(point: tuple[float, float], polygon: list[list[list[float]]]) -> bool:
    """Inside the outer ring (or on its edge) and outside every hole."""
    outer, *holes = polygon
    if not (_in_ring(point, outer) or _on_ring(point, outer)):
        return False
    return not any(_in_ring(point, hole) and not _on_ring(point, hole) for hole in holes)


def _in_ring(point: tuple[float, float], ring: list[list[float]]) -> bool:
    x, y = point
    inside = False
    for (x1, y1, *_), (x2, y2, *_) in itertools.pairwise(ring):
        if (y1 > y) != (y2 > y) and x < (x2 - x1) * (y - y1) / (y2 - y1) + x1:
            inside = not inside
    return inside


def _on_ring(point: tuple[float, float], ring: list[list[float]]) -> bool:
    return any(_on_segment(point, a, b) for a, b in itertools.pairwise(ring))


def _on_segment(p: tuple[float, float], a: list[float], b: list[float]) -> bool:
    """Within 0.5 m of the segment a–b (flat approximation: segments in a query are short)."""
    ax, ay, bx, by = a[0], a[1], b[0], b[1]
    dx, dy = bx - ax, by - ay
    length2 = dx * dx + dy * dy
    t = 0.0 if length2 == 0 else max(0.0, min(1.0, ((p[0] - ax) * dx + (p[1] - ay) * dy) / length2))
    return _distance_m(p, (ax + t * dx, ay + t * dy)) <= 0.5

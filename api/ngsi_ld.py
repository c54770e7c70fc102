"""NGSI-LD (ETSI GS CIM 009) read access, so a FIWARE-based IOC consumes us as it would a context broker.

`GET /ngsi-ld/v1/entities` queries by `type` (names, lists, IRIs), `id`, `idPattern`, `attrs`, `q`,
`georel`/`geometry`/`coordinates`, with `options=keyValues` (or `format=simplified`), `count`,
`limit`/`offset` and `Link` paging. `GET /ngsi-ld/v1/entities/{id}` reads one. Content negotiation:
`application/json` (the default: the @context in a `Link` header), `application/ld+json` (the
@context in the body), `application/geo+json`; anything else is 406. Every error is a ProblemDetails
document with an ETSI error type. Parameters this broker does not implement are refused (400)
rather than ignored. The entities themselves: api/ngsi_entities.py.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from api.access import Permission, allow
from api.deps import Service
from api.errors import PROBLEM_STATUS, problem_response
from api.ngsi_entities import CONTEXT, KNOWN_CONTEXTS, TYPES, entities_of, short_name
from api.ngsi_geo import parse_georel
from api.ngsi_query import QueryError, id_pattern, parse_q, parse_types

router = APIRouter(prefix="/ngsi-ld/v1", tags=["ngsi-ld"], dependencies=[allow(Permission.READ)])
contexts_router = APIRouter(prefix="/ngsi-ld/v1", tags=["ngsi-ld"])
JSONLD_REL = "http://www.w3.org/ns/json-ld#context"
CONTEXT_PATH = "/ngsi-ld/v1/jsonldContexts/lamplighter"
MAX_LIMIT = 1000
DEFAULT_LIMIT = 20
_MEDIA = ("application/json", "application/ld+json", "application/geo+json")
_QUERY_PARAMS = frozenset(
    {
        "type", "id", "idPattern", "attrs", "q", "georel", "geometry", "coordinates", "geoproperty",
        "options", "format", "count", "limit", "offset", "local", "lang",
    }
)  # fmt: skip
_ENTITY_PARAMS = frozenset({"attrs", "options", "format", "local"})


class NgsiError(Exception):
    def __init__(
        self, kind: str, detail: str, *, status: int | None = None, title: str | None = None
    ) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail
        self.status = status or PROBLEM_STATUS[kind]
        self.title = title or kind


@router.get(
    "/entities",
    summary="Query entities (NGSI-LD)",
    description=f"At least one of `type`, `id`, `idPattern`, `attrs`, `q` or `georel`. Types: "
    f"{', '.join(TYPES)} (short names or their full IRIs). `limit` 0–{MAX_LIMIT} (default "
    f"{DEFAULT_LIMIT}; 0 only with `count=true`), `offset`. Next and previous pages in the `Link` header.",
    response_class=JSONResponse,
)
async def query_entities(
    request: Request,
    service: Service,
    type: Annotated[str | None, Query(description="entity types: A, A,B or A|B, (A;B)")] = None,
    id: Annotated[str | None, Query(description="entity ids, comma-separated")] = None,
    idPattern: Annotated[str | None, Query(description="a regular expression the id matches (RE2)")] = None,
    attrs: Annotated[
        str | None, Query(description="attributes to return (entities with at least one)")
    ] = None,
    q: Annotated[
        str | None, Query(description='NGSI-LD query language, e.g. powerConsumption>50;status=="ok"')
    ] = None,
    georel: Annotated[str | None, Query(description="near;maxDistance==500, within, intersects, …")] = None,
    geometry: Annotated[str | None, Query(description="Point, LineString, Polygon, MultiPolygon")] = None,
    coordinates: Annotated[str | None, Query(description="GeoJSON coordinates, e.g. [105.85,21.03]")] = None,
    geoproperty: Annotated[str | None, Query(description="location (the only GeoProperty)")] = None,
    options: Annotated[str | None, Query(description="keyValues (or concise), normalized, count")] = None,
    format: Annotated[str | None, Query(description="simplified or normalized")] = None,
    count: Annotated[str | None, Query(description="true: NGSILD-Results-Count header")] = None,
    limit: Annotated[str | None, Query(description=f"0–{MAX_LIMIT}")] = None,
    offset: Annotated[str | None, Query(description="entities to skip")] = None,
) -> JSONResponse:
    try:
        media, simplified, counted = _request_shape(request, _QUERY_PARAMS, options, format, count)
        page_size = _integer("limit", limit, DEFAULT_LIMIT, 0, None)
        skip = _integer("offset", offset, 0, 0, 2**31 - 1)
        if page_size > MAX_LIMIT:
            raise NgsiError("TooManyResults", f"limit {page_size}: at most {MAX_LIMIT} entities a page")
        if page_size == 0 and not counted:
            raise NgsiError(
                "BadRequestData", "limit=0 asks for no entities: add count=true to get their number"
            )
        if not any((type, id, idPattern, attrs, q, georel)):
            raise NgsiError(
                "BadRequestData",
                "give at least one of type, id, idPattern, attrs, q or georel (ETSI GS CIM 009)",
            )
        kinds = _kinds(type)
        keep = _filters(id, idPattern, attrs, q, georel, geometry, coordinates, geoproperty)
        found = [e for e in await entities_of(service, kinds) if keep(e)]
    except NgsiError as exc:
        return _error(request, exc)
    page = found[skip : skip + page_size]
    wanted = _attrs(attrs)
    body: Any = [_shape(e, wanted, simplified, media) for e in page]
    if media == "application/geo+json":
        body = {"type": "FeatureCollection", "features": body}
    headers = _context_headers(request, media)
    if counted:
        headers["NGSILD-Results-Count"] = str(len(found))
    links = _page_links(request, skip, page_size, len(found))
    if links:
        headers["Link"] = ", ".join(filter(None, [headers.get("Link"), *links]))
    return JSONResponse(body, media_type=media, headers=headers)


@router.get(
    "/entities/{entity_id}",
    summary="One entity (NGSI-LD)",
    response_class=JSONResponse,
)
async def retrieve_entity(
    request: Request,
    service: Service,
    entity_id: str,
    attrs: Annotated[str | None, Query(description="attributes to return")] = None,
    options: Annotated[str | None, Query(description="keyValues (or concise), normalized")] = None,
    format: Annotated[str | None, Query(description="simplified or normalized")] = None,
) -> JSONResponse:
    try:
        media, simplified, _ = _request_shape(request, _ENTITY_PARAMS, options, format, None)
        if ":" not in entity_id:
            raise NgsiError("BadRequestData", f"{entity_id!r} is not a URI (urn:ngsi-ld:<Type>:<id>)")
        parts = entity_id.split(":")
        kind = parts[2] if len(parts) >= 4 and parts[:2] == ["urn", "ngsi-ld"] else None
        found = [
            e for e in await entities_of(service, {kind} if kind in TYPES else set())
            if e["id"] == entity_id
        ]  # fmt: skip
        if not found:
            raise NgsiError("ResourceNotFound", f"no entity {entity_id}")
        wanted = _attrs(attrs)
        if wanted and not wanted & found[0].keys():
            raise NgsiError(
                "ResourceNotFound", f"entity {entity_id} has none of the attributes {sorted(wanted)}"
            )
    except NgsiError as exc:
        return _error(request, exc)
    return JSONResponse(
        _shape(found[0], wanted, simplified, media),
        media_type=media,
        headers=_context_headers(request, media),
    )


@contexts_router.get(
    "/jsonldContexts/lamplighter",
    summary="The @context the entities are written in (public, for JSON-LD processors)",
    response_class=JSONResponse,
)
async def our_context() -> JSONResponse:
    return JSONResponse({"@context": CONTEXT}, media_type="application/ld+json")


# -- parameters -----------------------------------------------------------------------------------


def _request_shape(
    request: Request, allowed: frozenset[str], options: str | None, fmt: str | None, count: str | None
) -> tuple[str, bool, bool]:
    """What every NGSI-LD request settles first: (media type, keyValues?, count?), having refused
    parameters we do not implement and @contexts we cannot read."""
    media = _negotiate(request)
    _refuse_unknown(request, allowed)
    _check_context(request)
    return (media, *_representation(options, fmt, count))


def _negotiate(request: Request) -> str:
    """The media type to answer in, from `Accept` (q-values honoured); application/json by default."""
    accept = request.headers.get("accept", "").strip()
    if not accept:
        return "application/json"
    offers: list[tuple[float, int, str]] = []
    for i, part in enumerate(accept.split(",")):
        media, *params = (x.strip() for x in part.split(";"))
        quality = 1.0
        for param in params:
            if param.startswith("q="):
                try:
                    quality = float(param[2:])
                except ValueError:
                    quality = 0.0
        offers.append((quality, -i, media.lower()))
    for quality, _, media in sorted(offers, reverse=True):
        if quality <= 0 or not math.isfinite(quality):
            continue
        if media in _MEDIA:
            return media
        if media in ("*/*", "application/*"):
            return "application/json"
    raise NgsiError(
        "NotAcceptable",
        f"cannot answer in {accept[:100]!r}: ask for {', '.join(_MEDIA)}",
        status=406,
        title="Not Acceptable",
    )


def _refuse_unknown(request: Request, allowed: frozenset[str]) -> None:
    unknown = sorted(set(request.query_params) - allowed)
    if unknown:
        raise NgsiError(
            "BadRequestData",
            f"this broker does not implement {', '.join(unknown)}; it takes {', '.join(sorted(allowed))}",
        )
    repeated = sorted(k for k in set(request.query_params) if len(request.query_params.getlist(k)) > 1)
    if repeated:
        raise NgsiError("BadRequestData", f"{', '.join(repeated)} given more than once")


def _check_context(request: Request) -> None:
    link = request.headers.get("link")
    if not link:
        return
    url = link.split(";", 1)[0].strip().strip("<>")
    if url not in KNOWN_CONTEXTS and not url.endswith(CONTEXT_PATH):
        raise NgsiError(
            "LdContextNotAvailable",
            f"this broker cannot fetch the @context {url[:200]}; it resolves terms with its own "
            f"({', '.join(CONTEXT)}): send no Link header, or one of those",
        )


def _representation(options: str | None, fmt: str | None, count: str | None) -> tuple[bool, bool]:
    """(keyValues?, count?) from `options`, `format` and `count`."""
    chosen = {o.strip() for o in (options or "").split(",") if o.strip()}
    unknown = chosen - {"keyValues", "concise", "normalized", "count"}
    if unknown:
        raise NgsiError(
            "BadRequestData", f"options {', '.join(sorted(unknown))}: keyValues, normalized or count"
        )
    if fmt is not None and fmt not in ("simplified", "normalized", "keyValues"):
        raise NgsiError("BadRequestData", f"format {fmt!r}: simplified or normalized")
    if count is not None and count not in ("true", "false"):
        raise NgsiError("BadRequestData", f"count {count!r}: true or false")
    simplified = bool(chosen & {"keyValues", "concise"}) or fmt in ("simplified", "keyValues")
    return simplified, count == "true" or "count" in chosen


def _integer(name: str, raw: str | None, default: int, low: int, high: int | None) -> int:
    if raw is None:
        return default
    if not raw.isdigit() or len(raw) > 12:
        raise NgsiError("BadRequestData", f"{name} {raw[:20]!r}: a whole number")
    value = int(raw)
    if value < low or (high is not None and value > high):
        raise NgsiError("BadRequestData", f"{name} {value}: from {low} to {high}")
    return value


def _kinds(selector: str | None) -> set[str]:
    if selector is None:
        return set(TYPES)
    try:
        matches = parse_types(selector, short_name)
    except QueryError as exc:
        raise NgsiError(exc.kind, str(exc)) from None
    return {t for t in TYPES if matches(t)}  # an unknown type matches nothing: 200 with []


def _attrs(attrs: str | None) -> set[str]:
    return {short_name(a.strip()) for a in (attrs or "").split(",") if a.strip()}


def _filters(
    ids: str | None,
    pattern: str | None,
    attrs: str | None,
    q: str | None,
    georel: str | None,
    geometry: str | None,
    coordinates: str | None,
    geoproperty: str | None,
) -> Callable[[Mapping[str, Any]], bool]:
    tests: list[Callable[[Mapping[str, Any]], bool]] = []
    try:
        if ids is not None:
            wanted_ids = {i.strip() for i in ids.split(",") if i.strip()}
            tests.append(lambda e: e["id"] in wanted_ids)
        if pattern is not None:
            matches = id_pattern(pattern)
            tests.append(lambda e: matches(e["id"]))
        if attrs is not None:
            names = _attrs(attrs)
            tests.append(lambda e: bool(names & e.keys()))
        if q is not None:
            tests.append(parse_q(q, short_name))
        if georel is not None or geometry is not None or coordinates is not None:
            if georel is None:
                raise QueryError("geometry and coordinates need georel")
            geo = parse_georel(georel, geometry, coordinates)
            where = short_name(geoproperty or "location")

            def located(e: Mapping[str, Any]) -> bool:
                value = e.get(where, {}).get("value", {})
                return value.get("type") == "Point" and geo.matches(*value["coordinates"][:2])

            tests.append(located)
    except QueryError as exc:
        raise NgsiError(exc.kind, str(exc)) from None
    return lambda e: all(t(e) for t in tests)


# -- answers --------------------------------------------------------------------------------------


def _shape(entity: Mapping[str, Any], attrs: set[str], simplified: bool, media: str) -> dict[str, Any]:
    """Project `attrs`, simplify to keyValues if asked, then wrap for the media type."""
    out: dict[str, Any] = {}
    for key, value in entity.items():
        if key in ("id", "type") or not attrs or key in attrs:
            out[key] = _simple(value) if simplified and key not in ("id", "type") else value
    if media == "application/geo+json":
        location = entity.get("location", {}).get("value")
        properties = {k: v for k, v in out.items() if k != "id"}
        return {"id": out["id"], "type": "Feature", "geometry": location, "properties": properties}
    if media == "application/ld+json":
        out["@context"] = CONTEXT
    return out


def _simple(attribute: Any) -> Any:
    if isinstance(attribute, Mapping):
        if attribute.get("type") == "Relationship":
            return attribute.get("object")
        return attribute.get("value")
    return attribute


def _context_headers(request: Request, media: str) -> dict[str, str]:
    if media == "application/ld+json":
        return {}
    url = str(request.url_for("our_context"))
    return {"Link": f'<{url}>; rel="{JSONLD_REL}"; type="application/ld+json"'}


def _page_links(request: Request, skip: int, size: int, total: int) -> list[str]:
    links = []
    if size and skip + size < total:
        links.append(f'<{request.url.include_query_params(offset=skip + size, limit=size)}>; rel="next"')
    if size and skip > 0:
        links.append(
            f'<{request.url.include_query_params(offset=max(0, skip - size), limit=size)}>; rel="prev"'
        )
    return links


def _error(request: Request, exc: NgsiError) -> JSONResponse:
    return problem_response(exc.status, exc.kind, exc.title, exc.detail, scope=request.scope)

"""The OpenAPI description, completed with the errors every operation really answers.

FastAPI documents what a route declares; the layers around the routes answer more: the credential
check (401, 403), rate limits and the lockout (429), the body limit (413), the databases being away
(503), and any failure (500) — all in the shared error shape, never FastAPI's own `{"detail": …}`.
This adds them where they apply, and replaces what OpenAPI 3.1 validators refuse (`itemSchema`,
an OpenAPI 3.2 keyword FastAPI writes for event streams). `tests/api/test_openapi.py` validates the
result with `openapi-spec-validator`, and schemathesis compares it with what the API answers.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from api.errors import REQUEST_ID_HEADER, ErrorBody

_ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}
_RETRY_AFTER = {"description": "seconds to wait before trying again", "schema": {"type": "integer"}}
_REQUEST_ID = {
    "description": "this request's id, also in the error body and the log",
    "schema": {"type": "string"},
}
_AUTHENTICATE = {"description": 'Bearer realm="lamplighter"', "schema": {"type": "string"}}
_WITH_BODY = frozenset({"post", "put", "patch"})


def _error(description: str, **headers: dict[str, Any]) -> dict[str, Any]:
    return {
        "description": description,
        "headers": {REQUEST_ID_HEADER: _REQUEST_ID, **headers},
        "content": {"application/json": {"schema": _ERROR_REF}},
    }


_SECURED = {
    "401": _error(
        "unauthorized: credentials missing, malformed, unknown, revoked or expired",
        **{"WWW-Authenticate": _AUTHENTICATE},
    ),
    "403": _error("forbidden: the caller's role may not do this"),
    "429": _error("rate_limited (too many requests) or too_many_streams", **{"Retry-After": _RETRY_AFTER}),
}
_EVERY = {
    "500": _error("internal_error: an unexpected failure, logged with the request id"),
    "503": _error(
        "not_ready, busy, database_unavailable or telemetry_unavailable: try again",
        **{"Retry-After": _RETRY_AFTER},
    ),
}


def install_openapi(app: FastAPI) -> None:
    """Make `app.openapi()` return the completed description (built once)."""

    def described() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            app.openapi_schema = complete(doc)
        return app.openapi_schema

    app.openapi = described  # type: ignore[method-assign]


def complete(doc: dict[str, Any]) -> dict[str, Any]:
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(_error_schemas())
    schemas.update(_NGSI_SCHEMAS)
    for path, operations in doc.get("paths", {}).items():
        if path.startswith("/ngsi-ld/"):
            for op in operations.values():
                _ngsi_ld(path, op)
            continue
        for method, op in operations.items():
            responses: dict[str, Any] = op.setdefault("responses", {})
            for status, response in list(responses.items()):
                if status == "422" or _refers_to(response, "HTTPValidationError"):
                    responses[status] = _error(
                        "invalid_request (or another 422 code): what was wrong, and where"
                    )
                elif status.startswith(("4", "5")) and _refers_to(response, "ErrorBody"):
                    response.setdefault("headers", {})[REQUEST_ID_HEADER] = _REQUEST_ID
            if op.get("security"):
                for status, response in _SECURED.items():
                    responses.setdefault(status, response)
            elif path == "/api/v1/auth/login":
                responses.setdefault("429", _error("locked_out", **{"Retry-After": _RETRY_AFTER}))
            if method in _WITH_BODY:
                responses.setdefault("413", _error("too_large: the body is larger than this route accepts"))
            if "{" in path:
                responses.setdefault("404", _error("not_found"))
            for status, response in _EVERY.items():
                responses.setdefault(status, response)
            for response in responses.values():
                for media in response.get("content", {}).values():
                    if "itemSchema" in media:  # OpenAPI 3.2; the stream itself is text
                        media.pop("itemSchema")
                        media["schema"] = {"type": "string", "description": "server-sent events"}
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    return doc


def _error_schemas() -> dict[str, Any]:
    body = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    defs = body.pop("$defs", {})
    return {"ErrorBody": body, **defs}


def _refers_to(response: dict[str, Any], schema: str) -> bool:
    return any(
        media.get("schema", {}).get("$ref", "").endswith(f"/{schema}")
        for media in response.get("content", {}).values()
    )


# -- NGSI-LD: its own media types and ProblemDetails errors ------------------------------------------

_NGSI_SCHEMAS: dict[str, Any] = {
    "ProblemDetails": {
        "type": "object",
        "description": "RFC 7807, with an NGSI-LD error type (https://uri.etsi.org/ngsi-ld/errors/…)",
        "required": ["type", "title"],
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "instance": {"type": "string", "description": "the request's id"},
            "code": {"type": "string", "description": "our error code, as in the rest of the API"},
        },
    },
    "NgsiEntity": {
        "type": "object",
        "description": "an NGSI-LD entity (normalized, or keyValues with options=keyValues)",
        "required": ["id", "type"],
        "properties": {"id": {"type": "string"}, "type": {"type": "string"}},
        "additionalProperties": True,
    },
    "GeoJsonFeature": {
        "type": "object",
        "required": ["type", "geometry", "properties"],
        "properties": {
            "id": {"type": "string"},
            "type": {"const": "Feature"},
            "geometry": {"type": ["object", "null"]},
            "properties": {"type": "object"},
        },
    },
}
_PROBLEM = {"$ref": "#/components/schemas/ProblemDetails"}
_NGSI_ERRORS = {
    "400": "BadRequestData: an invalid or unsupported parameter, or a malformed q, type or geo-query",
    "401": "unauthorized: credentials missing or refused",
    "403": "forbidden; TooManyResults (limit over 1000) or TooComplexQuery",
    "406": "Not Acceptable: ask for application/json, application/ld+json or application/geo+json",
    "429": "rate_limited",
    "500": "InternalError",
    "503": "LdContextNotAvailable (a Link @context we cannot fetch), or a database away",
}


def _ngsi_ld(path: str, op: dict[str, Any]) -> None:
    entity = {"$ref": "#/components/schemas/NgsiEntity"}
    feature = {"$ref": "#/components/schemas/GeoJsonFeature"}
    ok: dict[str, Any]
    headers: dict[str, Any]
    if path.endswith("/entities"):
        ok = {
            "application/json": {"schema": {"type": "array", "items": entity}},
            "application/ld+json": {"schema": {"type": "array", "items": entity}},
            "application/geo+json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "type": {"const": "FeatureCollection"},
                        "features": {"type": "array", "items": feature},
                    },
                }
            },
        }
        headers = {
            "NGSILD-Results-Count": {"description": "with count=true", "schema": {"type": "integer"}},
            "Link": {
                "description": "the @context (JSON, GeoJSON), next and prev pages",
                "schema": {"type": "string"},
            },
        }
    elif "{" in path:
        ok = {
            "application/json": {"schema": entity},
            "application/ld+json": {"schema": entity},
            "application/geo+json": {"schema": feature},
        }
        headers = {"Link": {"description": "the @context (JSON, GeoJSON)", "schema": {"type": "string"}}}
    else:  # the @context document: public
        op["responses"] = {
            "200": {
                "description": "the @context",
                "content": {"application/ld+json": {"schema": {"type": "object"}}},
            },
            "500": {"description": "InternalError", "content": {"application/json": {"schema": _PROBLEM}}},
        }
        return
    errors = dict(_NGSI_ERRORS)
    if "{" in path:
        errors["404"] = "ResourceNotFound"
    op["responses"] = {
        "200": {"description": "the entities", "headers": headers, "content": ok},
        **{
            status: {"description": text, "content": {"application/json": {"schema": _PROBLEM}}}
            for status, text in sorted(errors.items())
        },
    }

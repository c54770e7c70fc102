"""One error shape for every endpoint: {"error": {"code", "message", "details", "request_id"}}.

Every request gets an id (`X-Request-ID`: the client's own if it sent a sensible one, else a new
one), answered in that header and in every error body, and written in the log beside any failure,
so an operator can find what went wrong from what a user reports. An unexpected exception is
answered 500 in the same JSON shape, never as plain text.
"""

from __future__ import annotations

import itertools
import logging
import re
import uuid
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from controller.db import DATABASE_AWAY_ERRORS, database_is_away
from controller.errors import (
    AirDisabled,
    AlertsDisabled,
    NoLamps,
    NotCommandable,
    NotOwned,
    NotReady,
    ServiceError,
    UnknownDevice,
)

log = logging.getLogger(__name__)
DATABASE_RETRY_AFTER_S = 5
#: starting, or rebuilding the work of the links served after a takeover: a second or three
NOT_READY_RETRY_AFTER_S = 1


#: what the controller refuses (controller/errors.py) → status and code
_SERVICE_ANSWERS: dict[type[ServiceError], tuple[int, str]] = {
    UnknownDevice: (404, "not_found"),
    NoLamps: (404, "not_found"),
    NotOwned: (409, "other_instance"),
    NotCommandable: (422, "not_commandable"),
    NotReady: (503, "not_ready"),
    AlertsDisabled: (503, "alerts_disabled"),
    AirDisabled: (503, "air_disabled"),
}


class ErrorDetail(BaseModel):
    code: str = Field(description="machine-readable: invalid_request, unauthorized, not_found, …")
    message: str = Field(description="what was wrong, and where")
    details: list[dict[str, Any]] = []
    request_id: str | None = Field(default=None, description="the X-Request-ID of the request")


class ErrorBody(BaseModel):
    error: ErrorDetail


class ApiError(Exception):
    """Raise in a route to answer with the shared error shape."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or []
        self.headers = headers or {}


def error_response(
    status: int,
    code: str,
    message: str,
    details: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
    *,
    scope: Scope | None = None,
) -> JSONResponse:
    """The shared error shape; with the request's `scope`, its id in the body and headers. Under
    /ngsi-ld/ the same error is a ProblemDetails document, as NGSI-LD clients expect."""
    if scope is not None and str(scope.get("path", "")).startswith(NGSI_LD):
        kind = _PROBLEM_OF_STATUS.get(status, code)
        status = 400 if status == 422 else status  # NGSI-LD: a bad query is BadRequestData (400)
        return problem_response(
            status, kind, code.replace("_", " "), message, headers, scope=scope, code=code
        )
    request_id = request_id_of(scope) if scope is not None else None
    body = ErrorBody(
        error=ErrorDetail(code=code, message=message, details=details or [], request_id=request_id)
    )
    if request_id is not None:
        headers = {**(headers or {}), REQUEST_ID_HEADER: request_id}
    return JSONResponse(status_code=status, content=body.model_dump(), headers=headers)


NGSI_LD = "/ngsi-ld/"
NGSI_ERRORS = "https://uri.etsi.org/ngsi-ld/errors/"
#: ETSI GS CIM 009's error types and their HTTP statuses
PROBLEM_STATUS = {
    "BadRequestData": 400,
    "InvalidRequest": 400,
    "ResourceNotFound": 404,
    "TooManyResults": 403,
    "TooComplexQuery": 403,
    "OperationNotSupported": 422,
    "LdContextNotAvailable": 503,
    "InternalError": 500,
}
_PROBLEM_OF_STATUS = {
    400: "BadRequestData",
    404: "ResourceNotFound",
    422: "BadRequestData",
    500: "InternalError",
}


def problem_response(
    status: int,
    kind: str,
    title: str,
    detail: str,
    headers: dict[str, str] | None = None,
    *,
    scope: Scope | None = None,
    code: str | None = None,
) -> JSONResponse:
    """An NGSI-LD ProblemDetails answer (RFC 7807 with an ETSI error `type` where one applies; our
    own `code` beside it as an extension member)."""
    request_id = request_id_of(scope) if scope is not None else None
    body: dict[str, Any] = {
        "type": f"{NGSI_ERRORS}{kind}" if kind in PROBLEM_STATUS else "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
    }
    if code is not None:
        body["code"] = code
    if request_id is not None:
        body["instance"] = f"urn:lamplighter:request:{request_id}"
        headers = {**(headers or {}), REQUEST_ID_HEADER: request_id}
    return JSONResponse(body, status_code=status, media_type="application/json", headers=headers)


REQUEST_ID_HEADER = "X-Request-ID"
_CLIENT_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
#: A new id is this process's random half and a count: 32 hex digits like a UUID's, unique across
#: instances and restarts, with no system call per request. (uuid4 asked the kernel for random
#: bytes each time: ~15 µs here, and in bench-city the loop watch found the loop held 0.1–0.5 s
#: inside that call 17 times a minute on this VM. An id names a request; it is not a secret.)
_PROCESS_PART = uuid.uuid4().hex[:16]
_COUNT = itertools.count(1)


def new_request_id() -> str:
    return f"{_PROCESS_PART}{next(_COUNT):016x}"


def request_id_of(scope: Scope) -> str | None:
    state = scope.get("state")
    return state.get("request_id") if isinstance(state, dict) else None


class RequestIdMiddleware:
    """Gives each request an id (the client's `X-Request-ID` if it is short and plain) and answers it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = Headers(scope=scope).get(REQUEST_ID_HEADER, "")
        request_id = given if _CLIENT_ID.match(given) else new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if REQUEST_ID_HEADER not in headers:
                    headers.append(REQUEST_ID_HEADER, request_id)
            await send(message)

        await self.app(scope, receive, send_with_id)


def _unavailable(request: Request, exc: Exception, code: str, what: str) -> JSONResponse:
    """503 for a server we depend on that is away for now: the client should retry."""
    path, request_id = request.url.path, request_id_of(request.scope)
    log.warning("%s %s: %s (%r) [request %s]", request.method, path, code, exc, request_id)
    return error_response(
        503,
        code,
        f"{what}. Retry shortly.",
        headers={"Retry-After": str(DATABASE_RETRY_AFTER_S)},
        scope=request.scope,
    )


def _internal(request: Request, exc: BaseException) -> JSONResponse:
    log.error(
        "%s %s failed [request %s]",
        request.method,
        request.url.path,
        request_id_of(request.scope),
        exc_info=exc,
    )
    return error_response(
        500, "internal_error", "internal error: logged with this request's id", scope=request.scope
    )


def install_error_handlers(app: FastAPI) -> None:
    async def _database(request: Request, exc: Exception) -> JSONResponse:
        if not database_is_away(exc):
            return _internal(request, exc)
        return _unavailable(
            request,
            exc,
            "database_unavailable",
            "the registry database is unavailable; live device state, polling and telemetry go on",
        )

    for exc_class in DATABASE_AWAY_ERRORS:
        app.add_exception_handler(exc_class, _database)

    @app.exception_handler(httpx.TransportError)
    async def _time_series(request: Request, exc: httpx.TransportError) -> JSONResponse:
        # The only HTTP a route makes is to the time-series database (history, energy).
        return _unavailable(
            request,
            exc,
            "telemetry_unavailable",
            "the time-series database is unavailable; new readings are kept in the controller's buffer",
        )

    @app.exception_handler(ServiceError)
    async def _refused(request: Request, exc: ServiceError) -> JSONResponse:
        status, code = next(
            (answer for kind, answer in _SERVICE_ANSWERS.items() if isinstance(exc, kind)),
            (500, "internal_error"),
        )
        retry_after = NOT_READY_RETRY_AFTER_S if isinstance(exc, NotReady) else DATABASE_RETRY_AFTER_S
        headers = {"Retry-After": str(retry_after)} if status == 503 else None
        return error_response(status, code, str(exc), headers=headers, scope=request.scope)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(
            exc.status, exc.code, exc.message, exc.details, exc.headers, scope=request.scope
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [{"where": ".".join(str(p) for p in e["loc"]), "problem": e["msg"]} for e in exc.errors()]
        message = "; ".join(f"{d['where']}: {d['problem']}" for d in details)
        return error_response(422, "invalid_request", message[:2000], details[:50], scope=request.scope)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:
            # Only the framework raises these: a body it cannot decode at all (not UTF-8, a broken
            # multipart form). The same answer as any other invalid body.
            message = f"body: cannot be read ({exc.detail}); JSON in UTF-8 or a multipart form is expected"
            return error_response(422, "invalid_request", message, scope=request.scope)
        code = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}.get(
            exc.status_code, "http_error"
        )
        return error_response(
            exc.status_code, code, str(exc.detail), headers=dict(exc.headers or {}), scope=request.scope
        )

    # Anything else: Starlette's outermost layer calls this, then re-raises for the server's log.
    app.add_exception_handler(Exception, _unexpected)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    return _internal(request, exc)

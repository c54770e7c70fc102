"""One error shape for every endpoint: {"error": {"code", "message", "details"}}."""

from __future__ import annotations

import logging
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from controller.db import DATABASE_AWAY_ERRORS, database_is_away

log = logging.getLogger(__name__)
DATABASE_RETRY_AFTER_S = 5


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: list[dict[str, Any]] = []


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
) -> JSONResponse:
    body = ErrorBody(error=ErrorDetail(code=code, message=message, details=details or []))
    return JSONResponse(status_code=status, content=body.model_dump(), headers=headers)


def _unavailable(request: Request, exc: Exception, code: str, what: str) -> JSONResponse:
    """503 for a server we depend on that is away for now: the client should retry."""
    log.warning("%s %s: %s (%r)", request.method, request.url.path, code, exc)
    return error_response(
        503, code, f"{what}. Retry shortly.", headers={"Retry-After": str(DATABASE_RETRY_AFTER_S)}
    )


def install_error_handlers(app: FastAPI) -> None:
    async def _database(request: Request, exc: Exception) -> JSONResponse:
        if not database_is_away(exc):
            log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
            return error_response(500, "internal_error", "internal error (logged)")
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

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = [{"where": ".".join(str(p) for p in e["loc"]), "problem": e["msg"]} for e in exc.errors()]
        message = "; ".join(f"{d['where']}: {d['problem']}" for d in details)
        return error_response(422, "invalid_request", message, details)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}.get(
            exc.status_code, "http_error"
        )
        return error_response(exc.status_code, code, str(exc.detail))

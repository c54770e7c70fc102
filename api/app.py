"""FastAPI application factory: the IOC's and engineers' HTTP API, OpenAPI at /docs."""

from __future__ import annotations

import dataclasses
from typing import Literal

from fastapi import FastAPI, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import RedirectResponse
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from api import (
    air,
    alerts,
    audit,
    auth,
    devices,
    energy,
    firmware,
    geo,
    kpis,
    map_view,
    monthly_report,
    ngsi_ld,
    noise,
    open_data,
    schedule_drafts,
    schedule_history,
    schedules,
    wifi,
)
from api import map as map_routes
from api.access import AccessGuard, Permission, allow
from api.audit import AuditMiddleware
from api.deps import Service
from api.errors import RequestIdMiddleware, install_error_handlers
from api.gate import RequestGate
from api.heavy import HeavyWork
from api.map import MapChanges
from api.models import Health, LeasesOut
from api.openapi import install_openapi
from api.streams import StreamSlots
from api.web import install_web
from controller.service import ControllerService

API_DESCRIPTION = """
Lamplighter's HTTP API for Intelligent Operations Centres and lighting engineers.

Every route but `/healthz`, `POST /api/v1/auth/login` and the open data the city publishes
(`/open-data/v1/city`, rate-limited per address) needs credentials: an API key in
`X-API-Key` (machine clients), or `Authorization: Bearer <token>` with a token from the login.
Roles: viewer (read; the IOC), operator (the night shift: read, acknowledge alerts, switch and
dim devices and groups), engineer (an operator who also edits schedules, groups, overrides),
technician (an operator who also handles firmware and campaigns), admin (everything, users, keys,
audit log).

Lists are paginated with `limit` and `offset` and report a `total`. Errors share one shape:
`{"error": {"code": "...", "message": "...", "details": [...]}}`.
"""


def create_app(service: ControllerService) -> FastAPI:
    """Build the API around a controller (through its service) that the caller starts and stops."""
    api = service.settings.api
    app = FastAPI(
        title="Lamplighter API",
        version="1",
        description=API_DESCRIPTION,
        docs_url=None,  # served by install_web, from this server
        redoc_url=None,
    )
    app.state.service = service
    app.state.map_changes = MapChanges()
    app.state.heavy = HeavyWork()
    app.state.streams = StreamSlots(total=api.max_event_streams, per_caller=api.max_event_streams_per_client)
    app.state.guard = guard = AccessGuard(service.auth, service.logins, api)
    install_error_handlers(app)
    install_openapi(app)
    app.add_middleware(  # inside the audit: its refusals are counted
        RequestGate,
        guard=guard,
        max_body_bytes=api.max_body_bytes,
        max_image_bytes=int(service.settings.firmware.max_image_mb * 2**20),
    )
    app.add_middleware(AuditMiddleware, store=service.auth, refused=service.metrics.api_refused)
    if api.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=api.cors_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type", "Last-Event-ID"],
            expose_headers=["Retry-After", "Location", "NGSILD-Results-Count"],
            max_age=600,
        )
    if api.trusted_proxies:  # every layer below sees the client the proxy saw
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=api.trusted_proxies)
    app.add_middleware(RequestIdMiddleware)  # outermost: every answer carries the request's id
    app.include_router(auth.login_router)
    app.include_router(auth.me_router)
    app.include_router(auth.admin_router)
    app.include_router(audit.router)
    app.include_router(devices.router)
    app.include_router(devices.groups_router)
    app.include_router(schedule_drafts.router)  # before schedules: POST /schedules/preview
    app.include_router(schedules.router)
    app.include_router(schedule_history.router)
    app.include_router(alerts.router)
    app.include_router(energy.router)
    app.include_router(monthly_report.router)
    app.include_router(wifi.router)
    app.include_router(noise.router)
    app.include_router(air.router)
    app.include_router(open_data.router)
    app.include_router(firmware.router)
    app.include_router(geo.router)
    app.include_router(kpis.router)
    app.include_router(ngsi_ld.router)
    app.include_router(ngsi_ld.contexts_router)

    app.include_router(map_routes.router)
    app.include_router(map_view.router)
    # The dashboard, its libraries and /docs: static files (the page logs in like any client).
    install_web(app, service.settings.map)

    @app.get("/", include_in_schema=False)
    async def home() -> RedirectResponse:
        return RedirectResponse("/dashboard/")

    @app.get(
        "/healthz",
        response_model=Health,
        responses={503: {"model": Health, "description": "starting: not serving yet"}},
        tags=["operations"],
        summary="Liveness and link health",
    )
    async def healthz(service: Service, response: Response) -> Health:
        figures = service.health()
        status: Literal["ok", "starting", "degraded"]
        if figures.started_at is None:
            status = "starting"
            response.status_code = 503
        else:
            leased = figures.leases is None or (
                figures.leases.serving_home and figures.leases.database_reachable
            )
            healthy = all(figures.links.values()) and leased and figures.watching
            status = "ok" if healthy else "degraded"
        return Health(
            status=status,
            started_at=figures.started_at,
            links=figures.links,
            devices=figures.devices,
            queue_depth=figures.queue_depth,
            watching=figures.watching,
            leases=None
            if figures.leases is None
            else LeasesOut.model_validate(dataclasses.asdict(figures.leases)),
        )

    @app.get(
        "/metrics",
        tags=["operations"],
        dependencies=[allow(Permission.READ)],
        summary="Prometheus metrics",
        response_class=Response,
        responses={200: {"content": {"text/plain": {}}}},
    )
    async def metrics(service: Service) -> Response:
        return Response(service.metrics_text(), media_type="text/plain; version=0.0.4")

    return app

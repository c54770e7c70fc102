"""What a browser loads, all from this server: the dashboard, its translation files, its libraries
and the API docs. The libraries come from the npm registry through `api/dashboard/package-lock.json`
(`make` runs `npm ci`); nothing is fetched from a CDN, so the page and `/docs` work in an operations
centre with no internet."""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from controller.config import MapSettings
from controller.words import LOCALES

DASHBOARD = Path(__file__).parent / "dashboard"
#: where `npm ci` put the libraries (override for a packaged install)
WEB_LIBRARIES = Path(os.environ.get("LAMPLIGHTER_WEB_LIBRARIES", DASHBOARD / "node_modules"))
VENDOR = {  # URL name → the package's folder the browser needs
    "maplibre-gl": "maplibre-gl/dist",
    "swagger-ui": "swagger-ui-dist",
}
_HIDDEN = ("/node_modules", "/package.json", "/package-lock.json")


def policy(base_map: MapSettings) -> bytes:
    """The page runs only its own scripts and talks only to this server (and the base map's tile
    server, when one is configured), whatever a device name contains."""
    tiles = " ".join(base_map.origins())
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; "
        f"img-src 'self' data: blob: {tiles}; connect-src 'self' {tiles}; worker-src 'self' blob:; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ).encode()


class _StrictContent:
    """Adds a Content-Security-Policy (and no-sniff) to what the wrapped app serves; hides the
    npm files that live beside the page."""

    def __init__(self, app: ASGIApp, csp: bytes) -> None:
        self.app = app
        self.csp = csp

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", "")).removeprefix("/dashboard")
        if scope["type"] == "http" and path.startswith(_HIDDEN):
            not_found = JSONResponse({"error": {"code": "not_found", "message": "no such file"}}, 404)
            await not_found(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    *message.get("headers", []),
                    (b"content-security-policy", self.csp),
                    (b"x-content-type-options", b"nosniff"),
                ]
            await send(message)

        await self.app(scope, receive, with_headers)


def install_web(app: FastAPI, base_map: MapSettings) -> None:
    csp = policy(base_map)
    for name, folder in VENDOR.items():
        files = StaticFiles(directory=WEB_LIBRARIES / folder, check_dir=False)
        app.mount(f"/vendor/{name}", _StrictContent(files, csp), name=f"vendor-{name}")
    app.mount("/dashboard/locales", _StrictContent(StaticFiles(directory=LOCALES), csp), name="locales")
    page = StaticFiles(directory=DASHBOARD, html=True)
    app.mount("/dashboard", _StrictContent(page, csp), name="dashboard")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="Lamplighter API",
            swagger_js_url="/vendor/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url="/vendor/swagger-ui/swagger-ui.css",
            swagger_favicon_url="/vendor/swagger-ui/favicon-32x32.png",
        )

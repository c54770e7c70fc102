"""Tests that call the API: a fresh API key of the asked role, and the API served with a client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from api.app import create_app
from api.server import ApiServer
from controller.auth.credentials import Role
from controller.config import ControllerSettings
from controller.runtime import Controller
from controller.service import ControllerService
from tests.controller.city import running_controller


async def auth_headers(ctl: Controller, role: Role = "admin") -> dict[str, str]:
    _, key = await ctl.auth.create_key(f"test-{role}", role, "tests")
    return {"X-API-Key": key.plaintext}


@asynccontextmanager
async def api_client(ctl: Controller, role: Role = "admin") -> AsyncIterator[httpx.AsyncClient]:
    """The controller's API on a free loopback port, and a client holding a key of `role`."""
    server = ApiServer(create_app(ControllerService(ctl)), "127.0.0.1", 0)
    await server.start()
    try:
        headers = await auth_headers(ctl, role)
        async with httpx.AsyncClient(base_url=server.url, timeout=10, headers=headers) as client:
            yield client
    finally:
        await server.stop()


@asynccontextmanager
async def serving(settings: ControllerSettings) -> AsyncIterator[tuple[Controller, str]]:
    """A controller started from `settings` and its API on a free loopback port: (controller, url)."""
    async with running_controller(settings) as ctl:
        server = ApiServer(create_app(ControllerService(ctl)), "127.0.0.1", 0)
        await server.start()
        try:
            yield ctl, server.url
        finally:
            await server.stop()


def with_api(settings: ControllerSettings, **changes: Any) -> ControllerSettings:
    """The settings with these `[api]` options changed."""
    return settings.model_copy(update={"api": settings.api.model_copy(update=changes)})

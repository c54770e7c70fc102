"""Credentials for tests that call the API: a fresh API key of the asked role, as request headers."""

from __future__ import annotations

from controller.credentials import Role
from controller.runtime import Controller


async def auth_headers(ctl: Controller, role: Role = "admin") -> dict[str, str]:
    _, key = await ctl.auth.create_key(f"test-{role}", role, "tests")
    return {"X-API-Key": key.plaintext}

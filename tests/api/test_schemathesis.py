"""schemathesis over the whole OpenAPI description, against a running controller and simulated city:
generated valid and invalid requests to every operation; none may get a server error (5xx)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from api.app import create_app
from api.server import ApiServer
from tests.api.keys import auth_headers
from tests.controller.city import running_city, running_controller, settings_for

MAX_EXAMPLES = int(os.environ.get("LAMPLIGHTER_FUZZ_EXAMPLES", "15"))
REPORTS = Path(os.environ.get("LAMPLIGHTER_ARTIFACTS", "test-artifacts")) / "schemathesis"


@pytest.mark.timeout(420)  # the fuzzer's own budget is --max-time; the suite's 120 s is for ordinary tests
async def test_no_operation_answers_with_a_server_error(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    # The fuzzer sends hundreds of requests a second with one key: the rate limit would only 429 it.
    settings = settings.model_copy(update={"api": settings.api.model_copy(update={"rate_limit_per_s": 0})})
    async with running_city(settings) as _city, running_controller(settings) as ctl:
        server = ApiServer(create_app(ctl), "127.0.0.1", 0)
        await server.start()
        key = (await auth_headers(ctl, "admin"))["X-API-Key"]
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "schemathesis.cli", "run", f"{server.url}/openapi.json",
                "--header", f"X-API-Key: {key}",
                "--checks", "not_a_server_error",
                "--max-examples", str(MAX_EXAMPLES),
                "--seed", "20261125",
                "--workers", "1",
                "--request-timeout", "10",
                "--max-time", "150",
                # the live event stream never ends by design; its status is covered by test_access
                "--exclude-path", "/api/v1/events",
                "--suppress-health-check", "all",
                "--report", "junit", "--report-dir", str(REPORTS),
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
                env={**os.environ, "NO_COLOR": "1"},
            )  # fmt: skip
            out, _ = await asyncio.wait_for(proc.communicate(), 400)
        finally:
            await server.stop()
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text[-6000:]
    assert "not_a_server_error" in text or "passed" in text.lower(), text[-3000:]

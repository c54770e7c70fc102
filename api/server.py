"""Run an ASGI app with uvicorn inside the current event loop, on a known or free port."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import uvicorn
from fastapi import FastAPI


class _Server(uvicorn.Server):
    # The process owns SIGINT/SIGTERM (it must stop the controller after the API); uvicorn
    # would otherwise re-raise the signal once serving ends and kill the clean shutdown.
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class ApiServer:
    """uvicorn as a task: `await start()`, read `.port` (useful with port 0), `await stop()`."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 0) -> None:
        # X-Forwarded-For is believed only from configured proxies ([api] trusted_proxies, handled
        # by the app): uvicorn's default believes 127.0.0.1, so anything on the host could pick the
        # address its lockout, rate limit and audit record are kept under.
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            lifespan="off",
            access_log=False,
            proxy_headers=False,
        )
        self._server = _Server(config)
        self._task: asyncio.Task[None] | None = None
        self.host = host

    async def start(self) -> None:
        self._task = asyncio.create_task(self._server.serve(), name="api-server")
        while not self._server.started:
            if self._task.done():
                await self._task  # re-raise why it could not start (e.g. port in use)
                raise RuntimeError("API server stopped while starting")
            await asyncio.sleep(0.02)

    @property
    def port(self) -> int:
        sock = self._server.servers[0].sockets[0]
        return int(sock.getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def wait(self) -> None:
        if self._task is not None:
            await self._task

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            await self._task
            self._task = None

"""`lamplighter run` processes for the tests that kill, pause or cut off a controller instance."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import free_port

LAMPLIGHTER = [sys.executable, "-m", "lamplighter"]


class Instance:
    """One `lamplighter run` process; `env`: more LAMPLIGHTER_* settings; `gid`: run in that group
    (the partition test cuts one group's packets to PostgreSQL with iptables' owner match)."""

    def __init__(
        self, config: Path, registry_url: str, log: Path, env: Mapping[str, str], *, gid: int | None = None
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config, self.log, self.gid = config, log, gid
        self.env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "LAMPLIGHTER_DATABASE__URL": registry_url,
            "LAMPLIGHTER_TELEMETRY__URL": f"sqlite+aiosqlite:///{log.with_suffix('.db')}",
            "LAMPLIGHTER_API__PORT": str(self.port),
            **env,
        }
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                *LAMPLIGHTER,
                "run",
                "-c",
                str(self.config),
                env=self.env,
                stdout=out,
                stderr=out,
                group=self.gid,
                extra_groups=[] if self.gid is not None else None,
            )

    async def ready(self, within_s: float = 30.0) -> float:
        """Wait until /healthz answers (200, or 503 "degraded" is not "starting"); returns the
        monotonic time it first did."""
        deadline = time.monotonic() + within_s
        async with httpx.AsyncClient(timeout=1.0) as client:
            while time.monotonic() < deadline:
                assert self.proc is not None
                assert self.proc.returncode is None, self.log.read_text()
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get(f"{self.url}/healthz")).status_code == 200:
                        return time.monotonic()
                await asyncio.sleep(0.05)
        raise AssertionError(f"{self.url} not ready in {within_s} s:\n{self.log.read_text()}")

    async def health(self) -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=2.0) as client:
            body: dict[str, Any] = (await client.get(f"{self.url}/healthz")).json()
            return body

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    async def kill(self) -> None:
        self.signal(signal.SIGKILL)
        assert self.proc is not None
        await self.proc.wait()

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGCONT)  # a paused one cannot stop
            self.proc.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(self.proc.wait(), 20)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


@contextlib.asynccontextmanager
async def stopped_at_exit(*instances: Instance) -> AsyncIterator[None]:
    try:
        yield
    finally:
        await asyncio.gather(*(i.stop() for i in instances))

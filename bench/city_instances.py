"""The `lamplighter run` processes of `make bench-city`: started, waited for, restarted."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench.common import free_port_block
from tests.tsdb import InfluxDB1


@dataclass
class Instance:
    number: int
    port: int
    proc: psutil.Popen
    samples: list[int] = field(default_factory=list)  # RSS

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def spawn(
    i: int, n: int, config: Path, registry: str, influx: InfluxDB1, tmp: Path, port: int, **popen: Any
) -> Instance:
    """`lamplighter run` as instance i of n (`popen`: more for psutil.Popen, e.g. its group)."""
    env = {
        **os.environ,
        "LAMPLIGHTER_DATABASE__URL": registry,
        "LAMPLIGHTER_TELEMETRY__BACKEND": "influxdb",
        "LAMPLIGHTER_TELEMETRY__INFLUXDB__URL": influx.url,
        "LAMPLIGHTER_TELEMETRY__INFLUXDB__WRITE_ENDPOINT": "v1",
        "LAMPLIGHTER_TELEMETRY__INFLUXDB__DATABASE": "city",
        "LAMPLIGHTER_TELEMETRY__INFLUXDB__BUFFER_DIR": str(tmp / f"buffer-{i}"),
        "LAMPLIGHTER_API__PORT": str(port),
        "LAMPLIGHTER_API__RATE_LIMIT_PER_S": "0",
        "LAMPLIGHTER_CLUSTER__INSTANCE": str(i),
        "LAMPLIGHTER_CLUSTER__INSTANCES": str(n),
    }
    log = (tmp / f"instance-{i}.log").open("ab")
    proc = psutil.Popen(
        [sys.executable, "-m", "lamplighter", "run", "-c", str(config)],
        env=env,
        stdout=log,
        stderr=log,
        start_new_session=True,
        **popen,
    )
    return Instance(i, port, proc)


@contextlib.asynccontextmanager
async def instances(
    n: int, config: Path, registry: str, influx: InfluxDB1, tmp: Path
) -> AsyncIterator[list[Instance]]:
    base = free_port_block(n)
    running: list[Instance] = []
    try:
        for i in range(n):
            running.append(spawn(i, n, config, registry, influx, tmp, base + i))
        yield running
    finally:
        for inst in running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(inst.proc.pid, signal.SIGINT)
        for inst in running:
            try:
                inst.proc.wait(60)
            except psutil.TimeoutExpired:
                inst.proc.kill()


async def ready(inst: Instance, tmp: Path, within_s: float = 600) -> float:
    t0 = time.perf_counter()
    async with httpx.AsyncClient(timeout=2) as client:
        while time.perf_counter() - t0 < within_s:
            if inst.proc.poll() is not None:
                raise RuntimeError((tmp / f"instance-{inst.number}.log").read_text()[-3000:])
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(f"{inst.url}/healthz")).status_code == 200:
                    return time.perf_counter() - t0
            await asyncio.sleep(0.1)
    raise RuntimeError(f"instance {inst.number} not ready in {within_s} s")

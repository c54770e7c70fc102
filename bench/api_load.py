"""Load generator for bench_api (its own process): fixed-rate GETs, latency percentiles as JSON."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import time
from urllib.parse import urlsplit

import httpx

HEADERS = {"X-API-Key": os.environ["LAMPLIGHTER_API_KEY"]}
CONNECTIONS = 32


class _Connection:
    """One keep-alive HTTP/1.1 connection on raw asyncio streams. httpx costs ~1 ms of CPU a request,
    which at 500 req/s on two cores made the load generator, not the server, the thing measured."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str) -> None:
        self.reader, self.writer, self.host = reader, writer, host

    async def get(self, path: str) -> int:
        head = f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\nX-API-Key: {HEADERS['X-API-Key']}\r\n\r\n"
        self.writer.write(head.encode())
        status_line = await self.reader.readline()
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        await self.reader.readexactly(length)
        return int(status_line.split()[1])


async def fixed_rate(url: str, paths: list[str], rate: float, seconds: float) -> dict[str, float]:
    """Open loop: request i is due at start + i/rate, whatever happened to the others; latency is
    counted from when it was due, so waiting for a free connection counts against the server."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    idle: asyncio.Queue[_Connection] = asyncio.Queue()
    for _ in range(CONNECTIONS):
        reader, writer = await asyncio.open_connection(host, port)
        idle.put_nowait(_Connection(reader, writer, f"{host}:{port}"))
    latencies: list[float] = []
    errors = 0

    async def one(path: str, due: float) -> None:
        nonlocal errors
        conn = await idle.get()
        try:
            if await conn.get(path) != 200:
                errors += 1
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
            errors += 1
            reader, writer = await asyncio.open_connection(host, port)
            conn = _Connection(reader, writer, conn.host)
        finally:
            idle.put_nowait(conn)
        latencies.append(time.perf_counter() - due)

    tasks = []
    start = time.perf_counter()
    n = int(rate * seconds)
    for i in range(n):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(random.choice(paths), due)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    while not idle.empty():
        idle.get_nowait().writer.close()
    q = statistics.quantiles(latencies, n=100)
    return {
        "requests": n,
        "achieved_rps": n / elapsed,
        "p50_ms": q[49] * 1e3,
        "p99_ms": q[98] * 1e3,
        "errors": errors,
    }


async def sequential(url: str, path: str, times: int) -> dict[str, float]:
    async with httpx.AsyncClient(base_url=url, timeout=60, headers=HEADERS) as client:
        durations, size = [], 0
        for _ in range(times):
            t0 = time.perf_counter()
            r = await client.get(path)
            durations.append(time.perf_counter() - t0)
            size = len(r.content)
    return {"median_ms": statistics.median(durations) * 1e3, "max_ms": max(durations) * 1e3, "bytes": size}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--devices", type=int, required=True)
    p.add_argument("--rate", type=float, default=500)
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--geojson-times", type=int, default=5)
    p.add_argument(
        "--view",
        action="append",
        default=[],
        metavar="NAME=W,S,E,N@ZOOM",
        help="also time /api/v1/map/view for this viewport (sequential, 10 times)",
    )
    args = p.parse_args()
    ids = [f"gw{i // 200:03d}-{i % 200 + 1:03d}" for i in range(args.devices)]
    paths = [f"/api/v1/devices/{d}" for d in ids]
    asyncio.run(fixed_rate(args.url, paths, args.rate, 2.0))  # warm-up, not counted
    status = asyncio.run(fixed_rate(args.url, paths, args.rate, args.seconds))
    geo = asyncio.run(sequential(args.url, "/api/v1/geojson", args.geojson_times))
    views = {}
    for view in args.view:
        name, _, spec = view.partition("=")
        bbox, _, zoom = spec.partition("@")
        views[name] = asyncio.run(sequential(args.url, f"/api/v1/map/view?bbox={bbox}&zoom={zoom}", 10))
    print(json.dumps({"status": status, "geojson": geo, "views": views}))


if __name__ == "__main__":
    main()

"""Load generator for bench_api (its own process): fixed-rate GETs, latency percentiles as JSON."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import time

import httpx

HEADERS = {"X-API-Key": os.environ["LAMPLIGHTER_API_KEY"]}


async def fixed_rate(url: str, paths: list[str], rate: float, seconds: float) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=url, timeout=10, limits=limits, headers=HEADERS) as client:

        async def one(path: str) -> None:
            nonlocal errors
            t0 = time.perf_counter()
            try:
                r = await client.get(path)
                if r.status_code != 200:
                    errors += 1
            except httpx.HTTPError:
                errors += 1
            latencies.append(time.perf_counter() - t0)

        tasks = []
        start = time.perf_counter()
        n = int(rate * seconds)
        for i in range(n):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(random.choice(paths))))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
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
    args = p.parse_args()
    ids = [f"gw{i // 200:03d}-{i % 200 + 1:03d}" for i in range(args.devices)]
    status = asyncio.run(fixed_rate(args.url, [f"/api/v1/devices/{d}" for d in ids], args.rate, args.seconds))
    geo = asyncio.run(sequential(args.url, "/api/v1/geojson", 5))
    print(json.dumps({"status": status, "geojson": geo}))


if __name__ == "__main__":
    main()

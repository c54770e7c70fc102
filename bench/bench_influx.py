"""InfluxDB store throughput against a raw line-protocol writer, and an outage with zero loss.

    python -m bench.bench_influx [--points 200000] [--outage-rate 1000] [--outage-seconds 10]

Both against a private InfluxDB 1.6 (Debian's `influxd`, its own process, data under a temp dir):
- raw: the same points, pre-encoded as line protocol, POSTed to `/write` in batches of 5,000 by one
  httpx client, one request at a time (the floor: no encoding, no buffer, nothing kept);
- store: `InfluxStore.write(readings)` — encoding, batching, gzip, the sender task — timed until the
  server has acknowledged every point (`flush`).
Outage: readings at `--outage-rate`/s through the store; the server is stopped for `--outage-seconds`
and started again; reported: points lost (the database's count against what was written), the
buffer's peak size, and the catch-up time after the restart.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import tempfile
import time
from pathlib import Path

import httpx

from controller.config import InfluxSettings
from controller.telemetry.influx import InfluxStore
from controller.telemetry.lines import SeriesKeys, encode
from drivers.base import Reading
from tests.tsdb import InfluxDB1

DEVICES = 100
BATCH = 5000


def make_readings(n: int, start: dt.datetime) -> list[Reading]:
    out = []
    for i in range(n):
        device = f"lamp-{i % DEVICES:04d}"
        ts = start + dt.timedelta(milliseconds=10 * (i // DEVICES))
        out.append(
            Reading(
                device,
                ts,
                {
                    "dim_level_pct": 60,
                    "lamp_on": True,
                    "power_w": 60.0 + (i % 7) * 0.1,
                    "voltage_v": 229.5,
                    "energy_wh": 1000.0 + i * 0.01,
                },
            )
        )
    return out


def tags() -> dict[str, dict[str, str]]:
    return {
        f"lamp-{d:04d}": {
            "device": f"lamp-{d:04d}",
            "site": "hn",
            "group": f"bench/g{d // 20}",
            "kind": "lamp",
        }
        for d in range(DEVICES)
    }


def count(server: InfluxDB1, db: str) -> int:
    rows = server.query('SELECT count("power_w") FROM "lamplighter"', db)
    return int(rows[0][1]) if rows else 0  # type: ignore[call-overload]


async def raw_writer(server: InfluxDB1, readings: list[Reading], db: str) -> float:
    keys = SeriesKeys("lamplighter", tags())
    batches = [encode(readings[i : i + BATCH], keys)[0] for i in range(0, len(readings), BATCH)]
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        await client.post("/query", params={"q": f'CREATE DATABASE "{db}"'})
        t0 = time.perf_counter()
        for body in batches:
            r = await client.post("/write", params={"db": db, "precision": "ms"}, content=body)
            r.raise_for_status()
        return time.perf_counter() - t0


async def through_store(server: InfluxDB1, readings: list[Reading], db: str, buffer: Path) -> float:
    store = InfluxStore(
        InfluxSettings(
            url=server.url, write_endpoint="v1", database=db, batch_size=BATCH, buffer_dir=str(buffer)
        )
    )
    store.describe_devices(tags())
    await store.open()
    t0 = time.perf_counter()
    for i in range(0, len(readings), 1000):  # as ingest hands them over: batches of up to 1,000
        await store.write(readings[i : i + 1000])
    await store.flush(timeout_s=600)
    elapsed = time.perf_counter() - t0
    await store.close()
    return elapsed


async def outage(server: InfluxDB1, rate: int, down_s: float, buffer: Path) -> None:
    store = InfluxStore(
        InfluxSettings(
            url=server.url,
            write_endpoint="v1",
            database="outage",
            buffer_dir=str(buffer),
            backoff_base_s=0.2,
            backoff_cap_s=2.0,
            timeout_s=2,
        )
    )
    store.describe_devices(tags())
    await store.open()
    written = 0
    peak = 0
    start = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    phase_up, phase_down = 5.0, 5.0 + down_s
    restarted_at: float | None = None
    caught_up: float | None = None
    while loop.time() - t0 < phase_down + 10:
        elapsed = loop.time() - t0
        if phase_up <= elapsed < phase_down and server._proc is not None:
            await asyncio.to_thread(server.stop)
        if elapsed >= phase_down and server._proc is None:
            await asyncio.to_thread(server.start)
            restarted_at = loop.time()
        batch = make_readings(rate // 10, start + dt.timedelta(seconds=written / DEVICES))
        await store.write(batch)
        written += len(batch)
        peak = max(peak, store.buffer.bytes)
        if restarted_at is not None and caught_up is None and not len(store.buffer) and not store.down:
            caught_up = loop.time() - restarted_at
        await asyncio.sleep(0.1)
    await store.flush()
    stored = count(server, "outage")
    await store.close()
    print(f"\nOutage: {rate} points/s for {phase_down + 10:.0f} s, database down {down_s:g} s")
    print(f"  written {written:,}, in the database {stored:,}, lost {written - stored:,}")
    print(f"  buffer peak {peak / 1024:.0f} KB on disk (gzip), dropped {store.buffer.dropped_points}")
    if caught_up is not None:
        print(f"  catch-up: the disk buffer was empty {caught_up:.2f} s after the server started")
    print(f"  refused points {store.rejected_points}; errors {store.errors}")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--points", type=int, default=200_000)
    parser.add_argument("--outage-rate", type=int, default=1000)
    parser.add_argument("--outage-seconds", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = InfluxDB1(Path(tmp) / "influx")
        server.start()
        try:
            start = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
            readings = make_readings(args.points, start)
            raw_s = await raw_writer(server, readings, "raw")
            store_s = await through_store(server, readings, "store", Path(tmp) / "buffer1")
            raw_rate, store_rate = args.points / raw_s, args.points / store_s
            assert count(server, "store") == args.points, "the store lost points"
            print(f"\nInfluxDB 1.6 /write, {args.points:,} points ({DEVICES} devices, 5 fields)")
            print(f"  raw line-protocol writer : {raw_rate:10,.0f} points/s (batches of {BATCH})")
            print(f"  InfluxStore              : {store_rate:10,.0f} points/s (encode, gzip, send, acked)")
            print(f"  ratio store/raw          : {store_rate / raw_rate:.2f}   (goals >= 100,000/s, >= 0.5)")
            await outage(server, args.outage_rate, args.outage_seconds, Path(tmp) / "buffer2")
        finally:
            server.stop()


if __name__ == "__main__":
    asyncio.run(main())

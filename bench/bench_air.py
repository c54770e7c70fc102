"""What the hourly air quality index costs: 2,000 air sensors (the city of `make bench-city`) with
24 hours of readings in the embedded SQLite store, then the air watch's hour — every sensor's last 12
hourly means read back, its VN_AQI computed and stored, the districts' figures and alerts — and the
daily index of every sensor (31 hours read each). The index is computed from the store, off the
reading path: ingest does not pay for it (`make bench-mqtt` is unchanged; see docs/benchmarks.md).

    python -m bench.bench_air [--sensors 2000] [--every-s 120] [--runs 3]

Prints the time of each run (median and spread), the store's rows, and the peak Python memory the
hour allocates (tracemalloc).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path

from controller.air_figures import by_pollutant, hour_end, hourly_means
from controller.air_index import daily_index
from controller.air_settings import AirSettings
from controller.air_watch import AirWatch
from controller.device import Device
from controller.metrics import ControllerMetrics
from controller.telemetry import SqliteTelemetryStore
from drivers.base import Reading
from schedules.astro import AstroClock
from simulators.mqtt_devices import sensor_values

FIELDS = ["pm2_5_ugm3", "pm10_ugm3"]
CLOCK = AstroClock(21.0285, 105.8542, "Asia/Ho_Chi_Minh")


def rows(n: int) -> dict[str, Device]:
    return {
        f"air-{i:04d}": Device(
            id=f"air-{i:04d}",
            site_id="hn",
            link_id=f"broker-{i % 4}",
            unit_id=None,
            address=f"air-{i:04d}",
            profile="env_sensor",
            kind="sensor",
            group_path=f"hanoi/district-{i % 30:02d}/street-{i % 97}",
            latitude=21.0,
            longitude=105.8,
            rated_power_w=None,
            poll_interval_s=60.0,
        )
        for i in range(n)
    }


async def fill(store: SqliteTelemetryStore, ids: list[str], end: dt.datetime, every_s: int) -> int:
    import random

    rng = random.Random(1)
    start = end - dt.timedelta(hours=24)
    steps = int(24 * 3600 / every_s)
    written = 0
    for k in range(steps):
        at = start + dt.timedelta(seconds=k * every_s)
        values = sensor_values(at.astimezone(CLOCK.tz), rng)
        batch = [Reading(d, at, {f: values[f] + (hash(d) % 7) for f in FIELDS}) for d in ids]
        await store.write(batch)
        written += len(batch)
    return written


async def main(sensors: int, every_s: int, runs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteTelemetryStore(f"sqlite+aiosqlite:///{Path(tmp) / 'telemetry.db'}")
        await store.open()
        devices = rows(sensors)
        end = hour_end(dt.datetime.now(dt.UTC), 3600)
        t0 = time.perf_counter()
        written = await fill(store, list(devices), end, every_s)
        print(
            f"store: {written:,} readings of {sensors:,} sensors over 24 h "
            f"({time.perf_counter() - t0:.1f} s to write)"
        )
        watch = AirWatch(
            AirSettings(),
            store,
            devices,
            {"env_sensor": FIELDS},
            set(devices),
            {"hn": CLOCK.tz},
            ControllerMetrics(),
        )
        hour_runs = []
        for _ in range(runs):
            t0 = time.perf_counter()
            await watch.compute(end)
            hour_runs.append(time.perf_counter() - t0)
        tracemalloc.start()
        await watch.compute(end)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        with_index = sum(f.index is not None for f in watch.sensors.values())
        print(
            f"the hour (12 h read back, index computed and stored, {len(watch.districts)} districts): "
            f"median {statistics.median(hour_runs):.2f} s "
            f"(min {min(hour_runs):.2f}, max {max(hour_runs):.2f}); "
            f"{with_index:,} of {sensors:,} sensors with an index; peak memory {peak / 1e6:.1f} MB"
        )
        day_runs = []
        for _ in range(runs):
            t0 = time.perf_counter()
            for d in devices:
                means = by_pollutant(await hourly_means(store, d, FIELDS, end, 24))
                daily_index("vn_aqi", {p: v[::-1] for p, v in means.items()})
            day_runs.append(time.perf_counter() - t0)
        print(
            f"daily index of every sensor (24 h read back each): median {statistics.median(day_runs):.2f} s "
            f"(min {min(day_runs):.2f}, max {max(day_runs):.2f})"
        )
        await store.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sensors", type=int, default=2000)
    parser.add_argument("--every-s", type=int, default=120, help="a reading every … seconds")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.sensors, args.every_s, args.runs))

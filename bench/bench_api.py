"""IOC API latency with 10,000 devices: device status at a fixed rate, and the whole city as GeoJSON.

    python -m bench.bench_api [--devices 10000] [--rate 500] [--seconds 10]

The controller (registry, fleet with a last reading for every device, API on loopback) runs here;
the load comes from `bench.api_load` in its own process. Polling is parked (interval 1 h, no
simulators) so the figures are the API's own. Goals (issue 8): status p99 < 25 ms at 500 req/s;
GeoJSON of 10,000 devices < 300 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from api.app import create_app
from api.server import ApiServer
from bench.common import api_only, write_city
from controller.config import load_config
from controller.runtime import Controller
from controller.service import ControllerService
from drivers.base import Reading

logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
logging.basicConfig(level=logging.ERROR)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "city.toml"
        write_city(config, args.devices, interval_s=3600, data_dir=Path(tmp))
        settings = api_only(load_config(config))  # one client at 500 req/s; no dayBurning storm
        ctl = Controller(settings)
        await ctl.start()
        _, key = await ctl.auth.create_key("bench", "viewer", "bench")  # every request is authenticated
        now = dt.datetime.now(dt.UTC)
        for device_id in ctl.devices:
            ctl.fleet.record_reading(
                Reading(
                    device_id,
                    now,
                    {
                        "dim_level_pct": 60,
                        "lamp_on": True,
                        "power_w": 61.2,
                        "voltage_v": 229.4,
                        "current_a": 0.28,
                        "energy_wh": 1234.5,
                        "temperature_c": 41.0,
                    },
                    {"lamp_failure": False, "driver_fault": False},
                    0,
                )
            )
        # Write the 10,000 new states now: the periodic flush would otherwise land in the measured
        # window at a random point (it builds 10,000 rows on the event loop: p99 ~45 ms that run).
        await ctl.registry.save_states(ctl.fleet.take_dirty_rows())
        server = ApiServer(create_app(ControllerService(ctl)), "127.0.0.1", 0)
        await server.start()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.api_load", "--url", server.url, "--devices", str(args.devices),
            "--rate", str(args.rate), "--seconds", str(args.seconds), stdout=subprocess.PIPE,
            env={**os.environ, "LAMPLIGHTER_API_KEY": key.plaintext},
        )  # fmt: skip
        out, _ = await proc.communicate()
        await server.stop()
        await ctl.stop()
    result = json.loads(out)
    s, g = result["status"], result["geojson"]
    print(f"\nAPI with {args.devices:,} devices (load from its own process, loopback)")
    print(
        f"  GET /api/v1/devices/{{id}} at {args.rate:g}/s for {args.seconds:g} s: "
        f"{s['achieved_rps']:.0f} req/s, p50 {s['p50_ms']:.2f} ms, p99 {s['p99_ms']:.2f} ms, "
        f"{s['errors']} errors   (goal p99 < 25 ms)"
    )
    print(
        f"  GET /api/v1/geojson ({g['bytes'] / 2**20:.1f} MB): median {g['median_ms']:.0f} ms, "
        f"max {g['max_ms']:.0f} ms   (goal < 300 ms)"
    )


if __name__ == "__main__":
    asyncio.run(main())

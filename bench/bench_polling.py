"""Polling throughput: the whole controller vs a bare pymodbus client loop, same simulators, same run.

For each city size: simulators start in their own process (Modbus TCP gateways of 200 lamps);
then, in this process, alternately
  bare       — one AsyncModbusTcpClient per gateway, each looping over its units reading the
               same 14 input registers, nothing decoded or stored;
  controller — lamplighter's Controller with every poll interval 0: pollers, decoding, the
               bounded queue, live state and the SQLite telemetry store.
Reported: readings/s of each and their ratio, this process's CPU time per poll and its ratio.

    python -m bench.bench_polling --lamps 1000 --lamps 10000 [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import tempfile
import time
from pathlib import Path

from pymodbus.client import AsyncModbusTcpClient

from bench.common import UNITS_PER_GATEWAY, percentiles, simulators, write_city
from controller.config import load_config
from controller.runtime import Controller
from lamplighter.event_loop import loop_factory, tune_collector

logging.getLogger("pymodbus").setLevel(logging.CRITICAL)


async def bare_loop(gateways: int, base: int, lamps: int, seconds: float) -> tuple[float, float, list[float]]:
    clients = []
    for g in range(gateways):
        c = AsyncModbusTcpClient("127.0.0.1", port=base + g, timeout=2, retries=0, reconnect_delay=0)
        await c.connect()
        clients.append(c)
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    counts = [0] * gateways

    async def worker(g: int, units: int) -> None:
        i = 0
        while loop.time() < stop_at:
            t = time.perf_counter()
            rsp = await clients[g].read_input_registers(0, count=14, device_id=1 + i % units)
            latencies.append(time.perf_counter() - t)
            if not rsp.isError():
                counts[g] += 1
            i += 1

    cpu0 = time.process_time()
    stop_at = loop.time() + seconds
    units = [min(UNITS_PER_GATEWAY, lamps - g * UNITS_PER_GATEWAY) for g in range(gateways)]
    await asyncio.gather(*(worker(g, units[g]) for g in range(gateways)))
    cpu = time.process_time() - cpu0
    for c in clients:
        c.close()
    total = sum(counts)
    return total / seconds, cpu / max(total, 1), latencies


async def controller_run(config: Path, seconds: float) -> tuple[float, float, int]:
    ctl = Controller(load_config(config))
    await ctl.start()
    await asyncio.sleep(2)  # warm-up: connect every link, fill the pipeline
    stored0 = ctl.metrics.readings_stored._value.get()
    cpu0 = time.process_time()
    await asyncio.sleep(seconds)
    stored = ctl.metrics.readings_stored._value.get() - stored0
    cpu = time.process_time() - cpu0
    failures = sum(
        sum(v for k, v in st.counters.items() if k != "polls_ok") for st in ctl.fleet.devices.values()
    )
    await ctl.stop()
    return stored / seconds, cpu / max(stored, 1), int(failures)


async def bench(lamps: int, seconds: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "city.toml"
        gateways, base = write_city(config, lamps, interval_s=0, data_dir=Path(tmp))
        with simulators(config, base + gateways + 1):
            await bare_loop(gateways, base, lamps, 3)  # warm-up, discarded: the simulators settle
            bare1, bare_cpu1, lat = await bare_loop(gateways, base, lamps, seconds)
            ctl_rate, ctl_cpu, failures = await controller_run(config, seconds)
            bare2, bare_cpu2, _ = await bare_loop(gateways, base, lamps, seconds)
    bare = (bare1 + bare2) / 2
    bare_cpu = (bare_cpu1 + bare_cpu2) / 2
    print(f"\n== {lamps} lamps, {gateways} Modbus TCP gateways, {seconds:g} s per phase ==")
    print(
        f"bare pymodbus loop : {bare:8.0f} reads/s   ({bare1:.0f} before, {bare2:.0f} after; "
        f"client CPU {bare_cpu * 1e6:.0f} µs/read; latency {percentiles(lat)})"
    )
    print(
        f"controller         : {ctl_rate:8.0f} readings/s stored   "
        f"(client CPU {ctl_cpu * 1e6:.0f} µs/reading; poll failures {failures})"
    )
    print(
        f"ratio controller/bare: {ctl_rate / bare:.2f} against the mean of both bare runs, "
        f"{ctl_rate / max(bare1, bare2):.2f} against the faster   (goal >= 0.80)"
    )
    print(f"CPU per reading, controller/bare: {ctl_cpu / bare_cpu:.2f}×   (goal <= 1.30×)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lamps", type=int, action="append", help="city size (repeatable)")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    args = parser.parse_args()
    for lamps in args.lamps or [1000, 10000]:
        tune_collector()  # as `lamplighter run` does, for both loops measured here
        factory = loop_factory() if args.loop == "uvloop" else None
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(bench(lamps, args.seconds))


if __name__ == "__main__":
    main()

"""Polling throughput: the whole controller vs a bare pymodbus client loop, same simulators, same run.

For each city size: simulators start in their own process (Modbus TCP gateways of 200 lamps);
then, in this process, alternately
  bare       — one AsyncModbusTcpClient per gateway, each looping over its units reading the
               same 14 input registers, nothing decoded or stored;
  controller — lamplighter's Controller with every poll interval 0: pollers, decoding, the
               bounded queue, live state and the SQLite telemetry store.
Reported: readings/s of each and their ratio, this process's CPU time per poll and its ratio.

`--stages ROUNDS`: where the controller's CPU a reading goes. The controller runs again with its
stages taken away one after another (fault judging, the state flush, the telemetry store's write,
the live state), down to polling, decoding and the queue, every variant once a round; the median
of each is printed beside the bare loop's. The stages are switched off by replacing their methods
in this process only: no configuration does that, and a controller run so is not one to deploy.

    python -m bench.bench_polling --lamps 1000 --lamps 10000 [--seconds 10] [--stages 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any
from unittest import mock

from pymodbus.client import AsyncModbusTcpClient

from bench.common import UNITS_PER_GATEWAY, percentiles, simulators, write_city
from controller.alerts import AlertService
from controller.config import load_config
from controller.fleet import Fleet
from controller.runtime import Controller
from controller.telemetry.sqlite import SqliteTelemetryStore
from drivers.base import Reading
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


async def controller_run(config: Path, seconds: float) -> tuple[float, float, int, float]:
    """readings/s stored, the process's CPU a reading, poll failures, the loop thread's CPU a reading"""
    ctl = Controller(load_config(config))
    await ctl.start()
    await asyncio.sleep(2)  # warm-up: connect every link, fill the pipeline
    stored0 = ctl.metrics.readings_stored._value.get()
    cpu0, loop_cpu0 = time.process_time(), time.thread_time()
    await asyncio.sleep(seconds)
    stored = ctl.metrics.readings_stored._value.get() - stored0
    cpu, loop_cpu = time.process_time() - cpu0, time.thread_time() - loop_cpu0
    failures = sum(
        sum(v for k, v in st.counters.items() if k != "polls_ok") for st in ctl.fleet.devices.values()
    )
    await ctl.stop()
    return stored / seconds, cpu / max(stored, 1), int(failures), loop_cpu / max(stored, 1)


async def _idle(*_: Any) -> None:
    await asyncio.Event().wait()  # a supervised task that never does its work


async def _discard(*_: Any) -> None:
    return None


def _no_live_state(_fleet: Fleet, _reading: Reading) -> None:
    return None


#: the stages `--stages` takes away, in this order (each run without this one and those before it)
STAGES: tuple[tuple[str, Callable[[], Any]], ...] = (
    ("fault judging", lambda: mock.patch.object(AlertService, "run", _idle)),
    ("state flush", lambda: mock.patch.object(Controller, "_flush_states_forever", _idle)),
    ("telemetry store write", lambda: mock.patch.object(SqliteTelemetryStore, "write", _discard)),
    ("live state", lambda: mock.patch.object(Fleet, "record_reading", _no_live_state)),
)


@contextlib.contextmanager
def without(stages: Sequence[Callable[[], Any]]) -> Iterator[None]:
    with contextlib.ExitStack() as stack:
        for patch in stages:
            stack.enter_context(patch())
        yield


async def stage_costs(config: Path, seconds: float, bare_cpu: float, rounds: int) -> list[str]:
    """The CPU a reading with none, the first, the first two … of STAGES taken away: `rounds`
    rounds, each running every variant once in turn, so a slow minute of the host falls on all of
    them alike; the median of each variant and what it saved against the line above."""
    if not rounds:
        return []
    variants = len(STAGES) + 1
    cpus: list[list[float]] = [[] for _ in range(variants)]
    for _ in range(rounds):
        for k in range(variants):
            for old in config.parent.glob("telemetry.db*"):
                old.unlink()  # each run from an empty store: a store grown by the runs before costs more
            with without([patch for _, patch in STAGES[:k]]):
                _, cpu, _, _ = await controller_run(config, seconds)
            cpus[k].append(cpu)
    lines = [
        f"CPU per reading with the controller's stages taken away one after another "
        f"(median of {rounds} rounds, range in brackets):"
    ]
    before = 0.0
    for k, label in enumerate(["the whole controller", *(f"without {name}" for name, _ in STAGES)]):
        cpu = statistics.median(cpus[k])
        line = (
            f"  {label:<30}: {cpu * 1e6:5.1f} µs [{min(cpus[k]) * 1e6:.0f}–{max(cpus[k]) * 1e6:.0f}] "
            f"({cpu / bare_cpu:.2f}× bare)"
        )
        lines.append(line + (f", {(before - cpu) * 1e6:+5.1f} µs saved" if k else ""))
        before = cpu
    lines.append("  (what is left: polling, decoding, the queue and the ingest loop)")
    return lines


async def bench(lamps: int, seconds: float, stage_rounds: int = 0) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "city.toml"
        gateways, base = write_city(config, lamps, interval_s=0, data_dir=Path(tmp))
        with simulators(config, base + gateways + 1):
            await bare_loop(gateways, base, lamps, 3)  # warm-up, discarded: the simulators settle
            bare1, bare_cpu1, lat = await bare_loop(gateways, base, lamps, seconds)
            ctl_rate, ctl_cpu, failures, loop_cpu = await controller_run(config, seconds)
            bare2, bare_cpu2, _ = await bare_loop(gateways, base, lamps, seconds)
            costs = await stage_costs(config, seconds, (bare_cpu1 + bare_cpu2) / 2, stage_rounds)
    bare = (bare1 + bare2) / 2
    bare_cpu = (bare_cpu1 + bare_cpu2) / 2
    print(f"\n== {lamps} lamps, {gateways} Modbus TCP gateways, {seconds:g} s per phase ==")
    print(
        f"bare pymodbus loop : {bare:8.0f} reads/s   ({bare1:.0f} before, {bare2:.0f} after; "
        f"client CPU {bare_cpu * 1e6:.0f} µs/read; latency {percentiles(lat)})"
    )
    print(
        f"controller         : {ctl_rate:8.0f} readings/s stored   "
        f"(client CPU {ctl_cpu * 1e6:.0f} µs/reading, {loop_cpu * 1e6:.0f} of them in the event loop's "
        f"thread; poll failures {failures})"
    )
    print(
        f"ratio controller/bare: {ctl_rate / bare:.2f} against the mean of both bare runs, "
        f"{ctl_rate / max(bare1, bare2):.2f} against the faster   (goal >= 0.80)"
    )
    print(f"CPU per reading, controller/bare: {ctl_cpu / bare_cpu:.2f}×   (goal <= 1.30×)")
    print("\n".join(costs))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lamps", type=int, action="append", help="city size (repeatable)")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    parser.add_argument(
        "--stages",
        type=int,
        default=0,
        metavar="ROUNDS",
        help="also the CPU a reading without each stage, in this many alternating rounds",
    )
    args = parser.parse_args()
    for lamps in args.lamps or [1000, 10000]:
        tune_collector()  # as `lamplighter run` does, for both loops measured here
        factory = loop_factory() if args.loop == "uvloop" else None
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(bench(lamps, args.seconds, args.stages))


if __name__ == "__main__":
    main()

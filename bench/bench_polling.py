"""Polling throughput: the whole controller vs a bare pymodbus client loop, same simulators, same run.

For each city size: simulators start in their own process (Modbus TCP gateways of 200 lamps);
then, in this process, alternately
  bare       — one AsyncModbusTcpClient per gateway, each looping over its units reading the
               same 14 input registers, nothing decoded or stored;
  controller — lamplighter's Controller with every poll interval 0: pollers, decoding, the
               bounded queue, live state and the SQLite telemetry store.
Reported: readings/s of each and their ratio, this process's CPU time per poll and its ratio.

`--stages ROUNDS`: where the controller's CPU a reading goes. The controller runs again with its
stages taken away one after another (fault judging, the telemetry store's write, the live state),
down to polling, decoding and the queue, every variant once a round; the median
of each is printed beside the bare loop's. The stages are switched off by replacing their methods
in this process only: no configuration does that, and a controller run so is not one to deploy.

`--own-cost ROUNDS`: the controller's own CPU a reading. The same variants again, with every Modbus
client replaced (in this process only) by one that answers each read at once, in one turn of the
event loop, with the registers a simulated lamp serves: no sockets, no pymodbus, no simulators
sharing the cores. What a reading costs then is the controller's alone, and it is set against the
bare loop's CPU a read: the 1.3× goal leaves the controller 0.3 of it. Steadier than `--stages`,
whose every figure carries pymodbus' and the host's noise. Then the one cost of a city's reading
this benchmark's readings do not carry: a device's state row, one flush timed alone.

    python -m bench.bench_polling --lamps 1000 --lamps 10000 [--seconds 10] [--stages 3] [--own-cost 3]
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
from drivers.modbus import ModbusLink
from drivers.profile import load_profile
from lamplighter.event_loop import loop_factory, tune_collector
from simulators.lamp import LampModel, RegisterImage

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


#: the stages `--stages` takes away, in this order (each run without this one and those before it).
#: Not the state flush: every 15 s, it never comes in a run's window (`state_row_costs` times it).
STAGES: tuple[tuple[str, Callable[[], Any]], ...] = (
    ("fault judging", lambda: mock.patch.object(AlertService, "run", _idle)),
    ("telemetry store write", lambda: mock.patch.object(SqliteTelemetryStore, "write", _discard)),
    ("live state", lambda: mock.patch.object(Fleet, "record_reading", _no_live_state)),
)


class _Registers:
    """What the controller reads of a pymodbus response."""

    __slots__ = ("registers",)

    def __init__(self, registers: list[int]) -> None:
        self.registers = registers

    def isError(self) -> bool:  # pymodbus' name
        return False


class AnsweringClient:
    """Stands in for pymodbus' Modbus client in `--own-cost` runs, in this process only: a read is
    answered after one turn of the event loop (as a reply would wake the poller) with the registers
    of a simulated lamp at rest, so no CPU goes to sockets, framing or the simulators."""

    connected = True
    #: set: every read waits for ever, so the pollers stand still (a flush is timed alone)
    silent = False

    def __init__(self) -> None:
        image = RegisterImage(load_profile("lamp_lcu"))  # the profile `write_city`'s lamps have
        lamp = LampModel(unit_id=1, rated_power_w=100.0)
        self.tables = {t: [0] * image.size[t] for t in ("input", "holding")}
        for table, registers in self.tables.items():
            image.fill(table, lamp, registers)

    async def connect(self) -> bool:
        return True

    def close(self) -> None:
        return None

    async def read_input_registers(self, address: int, *, count: int, device_id: int) -> _Registers:
        await asyncio.sleep(0)
        if AnsweringClient.silent:
            await asyncio.Event().wait()
        return _Registers(self.tables["input"][address : address + count])

    async def read_holding_registers(self, address: int, *, count: int, device_id: int) -> _Registers:
        await asyncio.sleep(0)
        return _Registers(self.tables["holding"][address : address + count])


def _answering_client(_link: ModbusLink) -> AnsweringClient:
    return AnsweringClient()


def _answering() -> Any:
    return mock.patch.object(ModbusLink, "_make_client", _answering_client)


@contextlib.contextmanager
def without(stages: Sequence[Callable[[], Any]]) -> Iterator[None]:
    with contextlib.ExitStack() as stack:
        for patch in stages:
            stack.enter_context(patch())
        yield


async def stage_costs(
    config: Path, seconds: float, bare_cpu: float, rounds: int, *, answering: bool = False
) -> list[str]:
    """The CPU a reading with none, the first, the first two … of STAGES taken away: `rounds`
    rounds, each running every variant once in turn, so a slow minute of the host falls on all of
    them alike; the median of each variant and what it saved against the line above.
    `answering`: every Modbus client an AnsweringClient, so the CPU left is the controller's own."""
    if not rounds:
        return []
    variants = len(STAGES) + 1
    cpus: list[list[float]] = [[] for _ in range(variants)]
    rates: list[list[float]] = [[] for _ in range(variants)]
    for _ in range(rounds):
        for k in range(variants):
            for old in config.parent.glob("telemetry.db*"):
                old.unlink()  # each run from an empty store: a store grown by the runs before costs more
            patches = [patch for _, patch in STAGES[:k]] + ([_answering] if answering else [])
            with without(patches):
                rate, cpu, _, _ = await controller_run(config, seconds)
            cpus[k].append(cpu)
            rates[k].append(rate)
    if answering:
        lines = [
            f"The controller's own CPU a reading, its Modbus clients answering at once (no I/O; median "
            f"of {rounds} rounds, range in brackets; against the bare loop's {bare_cpu * 1e6:.0f} µs a "
            f"read, the 1.3× goal leaves it 0.30):"
        ]
    else:
        lines = [
            f"CPU per reading with the controller's stages taken away one after another "
            f"(median of {rounds} rounds, range in brackets):"
        ]
    before = 0.0
    for k, label in enumerate(["the whole controller", *(f"without {name}" for name, _ in STAGES)]):
        cpu = statistics.median(cpus[k])
        line = f"  {label:<30}: {cpu * 1e6:5.1f} µs [{min(cpus[k]) * 1e6:.0f}–{max(cpus[k]) * 1e6:.0f}] "
        if answering:
            line += f"({cpu / bare_cpu:.2f} of a bare read; {statistics.median(rates[k]):,.0f} readings/s)"
        else:
            line += f"({cpu / bare_cpu:.2f}× bare)"
        lines.append(line + (f", {(before - cpu) * 1e6:+5.1f} µs saved" if k else ""))
        before = cpu
    lines.append("  (what is left: polling, decoding, the queue and the ingest loop)")
    return lines


async def state_row_costs(config: Path, runs: int) -> list[str]:
    """What a city's reading costs that this benchmark's do not: its device's state row. Here each
    device is read several times a second and the state flush (every 15 s) never comes in a run's
    window; a city's lamps, read once a minute, bring one row each. Timed alone: the controller
    polls through AnsweringClients until every device has a reading, the pollers are stilled, and
    one flush of every state is timed (the process's CPU and the event loop thread's)."""
    if not runs:
        return []
    costs: list[tuple[float, float]] = []
    for _ in range(runs):
        with without([_answering]):
            ctl = Controller(load_config(config))
            await ctl.start()
            try:
                await asyncio.sleep(2)
                AnsweringClient.silent = True
                await asyncio.sleep(0.5)  # the queue drains into the live state
                rows = sum(1 for st in ctl.fleet.devices.values() if st.last_reading is not None)
                cpu0, loop_cpu0 = time.process_time(), time.thread_time()
                await ctl._flush_states()
                cpu, loop_cpu = time.process_time() - cpu0, time.thread_time() - loop_cpu0
                costs.append((cpu / max(rows, 1), loop_cpu / max(rows, 1)))
            finally:
                AnsweringClient.silent = False
                await ctl.stop()
    cpu = statistics.median(c for c, _ in costs)
    return [
        f"A device's state row, as the flush writes it (a city's reading brings one; median of {runs}, "
        f"{rows:,} rows a flush): {cpu * 1e6:.1f} µs [{min(c for c, _ in costs) * 1e6:.0f}–"
        f"{max(c for c, _ in costs) * 1e6:.0f}], {statistics.median(lc for _, lc in costs) * 1e6:.1f} "
        f"of them in the event loop's thread"
    ]


async def bench(lamps: int, seconds: float, stage_rounds: int = 0, own_rounds: int = 0) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "city.toml"
        gateways, base = write_city(config, lamps, interval_s=0, data_dir=Path(tmp))
        with simulators(config, base + gateways + 1):
            await bare_loop(gateways, base, lamps, 3)  # warm-up, discarded: the simulators settle
            bare1, bare_cpu1, lat = await bare_loop(gateways, base, lamps, seconds)
            ctl_rate, ctl_cpu, failures, loop_cpu = await controller_run(config, seconds)
            bare2, bare_cpu2, _ = await bare_loop(gateways, base, lamps, seconds)
            costs = await stage_costs(config, seconds, (bare_cpu1 + bare_cpu2) / 2, stage_rounds)
            own = await stage_costs(config, seconds, (bare_cpu1 + bare_cpu2) / 2, own_rounds, answering=True)
            own += await state_row_costs(config, own_rounds)
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
    print("\n".join(costs + own))


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
    parser.add_argument(
        "--own-cost",
        type=int,
        default=0,
        metavar="ROUNDS",
        help="also the controller's own CPU a reading, its Modbus clients answering without I/O",
    )
    args = parser.parse_args()
    for lamps in args.lamps or [1000, 10000]:
        tune_collector()  # as `lamplighter run` does, for both loops measured here
        factory = loop_factory() if args.loop == "uvloop" else None
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(bench(lamps, args.seconds, args.stages, args.own_cost))


if __name__ == "__main__":
    main()

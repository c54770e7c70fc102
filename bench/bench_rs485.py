"""RS-485 efficiency: polls/s the controller achieves on a wire-timed bus vs the bus's theoretical maximum.

A bus of 16 lamp controllers on a socat pty pair, simulated with real wire time (11-bit
characters, 3.5-character silences). The controller polls continuously (interval 0) through its
normal path. Theoretical maximum = 1 / (request + response + 2 × 3.5 characters) for the same
frames (8-byte FC04 request, 33-byte response).

Then commands: a `set_level` to all 16 lamps, several times, polls out of the way, written and
read back in one exchange (function 23, as `lamp_lcu` says it answers) and in two (the same profile
without it); each against the same frames' wire time.

    python -m bench.bench_rs485 [--seconds 20] [--baud 9600 --baud 19200]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

from bench.common import percentiles, without_function_23
from controller.commands import Command
from controller.config import load_config
from controller.runtime import Controller
from simulators.lamp import SimLamp
from simulators.modbus_server import BusSpec, ModbusSegment
from simulators.pty import PtyPair
from simulators.wire import WireClock

logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
LAMPS = 16


def write_bus(tmp: str, baud: int, poll_interval_s: float) -> tuple[Path, Path]:
    """(config, the bus's pty path)"""
    port = Path(tmp) / "bus"
    config = Path(tmp) / "bus.toml"
    config.write_text(
        f'[database]\nurl = "sqlite+aiosqlite:///{tmp}/r.db"\n'
        f'[telemetry]\nurl = "sqlite+aiosqlite:///{tmp}/t.db"\n'
        '[[sites]]\nid = "s"\nlatitude = 21.0\nlongitude = 105.8\n'
        f'[[links]]\nid = "bus"\nsite = "s"\nkind = "modbus_rtu"\nport = "{port}"\nbaudrate = {baud}\n'
        "timeout_s = 0.5\nretries = 0\n"
        f'[[device_ranges]]\nid_prefix = "l"\nlink = "bus"\nunit_ids = [1, {LAMPS}]\n'
        'profile = "lamp_lcu"\n'
        f"start = [21.0, 105.8]\nend = [21.0, 105.81]\npoll_interval_s = {poll_interval_s}\n",
        encoding="utf-8",
    )
    return config, port


@contextlib.asynccontextmanager
async def bus_controller(baud: int, poll_interval_s: float, exchanges: int = 1) -> AsyncIterator[Controller]:
    """A controller polling the simulated bus (`exchanges` 2: its lamp_lcu without function 23)."""
    with tempfile.TemporaryDirectory() as tmp:
        config, port = write_bus(tmp, baud, poll_interval_s)
        if exchanges == 2:
            without_function_23(config)
        async with PtyPair(port) as pair:
            lamps = tuple(SimLamp(unit_id=i, rated_power_w=60) for i in range(1, LAMPS + 1))
            segment = ModbusSegment(
                BusSpec(name="bus", port=str(pair.device_end), baudrate=baud, lamps=lamps)
            )
            await segment.start()
            ctl = Controller(load_config(config))
            await ctl.start()
            try:
                await asyncio.sleep(2)  # the first polls done
                yield ctl
            finally:
                await ctl.stop()
                await segment.stop()


async def bench(baud: int, seconds: float) -> None:
    async with bus_controller(baud, 0) as ctl:
        figures = ctl.metrics.polls.link("bus")
        before = figures.ok
        await asyncio.sleep(seconds)
        polls = figures.ok - before
        samples = _poll_durations(ctl)
    achieved = polls / seconds
    wire = WireClock(baud).transaction_s(8, 5 + 2 * 14)
    theory = 1 / wire
    print(
        f"{baud:>6} baud: {achieved:6.2f} polls/s achieved, {theory:6.2f} theoretical "
        f"({wire * 1e3:.1f} ms per poll on the wire) → {achieved / theory:.1%} of the bus (goal >= 90 %); "
        f"each of {LAMPS} lamps every {LAMPS / achieved:.2f} s; poll time {samples}"
    )


async def commands(baud: int, exchanges: int, rounds: int = 5) -> None:
    """A set_level to every lamp of the bus, `rounds` times; polls out of the way (an hour apart)."""
    took: list[float] = []
    confirmed = 0
    async with bus_controller(baud, 3600, exchanges) as ctl:
        assert ctl.dispatcher is not None
        ids = sorted(ctl.devices)
        for r in range(rounds):
            t0 = time.perf_counter()
            rows = await ctl.dispatcher.execute_many(ids, Command(action="set_level", value=20 + r))
            took.append(time.perf_counter() - t0)
            confirmed += sum(row.status == "confirmed" for row in rows)
    per_lamp = statistics.median(took) / LAMPS
    if exchanges == 1:  # function 23, 2 registers each way
        how = "written and read back in one exchange (function 23)"
        wire = WireClock(baud).transaction_s(13 + 4, 5 + 4)
    else:  # function 16 of 2 registers, then function 3 of 2
        how = "written, then read back"
        wire = WireClock(baud).transaction_s(9 + 4, 8) + WireClock(baud).transaction_s(8, 5 + 4)
    print(
        f"{baud:>6} baud: a command {how}: {per_lamp * 1e3:5.1f} ms a lamp (median of {rounds} group "
        f"commands to {LAMPS} lamps, {confirmed} of {rounds * LAMPS} confirmed), {wire * 1e3:.1f} ms "
        "of it on the wire"
    )


def _poll_durations(ctl: Controller) -> str:
    # The histogram keeps buckets, not samples: report its mean instead of percentiles.
    figures = ctl.metrics.polls.link("bus")
    count = sum(figures.buckets)
    return f"mean {figures.seconds / count * 1e3:.1f} ms" if count else percentiles([])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--baud", type=int, action="append")
    args = parser.parse_args()
    for baud in args.baud or [9600, 19200]:
        asyncio.run(bench(baud, args.seconds))
    for baud in args.baud or [9600, 19200]:
        for exchanges in (1, 2):
            asyncio.run(commands(baud, exchanges))


if __name__ == "__main__":
    main()

"""RS-485 efficiency: polls/s the controller achieves on a wire-timed bus vs the bus's theoretical maximum.

A bus of 16 lamp controllers on a socat pty pair, simulated with real wire time (11-bit
characters, 3.5-character silences). The controller polls continuously (interval 0) through its
normal path. Theoretical maximum = 1 / (request + response + 2 × 3.5 characters) for the same
frames (8-byte FC04 request, 33-byte response).

    python -m bench.bench_rs485 [--seconds 20] [--baud 9600 --baud 19200]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import tempfile
from pathlib import Path

from bench.common import percentiles
from controller.config import load_config
from controller.runtime import Controller
from simulators.lamp import SimLamp
from simulators.modbus_server import BusSpec, ModbusSegment
from simulators.pty import PtyPair
from simulators.wire import WireClock

logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
LAMPS = 16


async def bench(baud: int, seconds: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
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
            "start = [21.0, 105.8]\nend = [21.0, 105.81]\npoll_interval_s = 0\n",
            encoding="utf-8",
        )
        async with PtyPair(port) as pair:
            lamps = tuple(SimLamp(unit_id=i, rated_power_w=60) for i in range(1, LAMPS + 1))
            segment = ModbusSegment(
                BusSpec(name="bus", port=str(pair.device_end), baudrate=baud, lamps=lamps)
            )
            await segment.start()
            ctl = Controller(load_config(config))
            await ctl.start()
            await asyncio.sleep(2)
            figures = ctl.metrics.polls.link("bus")
            before = figures.ok
            await asyncio.sleep(seconds)
            polls = figures.ok - before
            samples = _poll_durations(ctl)
            await ctl.stop()
            await segment.stop()
    achieved = polls / seconds
    wire = WireClock(baud).transaction_s(8, 5 + 2 * 14)
    theory = 1 / wire
    print(
        f"{baud:>6} baud: {achieved:6.2f} polls/s achieved, {theory:6.2f} theoretical "
        f"({wire * 1e3:.1f} ms per poll on the wire) → {achieved / theory:.1%} of the bus (goal >= 90 %); "
        f"each of {LAMPS} lamps every {LAMPS / achieved:.2f} s; poll time {samples}"
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


if __name__ == "__main__":
    main()

"""Time to dispatch one group command to many lamps on simulators, with per-link utilisation.

    python -m bench.bench_group_command [--lamps 1000]

Lamps on Modbus TCP gateways of 200 (simulators in their own process). One `set_level` to every lamp
through the controller's one command path: write, read back, record — concurrently across gateways,
one request at a time per gateway. Twice: written and read back in one exchange (function 23, as
`lamp_lcu` says it answers), then in two (the same profile without `write_read_registers`, from a
profiles directory of the config's).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench.common import simulators, without_function_23, write_city
from controller.commands import Command
from controller.config import load_config
from controller.runtime import Controller

logging.getLogger("pymodbus").setLevel(logging.CRITICAL)


async def bench(lamps: int, exchanges: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "city.toml"
        gateways, base = write_city(config, lamps, interval_s=3600, data_dir=Path(tmp))
        if exchanges == 2:
            without_function_23(config)
        with simulators(config, base + gateways + 1):
            ctl = Controller(load_config(config))
            await ctl.start()
            assert ctl.dispatcher is not None
            ids = sorted(ctl.devices)
            await ctl.dispatcher.execute_many(
                ids[:gateways], Command(action="set_level", value=10)
            )  # connect
            t0 = time.perf_counter()
            rows = await ctl.dispatcher.execute_many(ids, Command(action="set_level", value=50))
            elapsed = time.perf_counter() - t0
            await ctl.stop()
    statuses = Counter(r.status for r in rows)
    per_link = lamps / gateways
    how = "write and read-back in one request (function 23)" if exchanges == 1 else "write + read-back"
    print(f"group command to {lamps} lamps on {gateways} gateways: {elapsed:.2f} s ({dict(statuses)})")
    print(
        f"  per gateway: {per_link:.0f} lamps × {exchanges} requests ({how}) in {elapsed:.2f} s "
        f"= {exchanges * per_link / elapsed:.0f} requests/s, {elapsed / per_link * 1e3:.1f} ms per lamp; "
        "gateways work in parallel, so the whole group takes as long as one gateway"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lamps", type=int, default=1000)
    lamps = parser.parse_args().lamps
    for exchanges in (1, 2):
        asyncio.run(bench(lamps, exchanges))


if __name__ == "__main__":
    main()

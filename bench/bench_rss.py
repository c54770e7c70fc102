"""Memory: RSS of the controller process with N configured lamps, polled at their normal interval.

Simulators run in their own process. The controller runs in a child process of its own, so the
figure is the controller's alone: RSS after import, after start (registry mirrored, all links
connected), and after a period of steady polling at a 10 s interval.

    python -m bench.bench_rss [--lamps 10000] [--seconds 40]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import resource
import tempfile
import time
from pathlib import Path

import psutil

from bench.common import simulators, write_city


def _rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


def controller_process(config: str, seconds: float, out: mp.Queue) -> None:  # type: ignore[type-arg]
    import logging

    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    from controller.config import load_config
    from controller.runtime import Controller

    figures: dict[str, float] = {"after_import_mb": _rss_mb()}

    async def run() -> None:
        ctl = Controller(load_config(config))
        t0 = time.perf_counter()
        await ctl.start()
        figures["start_s"] = time.perf_counter() - t0
        figures["after_start_mb"] = _rss_mb()
        await asyncio.sleep(seconds)
        figures["steady_mb"] = _rss_mb()
        figures["readings"] = ctl.metrics.readings_stored._value.get()
        figures["devices_ok"] = ctl.fleet.counts_by_state()["ok"]
        await ctl.stop()

    asyncio.run(run())
    figures["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out.put(figures)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lamps", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=40.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "city.toml"
        gateways, base = write_city(config, args.lamps, interval_s=10, data_dir=Path(tmp))
        with simulators(config, base + gateways + 1):
            ctx = mp.get_context("spawn")  # a fresh interpreter: nothing inherited from this one
            out = ctx.Queue()
            proc = ctx.Process(target=controller_process, args=(str(config), args.seconds, out))
            proc.start()
            figures = out.get(timeout=args.seconds + 300)
            proc.join()
    print(
        f"\n== controller RSS with {args.lamps} configured lamps, {gateways} gateways, 10 s poll interval =="
    )
    print(json.dumps({k: round(v, 1) for k, v in figures.items()}, indent=2))
    print(
        f"RSS after start {figures['after_start_mb']:.0f} MB, steady {figures['steady_mb']:.0f} MB, "
        f"peak {figures['peak_mb']:.0f} MB; "
        f"{(figures['steady_mb'] - figures['after_import_mb']) * 1024 / args.lamps:.1f} KB per lamp "
        f"above the bare interpreter; start-up {figures['start_s']:.1f} s"
    )


if __name__ == "__main__":
    main()

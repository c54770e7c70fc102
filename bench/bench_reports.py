"""What the engineer's reports cost in the API's worker thread: a group's month (energy table per
day with baselines from the sun, faults, availability, Wi-Fi) and a drafted program's preview with
its changes — the pure parts, after the stores have answered. No I/O.

    python -m bench.bench_reports [--lamps 10000] [--aps 500] [--runs 5]

Prints the median and the spread of each over `--runs` runs, and the peak memory of the month.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import time
import tracemalloc
from collections.abc import Callable
from zoneinfo import ZoneInfo

from controller.device import Device
from controller.energy import energy_table, first_window
from controller.monthly_report import assemble
from controller.wifi_figures import HourFigures, WifiSummary, wifi_report
from schedules.astro import AstroClock
from schedules.model import Calendar, Program
from schedules.plan import Plan, Target
from schedules.preview import changes, preview

HANOI = ZoneInfo("Asia/Ho_Chi_Minh")
CLOCK = AstroClock(21.0285, 105.8542, "Asia/Ho_Chi_Minh")
OCT1 = dt.datetime(2026, 10, 1, tzinfo=HANOI)
DAY = dt.timedelta(days=1)


def timed(fn: Callable[[], object], runs: int) -> tuple[float, float, float]:
    spent = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        spent.append(time.perf_counter() - t0)
    return statistics.median(spent), min(spent), max(spent)


def month(lamps: int, aps: int, runs: int) -> None:
    rows = [
        Device(
            id=f"l{i:05d}",
            site_id="hn",
            link_id=f"gw{i // 200}",
            unit_id=1 + i % 200,
            address=str(1 + i % 200),
            profile="lamp_lcu",
            kind="lamp",
            group_path=f"hn/d{i % 10}/s{i % 100}",
            latitude=21.0,
            longitude=105.8,
            rated_power_w=100.0,
            poll_interval_s=60.0,
        )
        for i in range(lamps)
    ]
    first, _ = first_window(OCT1.astimezone(dt.UTC), 86_400, HANOI)
    end = first + 31 * DAY
    days = [first + i * DAY for i in range(31)]
    used = {r.id: dict.fromkeys(days, 650.0) for r in rows}
    burning = {r.id: dict.fromkeys(days, 12.0) for r in rows}
    spans = [
        (f"l{i:05d}", "lampFailure", first + (i % 31) * DAY, first + (i % 31) * DAY + dt.timedelta(hours=5))
        for i in range(0, lamps, 50)
    ]
    hours = {
        f"ap{i}": {
            first + h * dt.timedelta(hours=1): HourFigures(
                mean_clients=12.0, peak_clients=30.0, mean_kbps=800.0
            )
            for h in range(31 * 24)
        }
        for i in range(aps)
    }
    pairs = [(f"ap{i}", "hn/d0") for i in range(aps)]

    def build() -> object:
        table = energy_table("hn", rows, {"hn": CLOCK}, used, first, end, 86_400, per_lamp=False)
        wifi = WifiSummary.of(wifi_report("hn", pairs, hours, {}, [first], end, HANOI)) if aps else None
        return assemble("hn", "2026-10", HANOI, rows, table, burning, spans, wifi)

    tracemalloc.start()
    build()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    median, low, high = timed(build, runs)
    print(
        f"  month of {lamps:,} lamps and {aps:,} access points: {median * 1000:.0f} ms "
        f"({low * 1000:.0f}–{high * 1000:.0f}), peak memory {peak / 2**20:.1f} MB"
    )


def draft(runs: int) -> None:
    nightly = Program.model_validate(
        {
            "id": "n",
            "steps": [
                {"event": "sunset", "level": 100},
                {"at": "23:00", "level": 60},
                {"event": "sunrise", "level": 0},
            ],
        }
    )
    dimmer = Program.model_validate(
        {
            "id": "n",
            "steps": [
                {"event": "sunset", "level": 100},
                {"at": "22:00", "level": 50},
                {"event": "sunrise", "level": 0},
            ],
        }
    )
    city = {"hn": Calendar.model_validate({"id": "c", "default_program": "n"})}
    start = dt.datetime(2026, 11, 30, 12, tzinfo=HANOI)

    def one(days: int) -> Callable[[], object]:
        def run() -> object:
            planned = preview(
                Plan(CLOCK, {"n": nightly}, city),
                Target("hn"),
                start,
                start + days * DAY,
                every=dt.timedelta(minutes=10 if days == 1 else 15),
            )
            drafted = preview(
                Plan(CLOCK, {"n": dimmer}, city),
                Target("hn"),
                start,
                start + days * DAY,
                every=dt.timedelta(minutes=10 if days == 1 else 15),
            )
            return changes(planned, drafted)

        return run

    for days, what in ((1, "a program's 24 h (every 10 min)"), (7, "a calendar's week (every 15 min)")):
        median, low, high = timed(one(days), runs)
        print(f"  draft preview, {what}: {median * 1000:.1f} ms ({low * 1000:.1f}–{high * 1000:.1f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--lamps", type=int, default=10_000)
    parser.add_argument("--aps", type=int, default=500)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(f"Reports, the worker thread's part, {args.runs} runs (median, min–max)")
    month(args.lamps, args.aps, args.runs)
    draft(args.runs)


if __name__ == "__main__":
    main()

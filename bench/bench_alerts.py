"""Fault → alert latency per fault kind, and an alert storm (a feeder trips under 5,000 lamps).

    python -m bench.bench_alerts [--interval 1.0] [--rounds 3] [--storm 5000]

Simulators run in their own process; faults are injected through their control API (what a
technician does). The controller publishes alerts to a private Mosquitto; a subscriber in this
process timestamps each alert message. Latency = message arrival − injection.

Latency: 12 lamps, one per fault kind, polled every `--interval` s; the site is placed where it is
noon now so day burning can happen. Goal: raised within one poll interval + 1 s; comms loss by the
third missed poll (so ≈ 3 intervals + timeout).
Storm: `--storm` lamps on gateways of 200, all lit, polled every 5 s; every lamp on every gateway gets
`lamp_failure` at once. Reported: time until every alert is on MQTT and at a webhook receiver, reading
throughput during the storm against before it, and peak RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import logging
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import psutil
from fastapi import FastAPI, Request, Response

from api.server import ApiServer
from bench.common import simulators, write_city
from controller.commands import Command
from controller.config import load_config
from controller.runtime import Controller
from tests.mosquitto import Mosquitto

logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
logging.basicConfig(level=logging.WARNING)

CASES: list[tuple[str, int | None, str]] = [  # fault, level commanded first, expected alert
    ("lamp_failure", 100, "lampFailure"),
    ("driver_fault", 100, "driverFault"),
    ("relay_fault", 100, "relayFault"),
    ("voltage_sag", None, "supplyVoltageTooLow"),
    ("voltage_surge", None, "supplyVoltageTooHigh"),
    ("over_temperature", 100, "overTemperature"),
    ("corrupt_register", None, "sensorOutOfRange"),
    ("overdrive", 60, "lampPowerTooHigh"),
    ("degraded", 100, "lampPowerTooLow"),
    ("relay_welded", 0, "dayBurning"),
    ("cycling", 100, "cyclingLamp"),
    ("no_response", None, "communicationFailure"),
]
SECRET = "bench-secret-0123456789"


class AlertClock:
    """Subscribes to the alert topic and notes when each (device, kind, event) first arrives."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.seen: dict[tuple[str, str, str], float] = {}
        self.ready = asyncio.Event()

    async def run(self) -> None:
        async with aiomqtt.Client("127.0.0.1", self.port, max_queued_incoming_messages=0) as client:
            await client.subscribe("lamplighter/+/+/alert", qos=1)
            self.ready.set()
            async for message in client.messages:
                doc = json.loads(bytes(message.payload))
                self.seen.setdefault((doc["device_id"], doc["kind"], doc["event"]), time.monotonic())

    def count(self, event: str) -> int:
        return sum(1 for (_, _, e) in self.seen if e == event)


def noon_longitude() -> float:
    now = dt.datetime.now(dt.UTC)
    return round(((12 - now.hour - now.minute / 60) * 15 + 180) % 360 - 180, 3)


async def latency(interval: float, rounds: int, broker: Mosquitto) -> None:
    extra = (
        f"[outbound]\nenabled = true\nport = {broker.port}\nstate_interval_s = 1\n"
        "[alerts]\nsweep_interval_s = 0.5\n"
        '[[alert_thresholds]]\ngroup = "bench"\ncycling_window_s = 10\ncycling_toggles = 5\n'
        "settle_s = 0.5\n"
    )
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "city.toml"
        gateways, base = write_city(
            config,
            len(CASES),
            interval_s=interval,
            data_dir=Path(tmp),
            site=(0.0, noon_longitude()),
            extra=extra,
        )
        control = f"http://127.0.0.1:{base + gateways + 1}"
        with simulators(config, base + gateways + 1):
            clock = AlertClock(broker.port)
            listener = asyncio.create_task(clock.run())
            await clock.ready.wait()
            ctl = Controller(load_config(config))
            await ctl.start()
            assert ctl.dispatcher is not None
            for unit, (_, level, _) in enumerate(CASES, start=1):
                if level is not None:
                    await ctl.dispatcher.execute(
                        f"gw000-{unit:03d}", Command(action="set_level", value=level)
                    )
            await asyncio.sleep(3 * interval)
            raised: dict[str, list[float]] = defaultdict(list)
            cleared: dict[str, list[float]] = defaultdict(list)
            async with httpx.AsyncClient(base_url=control, timeout=5) as sim:
                for _ in range(rounds):
                    clock.seen.clear()
                    await asyncio.sleep(interval * 0.37)  # inject at a different phase each round
                    injected = await inject(sim, True)
                    await wait_for(lambda: clock.count("raised") >= len(CASES), 60)
                    for unit, (_, _, kind) in enumerate(CASES, start=1):
                        key = (f"gw000-{unit:03d}", kind, "raised")
                        if key in clock.seen:
                            raised[kind].append(clock.seen[key] - injected[unit])
                    restored = await inject(sim, False)
                    await wait_for(lambda: clock.count("cleared") >= len(CASES), 60)
                    for unit, (_, _, kind) in enumerate(CASES, start=1):
                        key = (f"gw000-{unit:03d}", kind, "cleared")
                        if key in clock.seen:
                            cleared[kind].append(clock.seen[key] - restored[unit])
                    extra_alerts = {k for k in clock.seen if k[1] != CASES[int(k[0][-3:]) - 1][2]}
                    if extra_alerts:
                        print(f"  unexpected alerts: {sorted(extra_alerts)}")
            await ctl.stop()
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)
    goal = interval + 1
    print(f"\nFault → MQTT alert latency, poll interval {interval:g} s, {rounds} rounds (goal ≤ {goal:g} s)")
    print(f"{'alert':24} {'raised: median':>15} {'max':>7} {'cleared: median':>16} {'max':>7}")
    for _, _, kind in CASES:
        r, c = raised.get(kind, []), cleared.get(kind, [])
        if not r:
            print(f"{kind:24} not raised")
            continue
        print(
            f"{kind:24} {statistics.median(r):14.2f}s {max(r):6.2f}s "
            f"{statistics.median(c) if c else float('nan'):15.2f}s {max(c) if c else float('nan'):6.2f}s"
        )


async def inject(sim: httpx.AsyncClient, active: bool) -> dict[int, float]:
    at: dict[int, float] = {}
    for unit, (fault, _, _) in enumerate(CASES, start=1):
        body = {"link": "gw000", "unit_id": unit, "fault": fault, "active": active}
        (await sim.post("/faults", json=body)).raise_for_status()
        at[unit] = time.monotonic()
    return at


async def wait_for(predicate: Any, limit_s: float) -> None:
    deadline = time.monotonic() + limit_s
    while not predicate():
        if time.monotonic() > deadline:
            print("  (timed out waiting)")
            return
        await asyncio.sleep(0.02)


async def storm(lamps: int, broker: Mosquitto) -> None:
    received: list[int] = []

    async def hook(request: Request) -> Response:
        received.append(len(json.loads(await request.body())["events"]))
        return Response(status_code=204)

    receiver_app = FastAPI()
    receiver_app.add_api_route("/hook", hook, methods=["POST"])
    receiver = ApiServer(receiver_app, "127.0.0.1", 0)
    await receiver.start()
    extra = (
        f"[outbound]\nenabled = true\nport = {broker.port}\nstate_interval_s = 5\n"
        f'[[webhooks]]\nid = "ioc"\nurl = "{receiver.url}/hook"\nsecret = "{SECRET}"\n'
    )
    proc = psutil.Process()
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "city.toml"
        gateways, base = write_city(config, lamps, interval_s=5.0, data_dir=Path(tmp), extra=extra)
        control = f"http://127.0.0.1:{base + gateways + 1}"
        with simulators(config, base + gateways + 1):
            clock = AlertClock(broker.port)
            listener = asyncio.create_task(clock.run())
            await clock.ready.wait()
            ctl = Controller(load_config(config))
            await ctl.start()
            assert ctl.dispatcher is not None
            await ctl.dispatcher.execute_many(sorted(ctl.devices), Command(action="set_level", value=100))
            await asyncio.sleep(8)
            before = ctl.metrics.readings_stored._value.get()
            t_before = time.monotonic()
            await asyncio.sleep(5)
            rate_before = (ctl.metrics.readings_stored._value.get() - before) / (time.monotonic() - t_before)
            rss_before = proc.memory_info().rss
            peak = rss_before
            async with httpx.AsyncClient(base_url=control, timeout=10) as sim:
                t0 = time.monotonic()
                for g in range(gateways):
                    body = {"fault": "lamp_failure", "active": True}
                    (await sim.post(f"/links/gw{g:03d}/faults", json=body)).raise_for_status()
                tripped = time.monotonic() - t0
                stored0 = ctl.metrics.readings_stored._value.get()
                while clock.count("raised") < lamps or sum(received) < lamps:
                    peak = max(peak, proc.memory_info().rss)
                    if time.monotonic() - t0 > 120:
                        break
                    await asyncio.sleep(0.05)
                all_in = time.monotonic() - t0
                rate_storm = (ctl.metrics.readings_stored._value.get() - stored0) / (all_in - tripped)
            arrivals = sorted(v - t0 for (_, _, e), v in clock.seen.items() if e == "raised")
            await ctl.stop()
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)
    await receiver.stop()
    q = statistics.quantiles(arrivals, n=100) if len(arrivals) > 2 else [float("nan")] * 99
    print(f"\nAlert storm: {lamps} lamps, poll interval 5 s, lamp_failure on {gateways} gateways at once")
    print(f"  injection took {tripped:.2f} s (control API, one call per gateway)")
    print(f"  MQTT alerts: {clock.count('raised')}/{lamps}")
    print(f"  webhook events: {sum(received)}/{lamps} in {len(received)} POSTs")
    print(f"  all delivered {all_in:.2f} s after the trip; per alert p50 {q[49]:.2f} s, p99 {q[98]:.2f} s")
    print(f"  readings stored/s: {rate_before:,.0f} before, {rate_storm:,.0f} during the storm")
    print(f"  RSS {rss_before / 2**20:.0f} MB before, peak {peak / 2**20:.0f} MB during")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--storm", type=int, default=5000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        broker = Mosquitto(Path(tmp) / "mosquitto")
        broker.start()
        try:
            await latency(args.interval, args.rounds, broker)
            if args.storm:
                await storm(args.storm, broker)
        finally:
            broker.stop()


if __name__ == "__main__":
    asyncio.run(main())

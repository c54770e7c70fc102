"""MQTT ingest: the full pipeline (decode → live state → store) vs a bare aiomqtt subscriber.

A private Mosquitto; a publisher in its own process sends N sensor messages for 1,000 devices as fast
as the broker takes them. In the same run, at QoS 0 and QoS 1:
  bare       — one aiomqtt subscriber counting messages, nothing decoded;
  controller — lamplighter's Controller with an MQTT link: JSON decoding by profile, the bounded
               queue, live state and the SQLite telemetry store.
Rate = messages (readings stored) / time from the first to the last.

    python -m bench.bench_mqtt [--messages 50000]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiomqtt

from controller.config import load_config
from controller.runtime import Controller
from tests.mosquitto import Mosquitto
from tests.waiting import until

DEVICES = 1000


def publisher(port: int, count: int, qos: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.mqtt_publisher",
            "--port",
            str(port),
            "--count",
            str(count),
            "--devices",
            str(DEVICES),
            "--qos",
            str(qos),
        ]
    )


async def bare(port: int, count: int, qos: int) -> float:
    async with aiomqtt.Client("127.0.0.1", port, identifier=f"bare-{qos}", clean_session=True) as client:
        await client.subscribe("city/env/+/telemetry", qos=qos)
        pub = publisher(port, count, qos)
        n = 0
        first = last = 0.0
        try:
            async with asyncio.timeout(120):
                async for _ in client.messages:
                    last = time.perf_counter()
                    if n == 0:
                        first = last
                    n += 1
                    if n == count:
                        break
        except TimeoutError:
            pass
        pub.wait()
    return n / (last - first) if last > first else 0.0


def write_config(tmp: Path, port: int, qos: int) -> Path:
    lines = [
        f'[database]\nurl = "sqlite+aiosqlite:///{tmp}/r{qos}.db"\n[telemetry]\nurl = "sqlite+aiosqlite:///{tmp}/t{qos}.db"',
        "[poller]\nqueue_size = 20000\nbatch_size = 5000",
        '[[sites]]\nid = "bench"\nlatitude = 21.0\nlongitude = 105.8',
        f'[[links]]\nid = "broker"\nsite = "bench"\nkind = "mqtt"\nhost = "127.0.0.1"\nport = {port}\n'
        f"qos = {qos}\npersistent_session = false\nmax_queued_messages = 100000",
    ]
    for i in range(DEVICES):
        lines.append(
            f'[[devices]]\nid = "s{i:05d}"\nlink = "broker"\nprofile = "env_sensor"\n'
            "latitude = 21.0\nlongitude = 105.8"
        )
    path = tmp / f"mqtt{qos}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


async def controller(tmp: Path, port: int, count: int, qos: int) -> tuple[float, int, int]:
    ctl = Controller(load_config(write_config(tmp, port, qos)))
    await ctl.start()
    link = ctl.drivers["broker"]
    async with asyncio.timeout(30):
        await until(lambda: link.stats.connected)
    stored = ctl.metrics.readings_stored
    pub = publisher(port, count, qos)
    first = last = 0.0
    deadline = time.perf_counter() + 120
    while stored._value.get() < count and time.perf_counter() < deadline:
        await asyncio.sleep(0.01)
        if not first and stored._value.get() > 0:
            first = time.perf_counter()
        last = time.perf_counter()
    pub.wait()
    n = int(stored._value.get())
    shed = link.stats.shed  # type: ignore[attr-defined]
    await ctl.stop()
    return (n / (last - first) if last > first else 0.0), n, shed


async def main(count: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        broker = Mosquitto(Path(tmp) / "mosquitto")
        broker.start()
        try:
            for qos in (0, 1):
                b = await bare(broker.port, count, qos)
                c, n, shed = await controller(Path(tmp), broker.port, count, qos)
                print(
                    f"QoS {qos}: bare aiomqtt {b:8.0f} msg/s | controller {c:8.0f} readings/s stored "
                    f"({n}/{count} stored, {shed} shed) | ratio {c / b if b else 0:.2f}  "
                    "(goals: >= 10,000/s, >= 0.7)"
                )
        finally:
            broker.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=50_000)
    asyncio.run(main(parser.parse_args().messages))

"""MQTT resilience: a broker restart during QoS 1 ingest, and a sustained overload.

restart  — a resilient publisher sends QoS 1 messages at a steady rate (each numbered); the
           private Mosquitto (with persistence) is stopped for 2 s mid-stream and started again.
           Reported: messages the broker acknowledged, distinct ones stored by the controller,
           lost (acknowledged but never stored), and the controller's reconnect time.
overload — three publishers send QoS 0 as fast as they can for N seconds at a controller whose
           inbound queue holds 10,000 messages. Reported: peak RSS, messages stored, shed, no crash.

    python -m bench.bench_mqtt_resilience [--overload-seconds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import psutil
from sqlalchemy import text

from bench.bench_mqtt import DEVICES, write_config
from controller.config import load_config
from controller.runtime import Controller
from tests.mosquitto import Mosquitto
from tests.waiting import until


async def restart_during_ingest(
    tmp: Path, broker: Mosquitto, count: int = 10_000, rate: float = 1000
) -> None:
    config = (
        write_config(tmp, broker.port, 1)
        .read_text()
        .replace("persistent_session = false", "persistent_session = true")
    )
    path = tmp / "restart.toml"
    path.write_text(config)
    ctl = Controller(load_config(path))
    await ctl.start()
    link = ctl.drivers["broker"]
    await until(lambda: link.stats.connected, within_s=30)
    pub = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.mqtt_publisher",
        "--port",
        str(broker.port),
        "--count",
        str(count),
        "--devices",
        str(DEVICES),
        "--resilient-rate",
        str(rate),
        stdout=asyncio.subprocess.PIPE,
    )
    await asyncio.sleep(count / rate / 3)
    broker.stop()
    await asyncio.sleep(2)
    broker.start()
    restarted = time.perf_counter()
    await until(lambda: link.stats.connected, within_s=60)
    reconnect_s = time.perf_counter() - restarted
    out, _ = await pub.communicate()
    acked = int(out.decode().strip().splitlines()[-1])
    stored = ctl.metrics.readings_stored
    await until(lambda: stored._value.get() >= acked, within_s=60, what="all acknowledged messages stored")
    await ctl.stop()
    store = ctl.store
    await store.open()
    async with store.engine.connect() as conn:  # type: ignore[attr-defined]
        distinct = (
            await conn.execute(
                text("SELECT COUNT(DISTINCT json_extract(doc, '$.illuminance_lx')) FROM telemetry")
            )
        ).scalar()
    await store.close()
    print(
        f"broker restart during QoS 1 ingest: {acked} acknowledged, {distinct} distinct stored "
        f"({int(stored._value.get())} incl. redeliveries), lost {acked - int(distinct or 0)} (goal 0); "
        f"controller reconnected {reconnect_s:.2f} s after the broker came back"
    )


async def overload(tmp: Path, broker: Mosquitto, seconds: float) -> None:
    path = write_config(tmp, broker.port, 0)
    path.write_text(path.read_text().replace("max_queued_messages = 100000", "max_queued_messages = 10000"))
    ctl = Controller(load_config(path))
    await ctl.start()
    link = ctl.drivers["broker"]
    await until(lambda: link.stats.connected, within_s=30)
    me = psutil.Process()
    peak = me.memory_info().rss
    publishers: list[asyncio.subprocess.Process] = []
    deadline = time.perf_counter() + seconds
    sent = 0
    while time.perf_counter() < deadline:
        publishers = [p for p in publishers if p.returncode is None]
        while len(publishers) < 3:
            publishers.append(
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "bench.mqtt_publisher",
                    "--port",
                    str(broker.port),
                    "--count",
                    "20000",
                    "--devices",
                    str(DEVICES),
                )
            )
            sent += 20000
        peak = max(peak, me.memory_info().rss)
        await asyncio.sleep(0.5)
    for p in publishers:
        if p.returncode is None:
            p.terminate()
        await p.wait()
    stored = int(ctl.metrics.readings_stored._value.get())
    shed = link.stats.shed  # type: ignore[attr-defined]
    await ctl.stop()
    print(
        f"overload {seconds:g} s (3 publishers, QoS 0, as fast as they go): ~{sent} offered, "
        f"{stored} stored, {shed} shed by the bounded queue, peak controller RSS {peak / 2**20:.0f} MB "
        "(goal < 300 MB), no crash"
    )


async def main(overload_seconds: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        broker = Mosquitto(Path(tmp) / "mosquitto")
        broker.start()
        try:
            await restart_during_ingest(Path(tmp), broker)
            await overload(Path(tmp), broker, overload_seconds)
        finally:
            broker.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--overload-seconds", type=float, default=60.0)
    asyncio.run(main(parser.parse_args().overload_seconds))

"""Publish N sensor messages as fast as the broker takes them (run as its own process by bench_mqtt)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import time

import aiomqtt

logging.getLogger("aiomqtt").setLevel(logging.ERROR)


async def publish(port: int, count: int, devices: int, qos: int) -> None:
    body = {
        "pm": {"pm2_5": 35.5, "pm10": 60},
        "climate": {"temperature": 27.3, "humidity": 81},
        "noise_dba": 62.5,
        "lux": 15,
    }
    async with aiomqtt.Client(
        "127.0.0.1", port, max_inflight_messages=1000, max_queued_outgoing_messages=0
    ) as c:
        c.pending_calls_threshold = 10_000
        chunk = 500
        for start in range(0, count, chunk):
            await asyncio.gather(
                *(
                    c.publish(
                        f"city/env/s{i % devices:05d}/telemetry", json.dumps(dict(body, lux=i)), qos=qos
                    )
                    for i in range(start, min(count, start + chunk))
                )
            )


async def publish_resilient(port: int, count: int, devices: int, rate: float) -> None:
    """QoS 1, one at a time; across a broker restart, reconnect and resend what was not acknowledged.

    Prints how many messages the broker acknowledged (each exactly once, by its `lux` sequence).
    """
    body = {
        "pm": {"pm2_5": 35.5, "pm10": 60},
        "climate": {"temperature": 27.3, "humidity": 81},
        "noise_dba": 62.5,
    }
    i = 0
    start = time.perf_counter()
    while i < count:
        try:
            async with aiomqtt.Client(
                "127.0.0.1", port, identifier="bench-publisher", clean_session=False
            ) as c:
                while i < count:
                    payload = json.dumps(dict(body, lux=i))
                    await c.publish(
                        f"city/env/s{i % devices:05d}/telemetry", payload, qos=1
                    )  # waits for PUBACK
                    i += 1
                    ahead = i / rate - (time.perf_counter() - start)
                    if ahead > 0:
                        await asyncio.sleep(ahead)
        except aiomqtt.MqttError:
            await asyncio.sleep(0.2)
    print(i, flush=True)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--devices", type=int, required=True)
    p.add_argument("--qos", type=int, default=0)
    p.add_argument("--resilient-rate", type=float, default=0.0, help="QoS 1 at this rate, surviving restarts")
    a = p.parse_args()
    if a.resilient_rate:
        asyncio.run(publish_resilient(a.port, a.count, a.devices, a.resilient_rate))
    else:
        asyncio.run(publish(a.port, a.count, a.devices, a.qos))


if __name__ == "__main__":
    main()

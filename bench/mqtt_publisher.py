"""Publish N sensor messages as fast as the broker takes them (run as its own process by bench_mqtt)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging

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


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--devices", type=int, required=True)
    p.add_argument("--qos", type=int, default=0)
    a = p.parse_args()
    asyncio.run(publish(a.port, a.count, a.devices, a.qos))


if __name__ == "__main__":
    main()

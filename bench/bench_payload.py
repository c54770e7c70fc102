"""Decode cost per reading: the richer payload paths (a list item by a key's value, numbers as
strings, a zone-less local time) against simple dotted paths, in one process, no I/O.

    python -m bench.bench_payload [--messages 100000]

The simple case is the shipped `env_sensor` profile (six numeric fields at dotted paths, epoch
seconds); the rich case a community air-quality node (five values picked from a list by
`value_type`, all as strings, a local ISO time read in Asia/Ho_Chi_Minh).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from datetime import UTC, datetime

from drivers.payload import MqttLayout, decode_json
from drivers.profile import load_profile

VALUES = "sensordatavalues"
RICH = MqttLayout.model_validate(
    {
        "telemetry_topic": "airrohr/{device}/data",
        "timestamp_path": "ts",
        "timestamp_zone": "Asia/Ho_Chi_Minh",
        "fields": [
            {"field": "pm10_ugm3", "path": f"{VALUES}[value_type=P1].value", "max": 2000},
            {"field": "pm2_5_ugm3", "path": f"{VALUES}[value_type=P2].value", "max": 1000},
            {"field": "air_temperature_c", "path": f"{VALUES}[value_type=temperature].value", "max": 70},
            {"field": "humidity_pct", "path": f"{VALUES}[value_type=humidity].value", "max": 100},
            {"field": "pressure_hpa", "path": f"{VALUES}[value_type=pressure].value"},
        ],
    }
)
RICH_MESSAGE = json.dumps(
    {
        "esp8266id": "1234",
        "ts": "2026-11-30 19:00:00",
        VALUES: [
            {"value_type": t, "value": v}
            for t, v in (("P1", "23.40"), ("P2", "11.10"), ("temperature", "26.5"), ("humidity", "81.0"),
                         ("pressure", "1009.8"), ("signal", "-71"))
        ],
    }
).encode()  # fmt: skip
SIMPLE_MESSAGE = json.dumps(
    {
        "ts": 1795000000,
        "pm": {"pm2_5": 35.5, "pm10": 60},
        "climate": {"temperature": 27.25, "humidity": 81},
        "noise_dba": 62.5,
        "lux": 0,
    }
).encode()


def per_message_us(layout: MqttLayout, message: bytes, n: int, runs: int = 5) -> list[float]:
    now = datetime.now(UTC)
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        for _ in range(n):
            decode_json(layout, message, now)
        out.append((time.perf_counter() - started) / n * 1e6)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=100_000)
    args = parser.parse_args()
    simple_layout = load_profile("env_sensor").mqtt
    assert simple_layout is not None
    _, values, rejected = decode_json(RICH, RICH_MESSAGE, datetime.now(UTC))
    assert not rejected, rejected
    assert len(values) == 5
    simple = per_message_us(simple_layout, SIMPLE_MESSAGE, args.messages)
    rich = per_message_us(RICH, RICH_MESSAGE, args.messages)
    print(f"\nPayload decode, {args.messages:,} messages × 5 runs (median, min–max µs per message)")
    for name, runs in (("simple paths (env_sensor)", simple), ("list-by-key, strings, local time", rich)):
        print(f"  {name:34} {statistics.median(runs):6.1f} µs  ({min(runs):.1f}–{max(runs):.1f})")


if __name__ == "__main__":
    main()

"""A city across controller instances: 50,000 lamps + 2,000 sensors + 500 access points, 1 vs 3.

    python -m bench.bench_city [--lamps 50000] [--sensors 2000] [--aps 500]
                               [--instances 1 --instances 3] [--seconds 60]

Everything real, on loopback: the simulators in their own process (Modbus TCP gateways of 200
lamps; every sensor and access point its own MQTT connection), a private Mosquitto, a private
InfluxDB 1.x (the shared telemetry store), a fresh PostgreSQL database (the shared registry), and N
`lamplighter run` processes with `[cluster] instances = N`, the MQTT link in a shared subscription
group. Lamps are polled every 60 s (`--lamp-interval`), MQTT devices publish every 10 s: the load
a city of this size puts on its controllers, not their ceiling (`make bench-polling` measures that).

Reported per instance count, over a window after a warm-up:
  polls/s and MQTT readings/s taken in (against what the city sends), telemetry points/s stored;
  CPU (% of one core) and RSS of each instance, and of the simulators, broker, InfluxDB and
  PostgreSQL; the API's p99 for one device's status at 200 req/s and the whole city as GeoJSON,
  from instance 0; then a schedule for the whole city put through instance 0: how long until every
  lamp confirmed its level, and how many commands each instance sent (each lamp exactly once).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import signal
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
from prometheus_client.parser import text_string_to_metric_families

from bench import city_faults
from bench.city_instances import Instance, instances, ready, spawn
from bench.common import simulators, write_city
from controller.auth.store import AuthStore
from controller.db import create_engine
from tests.controller.test_leases import can_cut_packets, packets_to_postgres_dropped
from tests.mosquitto import Mosquitto
from tests.postgres import fresh_database
from tests.tsdb import InfluxDB1

LAMP_INTERVAL_S = 60.0
MQTT_INTERVAL_S = 10.0  # the simulators' default `[simulator] mqtt_interval_s`
WARMUP_S = 30.0
API_RATE = 200.0
#: map viewports (bench/common.py's street grid: 20 streets a row, rows 330 m apart)
VIEWS = {"district": "105.78,21.0,105.80,21.02@14", "street": "105.780,21.000,105.785,21.003@17"}


def mqtt_devices(broker: Mosquitto, sensors: int, aps: int) -> str:
    parts = [
        f'[[links]]\nid = "mqtt"\nsite = "bench"\nkind = "mqtt"\nhost = "127.0.0.1"\nport = {broker.port}\n'
        'shared_group = "lamplighter"\nmax_queued_messages = 20000\n'
    ]
    for i in range(sensors):
        parts.append(
            f'[[devices]]\nid = "env-{i:05d}"\nlink = "mqtt"\nprofile = "env_sensor"\ngroup = "env"\n'
            f"latitude = {21.0 + i * 1e-5:.5f}\nlongitude = 105.8\n"
        )
    for i in range(aps):
        parts.append(
            f'[[devices]]\nid = "ap-{i:05d}"\nlink = "mqtt"\nprofile = "wifi_ap"\ngroup = "wifi"\n'
            f"latitude = {21.0 + i * 1e-5:.5f}\nlongitude = 105.81\n"
        )
    return "\n".join(parts)


def _cpu(p: psutil.Process) -> float:
    """CPU seconds of a process and its children, those still running and those ended."""
    t = p.cpu_times()
    total = t.user + t.system + t.children_user + t.children_system
    for child in p.children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            c = child.cpu_times()
            total += c.user + c.system
    return total


def postmaster() -> psutil.Process:
    """PostgreSQL's main process: its backends come and go as connections do."""
    for p in psutil.process_iter(["name"]):
        parent = p.parent()
        if (p.info["name"] or "").startswith("postgres") and (
            parent is None or not parent.name().startswith("postgres")
        ):
            return p
    raise RuntimeError("no PostgreSQL server process here")


def scrape(url: str, key: str) -> dict[str, float]:
    """The instance's counters that matter here, summed over their labels."""
    body = httpx.get(f"{url}/metrics", headers={"X-API-Key": key}, timeout=30).text
    out: dict[str, float] = defaultdict(float)
    for family in text_string_to_metric_families(body):
        for s in family.samples:
            if s.name == "lamplighter_polls_total":
                ok = s.labels["result"] == "ok"
                out["polls_ok" if ok else "polls_failed"] += s.value
            elif s.name == "lamplighter_readings_stored_total":
                out["stored"] += s.value
            elif s.name == "lamplighter_commands_total" and s.labels.get("action") == "set_level":
                out[f"set_level_{s.labels['status']}"] += s.value
            elif s.name == "lamplighter_telemetry_points_written_total":
                out["points_written"] += s.value
            elif s.name.startswith("lamplighter_gc_pause_seconds_") and not s.name.endswith("_bucket"):
                out[f"gc{s.labels['generation']}_{s.name.rpartition('_')[2]}"] += s.value  # _count, _sum
            elif s.name == "lamplighter_event_loop_lag_seconds_bucket":
                out[f"lag_le_{s.labels['le']}"] += s.value
    return dict(out)


async def api_load(url: str, key: str, lamps: int, seconds: float) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "bench.api_load", "--url", url, "--devices", str(lamps)),
        *("--rate", str(API_RATE), "--seconds", str(seconds), "--geojson-times", "3"),
        *(f"--view={name}={bbox}" for name, bbox in VIEWS.items()),
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "LAMPLIGHTER_API_KEY": key},
    )
    out, _ = await proc.communicate()
    result: dict[str, Any] = json.loads(out)
    return result


@contextlib.contextmanager
def servers(tmp: Path) -> Iterator[tuple[Mosquitto, InfluxDB1]]:
    broker = Mosquitto(tmp / "mosquitto")
    influx = InfluxDB1(tmp / "influx")
    broker.start()
    influx.start()
    try:
        yield broker, influx
    finally:
        influx.stop()
        broker.stop()


async def put_schedule(url: str, key: str) -> None:
    async with httpx.AsyncClient(base_url=url, headers={"X-API-Key": key}, timeout=120) as api:
        for path, body in (
            ("/api/v1/schedules/bench-flat", {"id": "bench-flat", "steps": [{"at": "00:00", "level": 35}]}),
            ("/api/v1/calendars/bench", {"id": "bench", "default_program": "bench-flat"}),
            ("/api/v1/groups/bench/calendar", {"calendar": "bench"}),
        ):
            answer = await api.put(path, json=body)
            if answer.is_error:
                print(answer.text, flush=True)
            answer.raise_for_status()


async def run(
    n: int, lamps: int, sensors: int, aps: int, seconds: float, lamp_interval_s: float, with_faults: bool
) -> None:
    with tempfile.TemporaryDirectory() as tmp_name, servers(Path(tmp_name)) as (broker, influx):
        tmp = Path(tmp_name)
        config = tmp / "city.toml"
        gateways, base = write_city(
            config,
            lamps,
            interval_s=lamp_interval_s,
            data_dir=tmp,
            extra=mqtt_devices(broker, sensors, aps),
            streets=True,
        )
        sent_per_s = lamps / lamp_interval_s + (sensors + aps) / MQTT_INTERVAL_S
        print(
            f"\n== {n} instance(s): {lamps:,} lamps on {gateways} gateways (polled every "
            f"{lamp_interval_s:g} s), {sensors:,} sensors + {aps:,} APs over MQTT (every "
            f"{MQTT_INTERVAL_S:g} s): {sent_per_s:,.0f} readings/s offered ==",
            flush=True,
        )
        t0 = time.perf_counter()
        with simulators(config, base + gateways + 1) as sim_popen:
            print(f"simulators up in {time.perf_counter() - t0:.0f} s", flush=True)
            sim = psutil.Process(sim_popen.pid)
            broker_p = psutil.Process(broker._proc.pid)  # type: ignore[union-attr]
            influx_p = psutil.Process(influx._proc.pid)  # type: ignore[union-attr]
            async with fresh_database() as registry, instances(n, config, registry, influx, tmp) as insts:
                starts = await asyncio.gather(*(ready(i, tmp) for i in insts))
                print(f"instances answering after {', '.join(f'{s:.0f} s' for s in starts)}", flush=True)
                auth = AuthStore(create_engine(registry))
                _, new_key = await auth.create_key("bench", "admin", "bench")
                key = new_key.plaintext
                await auth.engine.dispose()
                await asyncio.sleep(WARMUP_S)

                others = {"simulators": [sim], "mosquitto": [broker_p], "influxd": [influx_p]}
                others["postgres"] = [postmaster()]
                before = [await asyncio.to_thread(scrape, i.url, key) for i in insts]
                cpu0 = [_cpu(i.proc) for i in insts]
                other0 = {k: sum(_cpu(p) for p in ps) for k, ps in others.items()}
                w0 = time.perf_counter()
                api_task = asyncio.create_task(api_load(insts[0].url, key, lamps, min(20.0, seconds / 2)))
                while time.perf_counter() - w0 < seconds:
                    for inst in insts:
                        inst.samples.append(inst.proc.memory_info().rss)
                    await asyncio.sleep(2)
                window = time.perf_counter() - w0
                after = [await asyncio.to_thread(scrape, i.url, key) for i in insts]
                cpu1 = [_cpu(i.proc) for i in insts]
                other1 = {k: sum(_cpu(p) for p in ps) for k, ps in others.items()}
                api = await api_task

                def rate(k: str, i: int) -> float:
                    return (after[i].get(k, 0) - before[i].get(k, 0)) / window

                print(f"window {window:.0f} s:")
                for i, inst in enumerate(insts):
                    print(
                        f"  instance {i}: polls {rate('polls_ok', i):7,.0f}/s ok "
                        f"({rate('polls_failed', i):.1f}/s failed), "
                        f"stored {rate('stored', i):7,.0f} readings/s, "
                        f"points written {rate('points_written', i):7,.0f}/s, "
                        f"CPU {100 * (cpu1[i] - cpu0[i]) / window:5.1f} %, "
                        f"RSS {inst.samples[-1] / 2**20:4.0f} MB (peak {max(inst.samples) / 2**20:.0f})"
                    )
                polls = sum(rate("polls_ok", i) for i in range(n))
                stored = sum(rate("stored", i) for i in range(n))
                mqtt_sent = (sensors + aps) / MQTT_INTERVAL_S
                print(
                    f"  all: {polls:,.0f} polls/s (of {lamps / lamp_interval_s:,.0f} due), "
                    f"{stored - polls:,.0f} MQTT readings/s (of {mqtt_sent:,.0f} sent), "
                    f"{stored:,.0f} stored/s; controllers' CPU "
                    f"{100 * sum(c1 - c0 for c0, c1 in zip(cpu0, cpu1, strict=True)) / window:.1f} %"
                )
                print(
                    "  others' CPU: "
                    + ", ".join(f"{k} {100 * (other1[k] - other0[k]) / window:.1f} %" for k in others)
                )
                s, g = api["status"], api["geojson"]
                print(
                    f"  API (instance 0): device status at {API_RATE:g}/s: p50 {s['p50_ms']:.1f} ms, "
                    f"p99 {s['p99_ms']:.1f} ms, {s['errors']} errors; GeoJSON of {lamps + sensors + aps:,} "
                    f"devices ({g['bytes'] / 2**20:.1f} MB): median {g['median_ms']:.0f} ms; map view "
                    + ", ".join(
                        f"{k} {v['median_ms']:.0f} ms (max {v['max_ms']:.0f}), {v['bytes'] / 1024:.0f} KB"
                        for k, v in api["views"].items()
                    )
                )

                ticks = rate("lag_le_+Inf", 0)
                late = ", ".join(
                    f"{100 * (1 - rate(f'lag_le_{le}', 0) / ticks):.2f} % over {float(le) * 1e3:g} ms"
                    for le in ("0.025", "0.1")
                )
                collections = ", ".join(
                    f"generation {g}: {rate(f'gc{g}_count', 0) * window:.0f} "
                    f"(mean {1e3 * rate(f'gc{g}_sum', 0) / max(rate(f'gc{g}_count', 0), 1e-9):.1f} ms)"
                    for g in "012"
                )
                print(f"  instance 0's loop: timers late {late}; collections {collections}")
                for line in (tmp / "instance-0.log").read_text(errors="replace").splitlines():
                    if "event loop held" in line:  # controller/loop_watch.py, once a minute
                        print(f"  instance 0: {line.partition('event loop ')[2]}")

                # One schedule for the whole city, through instance 0: every lamp once.
                t_put = time.perf_counter()
                await put_schedule(insts[0].url, key)
                counts: list[dict[str, float]] = []
                while time.perf_counter() - t_put < 300:
                    counts = [await asyncio.to_thread(scrape, i.url, key) for i in insts]
                    done = sum(c.get("set_level_confirmed", 0) + c.get("set_level_failed", 0) for c in counts)
                    if done >= lamps:
                        break
                    await asyncio.sleep(1)
                took = time.perf_counter() - t_put
                confirmed = [int(c.get("set_level_confirmed", 0)) for c in counts]
                print(
                    f"  schedule for the whole city: {sum(confirmed):,} lamps confirmed in {took:.1f} s; "
                    f"set_level commands per instance {confirmed} (each lamp once: "
                    f"{'yes' if sum(confirmed) == lamps else 'NO'})",
                    flush=True,
                )
                if n > 1 and with_faults:
                    again = functools.partial(spawn, n - 1, n, config, registry, influx, tmp, insts[-1].port)
                    insts[-1] = await faults(insts, key, base + gateways + 1, again, tmp)


async def faults(
    insts: list[Instance], key: str, control_port: int, again: Callable[..., Instance], tmp: Path
) -> Instance:
    """Propagation, kill -9, restart and partition of the last instance (bench/city_faults.py);
    returns the instance running in its place."""
    victim, shard = insts[-1], str(len(insts) - 1)
    control = f"http://127.0.0.1:{control_port}"
    async with httpx.AsyncClient(base_url=insts[0].url, headers={"X-API-Key": key}, timeout=300) as api:
        held = (await api.get(f"{victim.url}/healthz")).json()["leases"]["held"]
        link = sorted(h["links"] for h in held if h["own"])[0][0]
        took = await city_faults.propagation(api, victim.url, control, link)
        print(f"  a lamp out on instance {shard}'s link {link}: on instance 0's API {took:.2f} s later")

        os.killpg(victim.proc.pid, signal.SIGKILL)
        victim.proc.wait(30)
        t0, killed_at = time.perf_counter(), time.time()
        survivors = [i.url for i in insts[:-1]]
        await city_faults.until(lambda: city_faults.any_holds(api, survivors, shard), 60)
        taken = time.perf_counter() - t0
        print(f"  kill -9 of instance {shard}: lease taken after {taken:.1f} s", flush=True)
        accepted, _ = await city_faults.served_again(api, control, link, city_faults.LEVEL)
        served = time.perf_counter() - t0
        print(
            f"  kill -9 of instance {shard}: lease taken after {taken:.1f} s; its lamps follow an override "
            f"made after the kill {served:.1f} s after it (the override accepted after "
            f"{taken + accepted:.1f} s)"
        )
        survivors_logs = [tmp / f"instance-{i.number}.log" for i in insts[:-1]]
        for line in city_faults.takeover_lines(survivors_logs, killed_at):
            print(f"    {line}")

        partition = can_cut_packets()
        t0, started_at = time.perf_counter(), time.time()
        back = again(group=city_faults.PARTITION_GID) if partition else again()
        answered = await ready(back, tmp)
        await city_faults.until(lambda: city_faults.holds(api, back.url, shard), 60)
        print(
            f"  restart with the config unchanged: answering after {answered:.1f} s, its shard back "
            f"after {time.perf_counter() - t0:.1f} s"
        )
        back_log = [tmp / f"instance-{back.number}.log"]
        for line in city_faults.takeover_lines(back_log, started_at, city_faults.START_LINES)[:8]:
            print(f"    {line}")
        if not partition:
            print("  partition: skipped (needs root and iptables)")
            return back
        with packets_to_postgres_dropped(city_faults.PARTITION_GID):
            t0, cut_at = time.perf_counter(), time.time()
            await city_faults.until(lambda: city_faults.fenced(api, back.url), 60)
            fenced = time.perf_counter() - t0
            await city_faults.until(lambda: city_faults.any_holds(api, survivors, shard), 60)
            taken = time.perf_counter() - t0
            await city_faults.served_again(api, control, link, city_faults.LEVEL + 10)
            served = time.perf_counter() - t0
        t0, healed_at = time.perf_counter(), time.time()
        await city_faults.until(lambda: city_faults.holds(api, back.url, shard), 120)
        print(
            f"  instance {shard} cut off from PostgreSQL: fenced off after {fenced:.1f} s, lease taken "
            f"after {taken:.1f} s, its lamps follow an override after {served:.1f} s; healed: shard back "
            f"after {time.perf_counter() - t0:.1f} s",
            flush=True,
        )
        every_log = [tmp / f"instance-{i.number}.log" for i in insts]
        for line in city_faults.takeover_lines(survivors_logs, cut_at, before=healed_at):
            print(f"    {line}")
        for line in city_faults.takeover_lines(every_log, healed_at):
            print(f"    healed {line}")
        return back


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lamps", type=int, default=50_000)
    p.add_argument("--sensors", type=int, default=2_000)
    p.add_argument("--aps", type=int, default=500)
    p.add_argument("--instances", type=int, action="append")
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--lamp-interval", type=float, default=LAMP_INTERVAL_S, help="seconds between polls")
    p.add_argument("--no-faults", action="store_true", help="skip the fault phase (kill, restart, partition)")
    a = p.parse_args()
    for n in a.instances or [1, 3]:
        asyncio.run(run(n, a.lamps, a.sensors, a.aps, a.seconds, a.lamp_interval, not a.no_faults))


if __name__ == "__main__":
    main()

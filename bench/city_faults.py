"""The fault phase of `make bench-city` with several instances (docs/deployment.md).

After the load window, against the running city:
  propagation: a lamp of the last instance's links goes out (the simulators' control API); how long
    until instance 0's API shows it, counted from the moment the owner's API does;
  kill -9 of the last instance: how long until another instance holds its lease, and until every
    lamp of one of its gateways follows an override made through instance 0 (its lamps served again);
  restart: the killed instance started again with the config unchanged: how long until it answers
    (and it takes its shard back);
  partition: the last instance's packets to PostgreSQL dropped (iptables, its own group, loopback
    only; needs root): how long until it says it is fenced off, and until another instance serves
    its links.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

PARTITION_GID = 65534  # the instance cut off from PostgreSQL runs in this group
LEVEL = 55


async def until(check: Callable[[], Awaitable[bool]], within_s: float, every_s: float = 0.1) -> float:
    """Seconds until `check` holds (raises after `within_s`)."""
    t0 = time.perf_counter()
    while not await check():
        if time.perf_counter() - t0 > within_s:
            raise TimeoutError(f"not within {within_s} s")
        await asyncio.sleep(every_s)
    return time.perf_counter() - t0


async def _health(client: httpx.AsyncClient, url: str) -> dict[str, Any]:
    with contextlib.suppress(httpx.HTTPError, ValueError):
        body: dict[str, Any] = (await client.get(f"{url}/healthz", timeout=2)).json()
        return body
    return {}


async def holds(client: httpx.AsyncClient, url: str, shard: str) -> bool:
    leases = (await _health(client, url)).get("leases") or {}
    return any(h["shard"] == shard and h["valid_for_s"] > 0 for h in leases.get("held", []))


async def any_holds(client: httpx.AsyncClient, urls: list[str], shard: str) -> bool:
    return any([await holds(client, u, shard) for u in urls])


async def fenced(client: httpx.AsyncClient, url: str) -> bool:
    leases = (await _health(client, url)).get("leases") or {}
    return (
        bool(leases)
        and not leases["database_reachable"]
        and all(h["valid_for_s"] == 0 for h in leases["held"])
    )


async def propagation(api: httpx.AsyncClient, owner_url: str, control: str, link: str) -> float:
    """Seconds from the owner's API showing a lamp out to instance 0's API showing it."""
    device = f"{link}-001"
    (
        await api.post(f"{control}/faults", json={"link": link, "unit_id": 1, "fault": "lamp_failure"})
    ).raise_for_status()

    async def state(url: str) -> str:
        body = (await api.get(f"{url}/api/v1/devices/{device}")).json()
        return str(body.get("state"))

    await until(lambda: _is(state(owner_url), "fault"), 180, every_s=0.05)
    took = await until(lambda: _is(state(str(api.base_url)), "fault"), 60, every_s=0.05)
    await api.post(
        f"{control}/faults", json={"link": link, "unit_id": 1, "fault": "lamp_failure", "active": False}
    )
    return took


async def _is(value: Awaitable[str], wanted: str) -> bool:
    return await value == wanted


async def served_again(api: httpx.AsyncClient, control: str, link: str, level: int) -> tuple[float, float]:
    """Seconds until an override for the group of `link`'s lamps is accepted, and until every
    lamp of it is at `level`."""
    t0 = time.perf_counter()
    now = dt.datetime.now(dt.UTC)
    group = f"bench/g{link.removeprefix('gw')}"
    body = {
        "id": f"bench-{link}-{level}",
        "group": group,
        "level": level,
        "start": now.isoformat(),
        "expiry": (now + dt.timedelta(hours=1)).isoformat(),
    }
    for _ in range(30):  # 503 not_ready while a takeover rebuilds the taker's work on its links
        answer = await api.post("/api/v1/overrides", json=body)
        if answer.status_code != 503:
            break
        await asyncio.sleep(float(answer.headers.get("retry-after", "1")))
    answer.raise_for_status()
    accepted = time.perf_counter() - t0

    async def at_level() -> bool:
        lamps = (await api.get(f"{control}/lamps", params={"link": link})).json()
        return all(lamp["level_cmd"] == level for lamp in lamps)

    await until(at_level, 400, every_s=0.2)
    return accepted, time.perf_counter() - t0


#: what the survivors' logs say about a takeover (controller/shard_keeper.py, runtime.py, scheduling.py)
TAKEOVER_LINES = (
    "(taken over)",
    "(its own)",
    "released",
    "lease lost",
    "runtime: serving ",
    "stopped the work",
    "cut short while being sent (",
    "changes from another instance taken up",
    "gave way",
)


#: what a restarted instance's log says on its way to answering: where a restart's seconds go
START_LINES = (
    "registry mirrors the config",
    "open alerts restored",
    "serving",
    "controller started",
    "garbage collector resumed",
)


def takeover_lines(
    logs: list[Path], since: float, keys: tuple[str, ...] = TAKEOVER_LINES, before: float = float("inf")
) -> list[str]:
    """The survivors' log lines about a takeover (or other `keys`) from `since` to `before` (wall
    clock), each with its time after `since`: where the seconds between a kill and the lamps
    following went."""
    out = []
    for path in logs:
        for line in path.read_text(errors="replace").splitlines():
            stamp = line[:23]
            try:
                at = dt.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()
            except ValueError:
                continue
            if since <= at < before and any(key in line for key in keys):
                out.append(f"+{at - since:5.1f} s {path.stem}: {line[24:].strip()[:230]}")
    return sorted(out)

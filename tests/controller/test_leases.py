"""Automatic takeover on PostgreSQL leases, proven by faults (docs/deployment.md).

Two `lamplighter run` processes share one PostgreSQL database and two simulated Modbus TCP
gateways: A (instance 0) serves gw1, B (instance 1) gw2. Each instance reaches every gateway on a
port of its own, so every write a gateway records says which instance made it. A is killed with
`kill -9`, paused with SIGSTOP, or cut off from PostgreSQL (iptables drops its packets to the
database, its gateways still answer); B must serve gw1 within 10 s, and no lamp may ever be written
by both in overlapping leases: after the taker's first write, the old owner writes nothing until the
taker has handed the shard back.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import shutil
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from controller.auth.store import AuthStore
from controller.db import create_engine
from simulators.city import SimulatedCity
from simulators.lamp import Fault, LampModel, SimLamp
from simulators.modbus_server import GatewaySpec, ModbusSegment, WriteRecord
from tests.conftest import free_ports
from tests.controller.instances import Instance, stopped_at_exit
from tests.postgres import fresh_database
from tests.waiting import fetched_until, until

LAMPS = 4  # per gateway
LEVEL = 40  # the city's program
TAKEOVER_S = 10.0  # the promise, with the default lease_s = 6
NOGROUP = 65534  # the partitioned instance runs in this group


@dataclass
class TwoInstances:
    city: SimulatedCity
    a: Instance
    b: Instance
    a_port: dict[str, int]  # gateway → the port A reaches it on
    b_port: dict[str, int]
    api: httpx.AsyncClient  # B's API, with an admin key

    def gateway(self, name: str) -> ModbusSegment:
        return self.city.segments.segments[name]

    def lamps(self, name: str) -> list[LampModel]:
        return [self.city.segments.find(name, u) for u in range(1, LAMPS + 1)]

    def writes(self, name: str, since: float) -> list[WriteRecord]:
        return [w for w in self.gateway(name).writes if w.at >= since]

    def at_level(self, name: str, level: int, port: int) -> bool:
        """Every lamp of the gateway at `level`, its last write made through `port`."""
        last = {w.unit_id: w for w in self.gateway(name).writes}
        return all(
            lamp.level_cmd == level and u in last and last[u].port == port
            for u, lamp in enumerate(self.lamps(name), start=1)
        )


def config_text(ports: dict[str, int], registry_url: str) -> str:
    gateways = "".join(
        f"""
[[links]]
id = "{name}"
site = "hn"
kind = "modbus_tcp"
host = "127.0.0.1"
port = {port}
timeout_s = 0.3
retries = 0

[[device_ranges]]
id_prefix = "{name}-"
link = "{name}"
unit_ids = [1, {LAMPS}]
profile = "lamp_lcu"
group = "hanoi/{name}"
rated_power_w = 100
start = [21.03, 105.81]
end = [21.03, 105.83]
poll_interval_s = 0.5
"""
        for name, port in ports.items()
    )
    return f"""
[database]
url = "{registry_url}"
[poller]
offline_after_failures = 2
state_flush_interval_s = 0.5
[alerts]
sweep_interval_s = 0.5
[cluster]
instances = 2

[[sites]]
id = "hn"
latitude = 21.0
longitude = 105.8
{gateways}"""


@contextlib.asynccontextmanager
async def two_instances(folder: Path, *, a_gid: int | None = None) -> AsyncIterator[TwoInstances]:
    names = ("gw1", "gw2")
    ports = free_ports(4)
    a_port = dict(zip(names, ports[:2], strict=True))
    b_port = dict(zip(names, ports[2:], strict=True))
    async with fresh_database() as url:
        for who, mine in (("a", a_port), ("b", b_port)):
            (folder / f"{who}.toml").write_text(config_text(mine, url), encoding="utf-8")
        gateways = [
            GatewaySpec(
                name=name,
                host="127.0.0.1",
                port=a_port[name],
                also_ports=(b_port[name],),
                lamps=tuple(
                    SimLamp(unit_id=u, device_id=f"{name}-{u:03d}", profile="lamp_lcu", rated_power_w=100)
                    for u in range(1, LAMPS + 1)
                ),
            )
            for name in names
        ]
        city = SimulatedCity(gateways, [])
        await city.start()
        a = Instance(folder / "a.toml", url, folder / "a.log", serving(0, "gw1"), gid=a_gid)
        b = Instance(folder / "b.toml", url, folder / "b.log", serving(1, "gw2"))
        auth = AuthStore(create_engine(url))
        try:
            async with stopped_at_exit(a, b):
                await asyncio.gather(a.start(), b.start())
                await asyncio.gather(a.ready(), b.ready())
                _, key = await auth.create_key("ioc", "admin", "tests")
                headers = {"X-API-Key": key.plaintext}
                async with httpx.AsyncClient(base_url=b.url, headers=headers, timeout=10) as api:
                    two = TwoInstances(city, a, b, a_port, b_port, api)
                    await plan_the_city(two)
                    yield two
        finally:
            await city.stop()
            await auth.engine.dispose()


def serving(instance: int, *links: str) -> dict[str, str]:
    return {
        "LAMPLIGHTER_CLUSTER__INSTANCE": str(instance),
        "LAMPLIGHTER_CLUSTER__LINKS": "[" + ",".join(f'"{n}"' for n in links) + "]",
    }


async def plan_the_city(two: TwoInstances) -> None:
    """A program at LEVEL for the whole city; each instance sets its own gateway's lamps."""
    steps = [{"at": "00:00", "level": LEVEL}]
    for path, body in (
        ("/api/v1/schedules/flat", {"id": "flat", "steps": steps}),
        ("/api/v1/calendars/c", {"id": "c", "default_program": "flat"}),
        ("/api/v1/groups/hanoi/calendar", {"calendar": "c"}),
    ):
        assert (await two.api.put(path, json=body)).is_success
    await until(
        lambda: (
            two.at_level("gw1", LEVEL, two.a_port["gw1"]) and two.at_level("gw2", LEVEL, two.b_port["gw2"])
        ),
        within_s=15,
        what="each instance's lamps at the program's level",
    )


async def override(two: TwoInstances, group: str, level: int) -> None:
    now = dt.datetime.now(dt.UTC)
    body = {
        "id": f"event-{level}",
        "group": group,
        "level": level,
        "start": now.isoformat(),
        "expiry": (now + dt.timedelta(hours=1)).isoformat(),
    }
    # As docs/api.md asks of a client: B answers 503 not_ready while it rebuilds the work of the links
    # it has just taken (seen on a loaded machine), and says when to ask again.
    for _ in range(10):
        rsp = await two.api.post("/api/v1/overrides", json=body)
        if rsp.status_code != 503 or rsp.json()["error"]["code"] != "not_ready":
            break
        await asyncio.sleep(float(rsp.headers["retry-after"]))
    assert rsp.status_code == 201, rsp.text


async def serves(instance: Instance, shard: str) -> bool:
    with contextlib.suppress(httpx.TransportError):
        leases = (await instance.health())["leases"]
        return any(h["shard"] == shard and h["valid_for_s"] > 0 for h in leases["held"])
    return False


def assert_never_overlapping(writes: Sequence[WriteRecord], old: int, new: int) -> None:
    """Per lamp: the old owner's writes, then the taker's, then (handed back) the old owner's
    again — never the old owner between the taker's first and last write."""
    for unit in {w.unit_id for w in writes}:
        ports = [w.port for w in writes if w.unit_id == unit]
        assert set(ports) <= {old, new}, ports
        if new not in ports:
            continue
        first, last = ports.index(new), len(ports) - 1 - ports[::-1].index(new)
        assert old not in ports[first:last], f"unit {unit}: written by both while one held the lease: {ports}"


async def test_a_killed_instance_s_links_are_taken_over_within_10_s_and_handed_back(tmp_path: Path) -> None:
    async with two_instances(tmp_path) as two:
        lamp = two.lamps("gw1")[1]
        lamp.faults.add(Fault.VOLTAGE_SAG)
        alerts = await fetched_until(
            lambda: two.api.get("/api/v1/alerts", params={"state": "open"}),
            lambda r: r.json()["total"] == 1,
            within_s=15,
            what="A's alert",
        )
        before = alerts.json()["items"][0]
        killed = time.monotonic()
        await two.a.kill()  # no shutdown, no lease released
        for each in two.lamps("gw1"):  # a power cut: the lamps boot at full
            each.level_cmd, each.on_cmd = 100, True
        await until(
            lambda: two.at_level("gw1", LEVEL, two.b_port["gw1"]),
            within_s=TAKEOVER_S + 5,
            what="B sets A's lamps",
        )
        took = time.monotonic() - killed
        assert took <= TAKEOVER_S, f"taken over after {took:.1f} s"
        assert await serves(two.b, "0")
        after = (await two.api.get("/api/v1/alerts", params={"state": "all"})).json()["items"]
        assert [(x["id"], x["raised_at"]) for x in after] == [(before["id"], before["raised_at"])]

        # B watches gw1 now: the repair clears the same alert once.
        lamp.faults.discard(Fault.VOLTAGE_SAG)
        await fetched_until(
            lambda: two.api.get("/api/v1/alerts", params={"state": "open"}),
            lambda r: r.json()["total"] == 0,
            within_s=15,
            what="cleared by B",
        )
        # A comes back (systemd restarts it): B hands its shard back, A sets its lamps again.
        restarted = time.monotonic()
        await two.a.start()
        await two.a.ready()
        await until(lambda: two.at_level("gw1", LEVEL, two.a_port["gw1"]), within_s=15, what="A back")
        assert not await serves(two.b, "0")
        assert_never_overlapping(two.writes("gw1", killed), old=two.a_port["gw1"], new=two.b_port["gw1"])
        assert all(w.port == two.b_port["gw2"] for w in two.writes("gw2", 0))  # gw2 was B's throughout
        assert two.writes("gw2", killed) == []  # taking gw1 and handing it back sent B's own lamps nothing
        assert time.monotonic() - restarted < 30


async def test_a_paused_instance_writes_nothing_when_it_wakes_after_its_lease(tmp_path: Path) -> None:
    async with two_instances(tmp_path) as two:
        paused = time.monotonic()
        two.a.signal(signal.SIGSTOP)
        await fetched_until(lambda: serves(two.b, "0"), bool, within_s=TAKEOVER_S, what="B serves gw1")
        await override(two, "hanoi/gw1", 70)  # only B can set it now
        await until(lambda: two.at_level("gw1", 70, two.b_port["gw1"]), within_s=10, what="B sets 70")
        two.a.signal(signal.SIGCONT)  # A wakes with its timers overdue and its lease long gone
        await fetched_until(lambda: serves(two.a, "0"), bool, within_s=15, what="A has its shard back")
        health = await two.a.health()
        assert health["leases"]["leases_lost"] >= 1
        await until(lambda: two.at_level("gw1", 70, two.a_port["gw1"]), within_s=15, what="A sets 70")
        assert_never_overlapping(two.writes("gw1", paused), old=two.a_port["gw1"], new=two.b_port["gw1"])


@contextlib.contextmanager
def packets_to_postgres_dropped(gid: int) -> Iterator[None]:
    """A partition between one group's processes and PostgreSQL, on loopback only: their packets to
    port 5432 vanish (DROP, not REJECT: a cut cable, not a refusal). Everything else still flows."""
    rule = ["OUTPUT", "-o", "lo", "-p", "tcp", "--dport", "5432", "-m", "owner", "--gid-owner", str(gid)]
    rule += ["-j", "DROP"]
    subprocess.run(["iptables", "-w", "-I", *rule], check=True)
    try:
        yield
    finally:
        subprocess.run(["iptables", "-w", "-D", *rule], check=True)


def can_cut_packets() -> bool:
    """Root, iptables, and a kernel that lets us use it (a container without NET_ADMIN does not)."""
    if os.geteuid() != 0 or shutil.which("iptables") is None:
        return False
    return (
        subprocess.run(["iptables", "-w", "-S", "OUTPUT"], capture_output=True, check=False).returncode == 0
    )


@pytest.mark.skipif(not can_cut_packets(), reason="needs root and iptables (make system-deps installs it)")
async def test_an_instance_cut_off_from_postgresql_stops_commanding_before_it_is_taken_over(
    tmp_path: Path,
) -> None:
    async with two_instances(tmp_path, a_gid=NOGROUP) as two:
        with packets_to_postgres_dropped(NOGROUP):
            cut = time.monotonic()
            # A still reaches its gateway and polls it; it must stop commanding by its own clock.
            await fetched_until(
                lambda: degraded_without_database(two.a),
                bool,
                within_s=TAKEOVER_S,
                what="A says it lost the lease",
            )
            await fetched_until(lambda: serves(two.b, "0"), bool, within_s=TAKEOVER_S, what="B serves gw1")
            taken = time.monotonic() - cut
            await override(two, "hanoi/gw1", 70)
            await until(lambda: two.at_level("gw1", 70, two.b_port["gw1"]), within_s=10, what="B sets 70")
            polled_by_a = two.gateway("gw1").stats.requests
            await asyncio.sleep(1.0)
            assert two.gateway("gw1").stats.requests > polled_by_a  # A still polls (nothing lost)
        # Healed: A learns its lease is gone, claims its shard back and sets its lamps.
        await fetched_until(lambda: serves(two.a, "0"), bool, within_s=20, what="A has its shard back")
        await until(lambda: two.at_level("gw1", 70, two.a_port["gw1"]), within_s=15, what="A sets 70")
        assert_never_overlapping(two.writes("gw1", cut), old=two.a_port["gw1"], new=two.b_port["gw1"])
        assert taken <= TAKEOVER_S


async def degraded_without_database(instance: Instance) -> bool:
    health = await instance.health()
    leases = health["leases"]
    return (
        health["status"] == "degraded"
        and not leases["database_reachable"]
        and all(h["valid_for_s"] == 0 for h in leases["held"])
    )

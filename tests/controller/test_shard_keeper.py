"""The shard keeper against a real lease table (SQLite here; PostgreSQL in test_leases.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from controller.db import create_engine
from controller.leases import LeaseTable
from controller.registry import Base
from controller.shard_keeper import ShardKeeper

LEASE_S = 2.0


async def test_a_dead_holder_s_shard_is_looked_at_when_its_lease_runs_out_not_a_tick_later(
    tmp_path: Path,
) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/leases.db")
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    standby = ShardKeeper(LEASE_S, home=None, home_links=frozenset())
    standby.table = LeaseTable(engine, LEASE_S)
    await asyncio.sleep(LEASE_S)  # a standby leaves others' shards alone for a lease after its start
    owner = ShardKeeper(LEASE_S, home="0", home_links=frozenset({"gw1"}))
    owner.table = LeaseTable(engine, LEASE_S)
    await owner.start()
    assert set(owner.held) == {"0"}
    # the owner dies: it renews no more. The standby ticks as its thread does, half a tick out of
    # step with the lease (else its expiry could fall on a tick)
    await asyncio.sleep(standby.tick_s / 2)
    waits: list[float] = []
    for _ in range(20):
        outcome = await standby.tick()
        if outcome.gained:
            break
        waits.append(standby.next_tick_s(outcome))
        await asyncio.sleep(waits[-1])
    assert outcome.gained == ["0"]
    assert set(standby.held) == {"0"}
    # every wait a tick, but the last: it ended just after the lease's expiry, and the next
    # tick took the shard
    assert waits[:-1] == [standby.tick_s] * (len(waits) - 1)
    assert 0 < waits[-1] < standby.tick_s
    await engine.dispose()

"""A write whose caller is cancelled (a schedule pass or a firmware save at shutdown) still finishes
and leaves the database free: cancelled in the middle, an aiosqlite transaction stayed open on a
pooled connection and every later write failed "database is locked" after busy_timeout (seen in
make test: the state saved at a controller's stop)."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from controller.db import create_engine
from controller.registry import CommandRow, Registry


def _commands(n: int) -> list[CommandRow]:
    now = datetime.now(UTC)
    return [
        CommandRow(
            device_id=f"lamp-{i}",
            action="dim",
            value={"value": 40},
            origin="schedule",
            priority=1,
            expires_at=None,
            status="pending",
            detail="",
            written={"dim_level_pct": 40},
            readback=None,
            created_at=now,
        )
        for i in range(n)
    ]


def _another_writer_can_write(path: Path) -> bool:
    """Another process's write (what a second controller, or the CLI, does): a short wait only."""
    conn = sqlite3.connect(path, timeout=1.0)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.rollback()
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        conn.close()


async def test_command_log_writes_cut_short_by_a_cancel_finish_and_leave_the_database_free(
    tmp_path: Path,
) -> None:
    path = tmp_path / "registry.db"
    registry = Registry(create_engine(f"sqlite+aiosqlite:///{path}"))
    await registry.create_schema()
    sent = _commands(50)
    await registry.add_commands(sent)
    try:
        # Cancelled at every point of its first few dozen steps, once begun (the lock stayed with a cancel
        # after 4, 5 or 28 of them, each run)
        for steps in range(1, 40):
            for n, row in enumerate(sent):
                row.status, row.detail = "confirmed", f"pass {steps} lamp {n}"
            added = _commands(50)
            for work in (registry.update_commands(sent), registry.add_commands(added)):
                task = asyncio.ensure_future(work)
                for _ in range(steps):
                    await asyncio.sleep(0)
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                await registry.writes.join()
                assert _another_writer_can_write(path), f"locked (cancelled after {steps} steps)"
            async with registry.session() as s:
                details = set((await s.scalars(select(CommandRow.detail).where(CommandRow.id <= 50))).all())
            assert details == {f"pass {steps} lamp {n}" for n in range(50)}  # the outcomes are recorded
            assert all(row.id is not None for row in added)
    finally:
        await registry.engine.dispose()

"""Taking up other instances' schedule changes never drops one made here meanwhile."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from controller import schedule_objects
from controller.config import load_config
from tests.controller.city import running_controller, write_city

FLAT = {"id": "flat", "steps": [{"at": "00:00", "level": 35}]}
CITY = {"id": "city", "default_program": "flat"}


async def test_a_change_saved_here_while_a_reload_reads_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """bench-city, 2026-12-07: an instance read the shared database for the others' changes, an API
    PUT stored a calendar meanwhile, and the read, older than the PUT, replaced what this instance
    held: the next PUT (the calendar for a group) was refused, "unknown calendar"."""
    settings = load_config(write_city(tmp_path))
    async with running_controller(settings) as ctl:
        sched = ctl.scheduling
        assert sched is not None
        await sched.put("program", "flat", FLAT)
        read, release = asyncio.Event(), asyncio.Event()
        read_all = schedule_objects.read_all

        # The real read of the real database, its answer held until the PUT below is saved: the
        # order a loaded machine gave (the read is not faked, only its return delayed).
        async def read_then_wait(engine: AsyncEngine) -> dict[tuple[str, str], dict[str, Any]]:
            stored = await read_all(engine)
            read.set()
            await release.wait()
            return stored

        monkeypatch.setattr(schedule_objects, "read_all", read_then_wait)
        reload = asyncio.create_task(sched.reload_if_changed())
        await read.wait()
        await sched.put("calendar", "city", CITY)
        release.set()
        assert await reload is False
        monkeypatch.undo()
        assert "city" in sched.calendars
        await sched.put("group_calendar", "hanoi/ba-dinh", {"calendar": "city"})
        assert sched.group_calendars == {"hanoi/ba-dinh": "city"}
        # and a later look finds nothing it lacks
        assert await sched.reload_if_changed() is False

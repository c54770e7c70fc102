"""A shard's work rebuilt for another set of links (a takeover, a hand-back) keeps what it knew of
the links it still serves, and reads the command history for the links it gains."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from pathlib import Path

import pytest

from controller.commands import Command
from controller.registry import LastAsked
from tests.controller.city import running_city, running_controller, settings_for


async def test_a_rebuild_keeps_what_the_lamps_still_served_were_asked_and_reads_the_gained_ones(
    tmp_path: Path,
) -> None:
    settings = settings_for(tmp_path)
    async with running_city(settings), running_controller(settings) as ctl:
        assert ctl.dispatcher is not None
        for lamp, level in (("gw1-001", 40), ("bus1-001", 20)):
            row = await ctl.dispatcher.execute(lamp, Command(action="set_level", value=level))
            assert row.status == "confirmed"
        asked = ctl.dispatcher.expected["gw1-001"]
        assert asked.level == 40

        await ctl._serve(frozenset({"gw1"}))  # bus1 handed back …
        rebuilt_at = dt.datetime.now(dt.UTC)
        await ctl._serve(frozenset({"gw1", "bus1"}))  # … and taken over again
        assert ctl.dispatcher is not None
        # gw1's lamp is judged from its own command still, not from the rebuild
        assert ctl.dispatcher.expected["gw1-001"] == asked
        # bus1's, read from the history, is judged from the rebuild on (it may have lost power
        # meanwhile and come back at its fail-safe level)
        gained = ctl.dispatcher.expected["bus1-001"]
        assert (gained.on, gained.level) == (True, 20)
        assert gained.since is not None
        assert gained.since >= rebuilt_at


async def test_a_rebuild_that_failed_before_reading_the_history_is_retried_with_all_of_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database away while a takeover reads what the gained lamps were asked: the rebuild
    fails, and the next one reads the history for every link, trusting nothing of the failed one."""
    settings = settings_for(tmp_path)
    async with running_city(settings), running_controller(settings) as ctl:
        assert ctl.dispatcher is not None
        row = await ctl.dispatcher.execute("bus1-001", Command(action="set_level", value=20))
        assert row.status == "confirmed"
        await ctl._serve(frozenset({"gw1"}))
        read = ctl.registry.last_asked

        async def away(links: Collection[str] | None = None) -> Sequence[LastAsked]:
            raise OSError("the database is away")  # the read itself, as a partition fails it

        monkeypatch.setattr(ctl.registry, "last_asked", away)
        with pytest.raises(OSError, match="away"):
            await ctl._serve(frozenset({"gw1", "bus1"}))
        monkeypatch.setattr(ctl.registry, "last_asked", read)
        await ctl._serve(frozenset({"gw1", "bus1"}))  # what the lease keeper's next tick does
        assert ctl.dispatcher is not None
        gained = ctl.dispatcher.expected.get("bus1-001")
        assert gained is not None
        assert (gained.on, gained.level) == (True, 20)

"""A shard's work rebuilt for another set of links (a takeover, a hand-back) keeps what it knew of
the links it still serves, and reads the command history for the links it gains."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from controller.commands import Command
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

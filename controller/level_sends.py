"""The schedules' levels on their way to the lamps: which were sent, which are not confirmed, and
in what order they go.

A pass sends first the lamps whose level *changes* — it differs from what the lamp was last asked,
by this instance or by the one whose links it took over — and then the lamps only *reminded* of the
level they were last asked (a start's or a takeover's catch-up). Reminders give way: once a newer
change asks for a pass, or a timed transition or photocell tick waits to send, the reminders not
sent yet are left for the next pass, which again sends its changes first. At 14,600 lamps taken
over, an override made meanwhile used to wait for every reminder before its own lamps moved
(13–21 s after a kill -9 in `make bench-city`).
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping

from controller.commands import Command, CommandDispatcher

log = logging.getLogger(__name__)
#: reminders are recorded and sent in rounds of this many lamps per link: giving way to a change
#: (or a stop) then withdraws at most a round, and the first reminder leaves without waiting for
#: thousands of rows to be recorded (CommandDispatcher.execute_many)
REMINDERS_PER_LINK = 25


class LevelSends:
    def __init__(self, dispatcher: CommandDispatcher) -> None:
        self.dispatcher = dispatcher
        self.sent: dict[str, int] = {}  # lamp → the level last sent to it by the schedules
        self.unconfirmed: set[str] = set()  # lamps whose last level sent was not confirmed
        self._lock = asyncio.Lock()  # one send at a time: a lamp's levels leave in the order decided
        self._waiting = 0  # sends waiting for the lock: reminders give way to them

    def take(self, decided: Mapping[str, int]) -> dict[str, int]:
        """The decided levels not sent yet, marked as sent from now (two passes deciding at once do
        not both send one lamp its level); `send` unmarks those that never left."""
        todo = {lamp: level for lamp, level in decided.items() if self.sent.get(lamp) != level}
        self.sent.update(todo)
        return todo

    def was_asked(self, lamp: str, level: int) -> bool:
        """Was this lamp last asked this level (by whoever: this instance, another, a person)?"""
        last = self.dispatcher.expected.get(lamp)
        return last is not None and last.lit_level == level

    def forget_asked_otherwise(self) -> None:
        """Lamps last asked something else than the schedules sent them (by hand, or a command
        that never arrived) are sent their level again by the next pass."""
        for lamp, level in list(self.sent.items()):
            if not self.was_asked(lamp, level):
                del self.sent[lamp]

    def changes(self, levels: Mapping[str, int]) -> tuple[dict[str, int], dict[str, int]]:
        """(changes, reminders): a lamp last asked exactly this level is only reminded of it."""
        changes: dict[str, int] = {}
        reminders: dict[str, int] = {}
        for lamp, level in levels.items():
            (reminders if self.was_asked(lamp, level) else changes)[lamp] = level
        return changes, reminders

    async def send(self, levels: Mapping[str, int], *, give_way: Callable[[], bool] | None = None) -> bool:
        """Send each lamp its level (taken first); with `give_way`, changes first, then the
        reminders until `give_way()` is true or another send waits (a transition at sunset, a
        photocell tick). True if reminders were left for a later pass."""
        turns: list[tuple[Mapping[str, int], Callable[[], bool] | None]]
        if give_way is None:
            turns = [(levels, None)]
        else:
            changes, reminders = self.changes(levels)
            turns = [(changes, None), (reminders, lambda: give_way() or self._waiting > 0)]
        self._waiting += 1
        try:
            await self._lock.acquire()
        finally:
            self._waiting -= 1
        try:
            for i, (turn, until) in enumerate(turns):
                try:
                    # a change may have come during the changes' turn: then none of these leave
                    left = list(turn) if until is not None and until() else await self._send_turn(turn, until)
                except BaseException:  # stopped or failed half-way: the later turns never left
                    for later, _ in turns[i + 1 :]:
                        self._not_sent(later)
                    raise
                if left:
                    self._not_sent(left)  # the next pass sends them
                    log.info("schedules: %d lamps' reminders gave way (to a change, a transition)", len(left))
                    return True
            return False
        finally:
            self._lock.release()

    async def _send_turn(self, levels: Mapping[str, int], until: Callable[[], bool] | None) -> list[str]:
        """The lamps left unsent (`until`)."""
        by_level: dict[int, list[str]] = defaultdict(list)
        for lamp, level in levels.items():
            by_level[level].append(lamp)
        try:
            done = await asyncio.gather(
                *(
                    self.dispatcher.execute_many(
                        ids,
                        Command(action="set_level", value=level, origin="schedule"),
                        until=until,
                        per_link=None if until is None else REMINDERS_PER_LINK,
                    )
                    for level, ids in by_level.items()
                )
            )
        except BaseException:  # these may not have been sent
            self.unconfirmed.update(levels)
            self._not_sent(levels)
            raise
        reached: set[str] = set()
        for commands in done:  # not confirmed: sent again (the catch-up's retry, a change)
            for command in commands:
                reached.add(command.device_id)
                if command.status == "confirmed":
                    self.unconfirmed.discard(command.device_id)
                else:
                    self.sent.pop(command.device_id, None)
                    self.unconfirmed.add(command.device_id)
        return [lamp for lamp in levels if lamp not in reached]

    def _not_sent(self, lamps: Iterable[str]) -> None:
        for lamp in lamps:
            self.sent.pop(lamp, None)

"""The one command path: Command → dispatcher → driver → device → read back → recorded outcome."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, Strict, model_validator

from controller.alerts.detectors import NOTHING_EXPECTED, Expected
from controller.errors import UnknownDevice
from controller.metrics import ControllerMetrics
from controller.registry import CommandRow, LastAsked, Registry
from controller.vocabulary import Action, CommandStatus, Origin
from drivers.base import DeviceRef, Driver
from drivers.errors import DriverError
from drivers.fields import FieldValue
from schedules.inputs import Instant, Whole

log = logging.getLogger(__name__)
#: a command in flight when its batch was cancelled (a stop, a rebuild of the links' work)
CUT_SHORT = "cut short while being sent: the link is no longer served from here"


class Command(BaseModel):
    """A request to change a device. `set_level` takes 0–100 (0 switches off); `switch` takes a bool."""

    model_config = ConfigDict(extra="forbid")

    action: Action
    value: Annotated[bool, Strict()] | Whole = Field(
        description="level 0–100 for set_level, true/false for switch"
    )
    origin: Origin = "operator"
    priority: Whole = Field(default=50, ge=0, le=100, description="higher wins (schedules use it)")
    expires_at: Instant | None = Field(default=None, description="not executed after this instant")

    @model_validator(mode="after")
    def _value_fits_action(self) -> Command:
        if self.action == "set_level":
            if isinstance(self.value, bool) or not 0 <= self.value <= 100:
                raise ValueError(f"set_level needs an integer level 0–100, got {self.value!r}")
        elif not isinstance(self.value, bool):
            raise ValueError(f"switch needs true or false, got {self.value!r}")
        if self.expires_at is not None and self.expires_at.tzinfo is None:
            raise ValueError("expires_at must carry a timezone (e.g. 2026-11-25T18:00:00+07:00)")
        return self

    def setpoints(self) -> dict[str, FieldValue]:
        if self.action == "set_level":
            return {"dim_level_pct": int(self.value), "lamp_on": int(self.value) > 0}
        return {"lamp_on": bool(self.value)}


class CommandDispatcher:
    """Writes commands through the link's driver and confirms them by reading the setpoints back."""

    def __init__(
        self,
        refs: Mapping[str, tuple[DeviceRef, Driver]],
        registry: Registry,
        metrics: ControllerMetrics,
        *,
        timeout_s: float = 10.0,
        fence: Callable[[str], bool] | None = None,
    ) -> None:
        """`fence(link)`: may this instance command the link now ([cluster] leases); asked just
        before each write, so that an instance paused past its lease writes nothing on waking."""
        self.refs = refs
        self.fence = fence
        self.registry = registry
        self.metrics = metrics
        self.timeout_s = timeout_s
        #: what each device was last asked to do (the fault detectors' expected state)
        self.expected: dict[str, Expected] = {}

    def remember(self, rows: Iterable[LastAsked], *, not_before: datetime | None = None) -> None:
        """Take each device's last request into `expected` (at start, from the command history).

        `not_before`: the start. What a lamp was asked before it is judged only from then on: the
        lamp may have lost power meanwhile and come back at its fail-safe level, and the schedule
        asks again at start (a restart raised lampPowerTooHigh for a lamp polled before that)."""
        expected = self.expected
        for device_id, written, completed_at, created_at in rows:
            prev = expected.get(device_id, NOTHING_EXPECTED)
            level = written.get("dim_level_pct", prev.level)
            on = written.get("lamp_on", prev.on)
            since = completed_at or created_at
            if not_before is not None and since < not_before:
                since = not_before
            expected[device_id] = Expected(
                None if on is None else bool(on), None if level is None else int(level), since
            )

    async def execute(self, device_id: str, command: Command) -> CommandRow:
        """Send one command to one device; the row says whether it was confirmed."""
        return (await self.execute_many([device_id], command))[0]

    async def execute_many(
        self,
        device_ids: Sequence[str],
        command: Command,
        *,
        until: Callable[[], bool] | None = None,
        per_link: int | None = None,
    ) -> list[CommandRow]:
        """Send the same command to many devices at once: concurrently across links, one at a time
        on each link (the link's lock), recorded in two transactions whatever the count.

        `until()`: asked before each device's turn; once true, the devices not reached yet are not
        sent it, their rows are withdrawn from the log and left out of the answer (a schedule pass
        that gives way to a newer change, controller/scheduling.py).

        `per_link`: in rounds of at most this many devices per link, each recorded in its own two
        transactions: the first command leaves once its round is recorded, and a batch that gives
        way or is stopped has at most a round to withdraw (a takeover's 14,600 reminders were
        recorded before the first left, and a stop waited ~6 s for their withdrawal)."""
        unknown = [d for d in device_ids if d not in self.refs]
        if unknown:
            raise UnknownDevice(", ".join(unknown[:5]))
        if per_link is None:
            return await self._execute_round(device_ids, command, until)
        done: list[CommandRow] = []
        for ids in self._rounds(device_ids, per_link):
            if until is not None and until():
                break
            done += await self._execute_round(ids, command, until)
        return done

    def _rounds(self, device_ids: Sequence[str], per_link: int) -> list[list[str]]:
        """The devices in rounds: each round the next `per_link` of every link (links in turn)."""
        by_link: dict[str, list[str]] = defaultdict(list)
        for device_id in device_ids:
            by_link[self.refs[device_id][1].link_id].append(device_id)
        longest = max((len(ids) for ids in by_link.values()), default=0)
        return [
            [d for ids in by_link.values() for d in ids[start : start + per_link]]
            for start in range(0, longest, per_link)
        ]

    async def _execute_round(
        self, device_ids: Sequence[str], command: Command, until: Callable[[], bool] | None
    ) -> list[CommandRow]:
        setpoints = command.setpoints()
        now = datetime.now(UTC)
        rows = [
            CommandRow(
                device_id=device_id,
                action=command.action,
                value={"value": command.value},
                origin=command.origin,
                priority=command.priority,
                expires_at=command.expires_at,
                status="pending",
                detail="",
                written=dict(setpoints),
                readback=None,
                created_at=now,
            )
            for device_id in device_ids
        ]
        # Cancelled while they are being recorded (a stop, a rebuild of the links' work), the rows
        # are recorded all the same (controller/supervisor.py: CriticalSection): wait for them
        # below, then withdraw them, so that no row is left pending.
        adding = asyncio.ensure_future(self.registry.add_commands(rows))
        try:
            await asyncio.shield(adding)
            if command.expires_at is not None and command.expires_at <= now:
                for row in rows:
                    self._finish(row, "expired", "expired before it could be sent")
            else:
                by_link: dict[str, list[CommandRow]] = defaultdict(list)
                for row in rows:
                    by_link[self.refs[row.device_id][1].link_id].append(row)
                await asyncio.gather(
                    *(self._send_in_turn(link_rows, setpoints, until) for link_rows in by_link.values())
                )
        finally:
            if not (await asyncio.gather(adding, return_exceptions=True))[0]:  # recorded: ids known
                withdrawn = [row for row in rows if row.status == "pending"]
                if withdrawn:
                    rows = [row for row in rows if row.status != "pending"]
                cut = sum(1 for row in rows if row.detail == CUT_SHORT)
                if cut:
                    log.warning(
                        "%s to %d devices cut short while being sent (%d never sent)",
                        command.action,
                        cut,
                        len(withdrawn),
                    )
                await self.registry.update_commands(rows, withdrawn=withdrawn)
        return rows

    async def _send_in_turn(
        self,
        rows: Sequence[CommandRow],
        setpoints: dict[str, FieldValue],
        until: Callable[[], bool] | None = None,
    ) -> None:
        """One link's commands one after another (a link carries one exchange at a time), so each
        command's timeout measures its own exchange, not its place in the queue: 200 lamps behind
        one gateway take seconds between them, and used to time out at the back."""
        for row in rows:
            if until is not None and until():
                return  # the rest stay pending: withdrawn by execute_many
            try:
                await self._send(row, *self.refs[row.device_id], setpoints)
            except asyncio.CancelledError:  # the write may have reached the device: say so
                self._finish(row, "failed", CUT_SHORT, quiet=True)  # one line for the batch
                # and remember it, as the history does (the work rebuilt after a cut keeps this)
                self.remember([(row.device_id, row.written, row.completed_at, row.created_at)])
                raise
            # asked is asked (a failed command still says what the lamp should do), from the
            # moment it was: a lamp is judged against it settle_s after its own command, not
            # after the last of a group's (minutes at 14,600 lamps: false lampPowerTooHigh)
            self.remember([(row.device_id, row.written, row.completed_at, row.created_at)])

    async def _send(
        self, row: CommandRow, ref: DeviceRef, driver: Driver, setpoints: dict[str, FieldValue]
    ) -> None:
        if self.fence is not None and not self.fence(driver.link_id):
            self._finish(row, "failed", f"this instance no longer holds the lease of link {driver.link_id}")
            return
        try:
            async with asyncio.timeout(self.timeout_s):
                readback = await driver.write_and_read_back(ref, setpoints)
        except DriverError as exc:
            self._finish(row, "failed", f"{exc.kind}: {exc}")
            return
        except TimeoutError:
            self._finish(row, "failed", f"no confirmation within {self.timeout_s:g} s")
            return
        row.readback = dict(readback)
        differ = {k: (v, readback.get(k)) for k, v in setpoints.items() if readback.get(k) != v}
        if differ:
            detail = ", ".join(f"{k}: wrote {w!r}, read back {g!r}" for k, (w, g) in differ.items())
            self._finish(row, "mismatch", detail)
        else:
            self._finish(row, "confirmed", "")

    def _finish(self, row: CommandRow, status: CommandStatus, detail: str, *, quiet: bool = False) -> None:
        row.status = status
        row.detail = detail
        row.completed_at = datetime.now(UTC)
        self.metrics.commands.labels(row.action, status).inc()
        if status != "confirmed" and not quiet:
            log.warning("command %s on %s %s: %s", row.action, row.device_id, status, detail)

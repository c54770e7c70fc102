"""Rollout campaigns in the manner of Eclipse hawkBit: waves, thresholds, pause, resume, cancel, retry.

The targets are split into waves by cumulative percentages (`[1, 10, 100]`: 1 % first, then up to
10 %, then everyone). Each wave runs with bounded concurrency. When a wave ends:
- more than `error_threshold_pct` of it FAILED → the whole campaign **stops** (a bad image on 20,000
  lamps is a city-wide outage; the later waves are never touched);
- fewer than `success_threshold_pct` UPDATED → it **pauses** for a person to look;
- with `approval` set, it **waits for approval** before the next wave;
- otherwise the next wave starts.
`pause()` lets the devices in flight finish and starts no more; `cancel()` stops them too (a cancelled
transfer resumes where it stopped if the device is targeted again); `retry_failed()` runs the failed
devices of the waves done so far once more.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import logging
import math
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from drivers.tasks import cancel_and_wait
from firmware_bridge.transfer import TransferStatus

log = logging.getLogger(__name__)
CampaignState = Literal[
    "created", "running", "paused", "waiting_approval", "stopped", "cancelled", "finished"
]
Updater = Callable[[str], Coroutine[object, object, TransferStatus]]


class CampaignSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    version: str
    targets: tuple[str, ...] = Field(min_length=1)
    waves: tuple[float, ...] = Field(default=(1, 10, 100), description="cumulative % of targets per wave")
    success_threshold_pct: float = Field(default=95, ge=0, le=100)
    error_threshold_pct: float = Field(default=10, ge=0, le=100)
    approval: bool = Field(default=False, description="wait for approval between waves")
    concurrency: int = Field(default=50, ge=1, le=10_000)

    @field_validator("waves")
    @classmethod
    def _cumulative(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if not v or any(b <= a for a, b in itertools.pairwise(v)) or v[0] <= 0 or v[-1] != 100:
            raise ValueError("waves are increasing cumulative percentages ending at 100, e.g. [1, 10, 100]")
        return v


@dataclass
class Wave:
    index: int
    devices: list[str]
    state: Literal["pending", "running", "done"] = "pending"

    def counts(self, statuses: dict[str, TransferStatus]) -> dict[str, int]:
        out: dict[str, int] = {}
        for d in self.devices:
            s = statuses.get(d)
            key = s.state if s is not None else "PENDING"
            out[key] = out.get(key, 0) + 1
        return out


@dataclass
class Campaign:
    spec: CampaignSpec
    updater: Updater
    state: CampaignState = "created"
    reason: str | None = None
    waves: list[Wave] = field(default_factory=list)
    statuses: dict[str, TransferStatus] = field(default_factory=dict)
    current: int = 0
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    _go: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: dict[str, asyncio.Task[TransferStatus]] = field(default_factory=dict)
    _runner: asyncio.Task[None] | None = None
    #: an operator's cancel under way (see `cancel`)
    _stopping: asyncio.Task[None] | None = None

    def __post_init__(self) -> None:
        self.waves = split_waves(self.spec.targets, self.spec.waves)

    # -- control ----------------------------------------------------------------------------------
    def start(self) -> asyncio.Task[None]:
        """Run the waves; devices already UPDATED (before a restart, say) are not sent again."""
        self._go.set()
        self._runner = asyncio.create_task(self._run(), name=f"campaign:{self.spec.id}")
        return self._runner

    async def wait(self) -> None:
        if self._runner is not None:
            await asyncio.shield(self._runner)

    def pause(self) -> None:
        if self.state in ("running", "waiting_approval"):
            self.state, self.reason = "paused", "paused by an operator"
            self._go.clear()

    def resume(self) -> None:
        """Continue after a pause, or approve the next wave (or go on after a controller restart)."""
        if self.state in ("paused", "waiting_approval", "created"):
            self.state, self.reason = "running", None
            self._go.set()
            if self._runner is None:
                self.start()

    def cancel(self) -> None:
        if self.state in ("finished", "stopped", "cancelled"):
            return
        self.state, self.reason = "cancelled", "cancelled by an operator"
        # cancelled again until each has ended, as in `halt`: a transfer that let the first
        # cancellation pass would otherwise update its device after the operator said stop
        self._stopping = asyncio.create_task(
            cancel_and_wait(list(self._tasks.values()), again_s=0.05), name=f"campaign-cancel:{self.spec.id}"
        )
        self._go.set()

    async def halt(self, reason: str) -> None:
        """Shutdown: stop at once, as paused with `reason` if it was under way (resume() goes on later;
        the devices cut short are sent again then, from where they stopped)."""
        under_way = self.state in ("running", "created", "waiting_approval", "paused")
        self._go.clear()
        # A transfer waits for each acknowledgement with wait_for, which on Python 3.11 can swallow
        # a cancellation that races the reply: one cancel could leave the shutdown waiting for a
        # whole transfer to end. Cancelled again until ended, it stops where it is (resumable).
        await cancel_and_wait(list(self._tasks.values()), again_s=0.05)
        if self._runner is not None:
            await cancel_and_wait([self._runner], again_s=0.05)
            self._runner = None
        if under_way:
            self.state, self.reason = "paused", reason

    async def retry_failed(self) -> int:
        """Run the failed devices of the waves so far again; returns how many."""
        failed = [
            d
            for w in self.waves[: self.current + 1]
            for d in w.devices
            if (s := self.statuses.get(d)) is not None and s.state == "FAILED"
        ]
        await self._run_devices(failed, hold_on_pause=False)  # an operator asked for exactly this
        return len(failed)

    @property
    def cancelled(self) -> bool:
        return self.state == "cancelled"  # set by cancel() while the runner awaits

    # -- running ----------------------------------------------------------------------------------
    async def _run(self) -> None:
        self.state = "running"
        self.started_at = self.started_at or dt.datetime.now(dt.UTC)
        for wave in self.waves:
            if wave.state == "done":
                continue  # finished before a restart (its approval, if any, was given or pending)
            self.current = wave.index
            await self._go.wait()
            if self.cancelled:
                break
            wave.state = "running"
            await self._run_devices(wave.devices)
            wave.state = "done"
            if self.cancelled:
                break
            counts = wave.counts(self.statuses)
            n = len(wave.devices)
            failed_pct = 100 * counts.get("FAILED", 0) / n
            updated_pct = 100 * counts.get("UPDATED", 0) / n
            last = wave.index == len(self.waves) - 1
            if failed_pct > self.spec.error_threshold_pct:
                self.state = "stopped"
                self.reason = (
                    f"wave {wave.index + 1}: {failed_pct:.0f} % failed, over the error threshold "
                    f"of {self.spec.error_threshold_pct:g} %"
                )
                log.error("campaign %s stopped: %s", self.spec.id, self.reason)
                break
            if last:
                break
            if updated_pct < self.spec.success_threshold_pct:
                self.state = "paused"
                self.reason = (
                    f"wave {wave.index + 1}: only {updated_pct:.0f} % updated, under the success threshold "
                    f"of {self.spec.success_threshold_pct:g} %: resume to go on"
                )
                self._go.clear()
            elif self.spec.approval:
                self.state = "waiting_approval"
                self.reason = f"wave {wave.index + 1} done: approve the next wave"
                self._go.clear()
        if self.state == "running":
            self.state = "finished"
        self.finished_at = dt.datetime.now(dt.UTC)

    async def _run_devices(self, devices: Sequence[str], *, hold_on_pause: bool = True) -> None:
        gate = asyncio.Semaphore(self.spec.concurrency)

        async def one(device: str) -> None:
            async with gate:
                if hold_on_pause:
                    await self._go.wait()  # a pause holds back the devices not yet started
                if self.cancelled:
                    return
                done = self.statuses.get(device)
                if done is not None and done.state == "UPDATED":
                    return
                task: asyncio.Task[TransferStatus] = asyncio.create_task(self.updater(device))
                self._tasks[device] = task
                try:
                    self.statuses[device] = await task
                except asyncio.CancelledError:
                    status = TransferStatus(device, self.spec.version, state="FAILED", reason="cancelled")
                    self.statuses[device] = status
                except Exception as exc:  # the channel itself failed (broker unreachable …): say so
                    reason = f"{type(exc).__name__}: {exc}"
                    self.statuses[device] = TransferStatus(
                        device, self.spec.version, state="FAILED", reason=reason
                    )
                finally:
                    self._tasks.pop(device, None)

        await asyncio.gather(*(one(d) for d in devices))

    # -- reporting --------------------------------------------------------------------------------
    def summary(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for w in self.waves:
            for k, v in w.counts(self.statuses).items():
                out[k] = out.get(k, 0) + v
        return out


def split_waves(targets: Sequence[str], cumulative_pct: Sequence[float]) -> list[Wave]:
    """[1, 10, 100] over 1,000 targets → waves of 10, 90 and 900 (every wave gets at least one)."""
    waves: list[Wave] = []
    start = 0
    n = len(targets)
    for i, pct in enumerate(cumulative_pct):
        end = n if i == len(cumulative_pct) - 1 else min(n, max(start + 1, math.ceil(n * pct / 100)))
        if end > start:
            waves.append(Wave(len(waves), list(targets[start:end])))
        start = end
    return waves

"""The runner: wakes its owner at the moments a plan changes something, never minute by minute.

APScheduler's `AsyncIOScheduler` holds one job per group at that group's next transition, one at each
override's start and expiry, and, while lamps are in photocell periods, one that repeats so fresh lux
readings are taken up. What to do when woken is the owner's business (the controller resolves every
lamp and sends only the changed levels); this module decides only *when*. Timers, no I/O.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from schedules.model import Override
from schedules.plan import Plan, Target

#: how far ahead a group's next transition is looked for; a job at the end re-arms in any case
HORIZON = dt.timedelta(days=2)
PHOTOCELL_JOB = "photocell"

Wake = Callable[[], Awaitable[None]]


class TransitionRunner:
    """`on_transition` runs at every armed moment; `on_photocell` every `photocell_every_s` while
    `arm(..., photocell=True)` says some lamp is in a photocell period."""

    def __init__(self, on_transition: Wake, on_photocell: Wake, photocell_every_s: float = 30.0) -> None:
        self.on_transition = on_transition
        self.on_photocell = on_photocell
        self.photocell_every_s = photocell_every_s
        self.scheduler = AsyncIOScheduler(timezone=dt.UTC)

    def start(self) -> None:
        self.scheduler.start()

    def stop(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)

    def arm(
        self,
        plans: Mapping[str, Plan],
        groups: Mapping[str, Sequence[str]],
        overrides: Iterable[Override],
        *,
        photocell: bool,
        now: dt.datetime | None = None,
    ) -> None:
        """Replace every job: for each site's plan, the next transition of each of its `groups`;
        each override's start and expiry still to come; the photocell tick if `photocell`."""
        now = now or dt.datetime.now(dt.UTC)
        self.scheduler.remove_all_jobs()
        if photocell:
            self.scheduler.add_job(
                self.on_photocell,
                IntervalTrigger(seconds=self.photocell_every_s),
                id=PHOTOCELL_JOB,
                replace_existing=True,
            )
        after = now + dt.timedelta(seconds=1)  # not the transition that woke us
        for site, plan in plans.items():
            for group in groups.get(site, ()):
                upcoming = next(iter(plan.transitions(Target(group), after, now + HORIZON)), None)
                if upcoming is not None:
                    self._at(f"group:{group}", upcoming.at)
        for o in overrides:
            for moment in (o.start, o.expiry):
                if moment > now:
                    self._at(f"override:{o.id}:{moment.isoformat()}", moment)

    def photocell_done(self) -> None:
        """No lamp is in a photocell period any more: stop the repeating tick."""
        if self.scheduler.get_job(PHOTOCELL_JOB) is not None:
            self.scheduler.remove_job(PHOTOCELL_JOB)

    def _at(self, job_id: str, when: dt.datetime) -> None:
        self.scheduler.add_job(
            self.on_transition, DateTrigger(run_date=when), id=job_id, replace_existing=True
        )

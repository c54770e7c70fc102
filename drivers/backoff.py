"""Capped exponential backoff with full jitter, for every reconnecting connection."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field

from drivers.base import LinkStats
from drivers.errors import LinkUnavailable


@dataclass(slots=True)
class Backoff:
    """Delay before the next attempt: random in [base·2ⁿ/2, base·2ⁿ], capped at `cap_s`.

    Half-jitter keeps a floor, so a fleet of links that failed together spreads out without any
    link retrying immediately (which is what busy-loops a dead gateway).
    """

    base_s: float = 0.5
    cap_s: float = 30.0
    attempts: int = 0
    _rng: random.Random = field(default_factory=random.Random)

    def next_delay(self) -> float:
        ceiling = min(self.cap_s, self.base_s * (2**self.attempts))
        self.attempts += 1
        return self._rng.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.attempts = 0


class ReconnectSchedule:
    """When a link may next try to connect, and what its stats say meanwhile.

    After a failure the link waits a backoff delay; until then `check()` answers at once with
    `LinkUnavailable` instead of touching the network — a dead gateway or a missing adapter costs
    nothing and never busy-loops. Shared by every reconnecting driver.
    """

    def __init__(self, link_id: str, stats: LinkStats, *, base_s: float, cap_s: float) -> None:
        self.link_id = link_id
        self.stats = stats
        self._backoff = Backoff(base_s=base_s, cap_s=cap_s)
        self._next_attempt = 0.0

    def check(self) -> None:
        """Raise LinkUnavailable if the backoff after the last failure has not yet passed."""
        wait = self._next_attempt - asyncio.get_running_loop().time()
        if wait > 0:
            self.stats.next_attempt_in_s = wait
            raise LinkUnavailable(
                f"link {self.link_id} down ({self.stats.last_error}); next attempt in {wait:.1f} s"
            )

    def failed(self, reason: str, *, connecting: bool = True) -> None:
        """The link failed (while connecting, or later); schedule the next attempt."""
        self.stats.connected = False
        if connecting:
            self.stats.connect_failures += 1
        self.stats.last_error = reason
        delay = self._backoff.next_delay()
        self._next_attempt = asyncio.get_running_loop().time() + delay
        self.stats.next_attempt_in_s = delay

    def succeeded(self) -> None:
        if not self.stats.connected:
            self.stats.connects += 1
        self.stats.connected = True
        self.stats.last_error = None
        self.stats.next_attempt_in_s = 0.0
        self._backoff.reset()

"""Capped exponential backoff with full jitter, for every reconnecting connection."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


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

"""Request rate limits (token buckets), in memory per instance.

Rate limits are kept per process: with several instances behind a balancer each enforces its own
share, which still bounds a client (docs/deployment.md says so). The login lockout, which must hold
across instances, lives in the shared database (controller/auth/lockout.py).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

_MAX_TRACKED = 10_000  # identities remembered; the oldest are forgotten first (bounded memory)


@dataclass
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    """`rate` requests per second per identity with bursts up to `burst`; rate 0 turns it off."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def take(self, identity: str, now: float | None = None) -> float:
        """0 when the request may go ahead, else the seconds until it could."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic() if now is None else now
        bucket = self._buckets.pop(identity, None) or _Bucket(float(self.burst), now)
        bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.at) * self.rate)
        bucket.at = now
        self._buckets[identity] = bucket
        if len(self._buckets) > _MAX_TRACKED:
            self._buckets.popitem(last=False)
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / self.rate

"""Request rate limits (token buckets) and the login lockout, in memory per instance.

Both are kept per process: with several instances behind a balancer each enforces its own share,
which still bounds a client (docs/api.md says so).
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


@dataclass
class _Failures:
    count: int
    locked_until: float
    last: float


class LoginThrottle:
    """After `after` failed logins for a username (or from an address), each further attempt must
    wait `base_s`, doubling per failure up to `max_s`. Success clears the username's record; the
    record of an address is forgotten `max_s` after its last failure."""

    def __init__(self, after: int, base_s: float, max_s: float) -> None:
        self.after = after
        self.base_s = base_s
        self.max_s = max_s
        self._failures: OrderedDict[str, _Failures] = OrderedDict()

    def wait_for(self, keys: list[str], now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        waits = [0.0]
        for key in keys:
            record = self._failures.get(key)
            if record is None:
                continue
            if now - record.last > self.max_s:
                del self._failures[key]
                continue
            waits.append(record.locked_until - now)
        return max(waits)

    def failed(self, keys: list[str], now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        for key in keys:
            record = self._failures.pop(key, None) or _Failures(0, now, now)
            record.count += 1
            record.last = now
            if record.count >= self.after:
                doublings = record.count - self.after
                record.locked_until = now + min(self.max_s, self.base_s * 2 ** min(doublings, 32))
            self._failures[key] = record
            if len(self._failures) > _MAX_TRACKED:
                self._failures.popitem(last=False)

    def succeeded(self, key: str) -> None:
        self._failures.pop(key, None)

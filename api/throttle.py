"""Request rate limits (token buckets), in memory per instance, and the login lockout, shared.

Rate limits are kept per process: with several instances behind a balancer each enforces its own
share, which still bounds a client (docs/deployment.md says so). The lockout's failure counts live
in the database every instance shares, so a password guesser spread over N instances is locked out
after the same number of tries as against one.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from controller.auth_store import AuthStore

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


class SharedLoginThrottle:
    """The login lockout, its records in the shared database (table `login_failures`): after
    `after` failed logins for a username (or from an address) each further attempt waits
    `base_s`, doubling per failure up to `max_s`; success clears the username's record, and any
    record is forgotten `max_s` after its last failure. Concurrent failures on two instances may
    count once: a lockout bounds guessing, it is not an exact tally."""

    def __init__(self, store: AuthStore, after: int, base_s: float, max_s: float) -> None:
        self.store = store
        self.after = after
        self.base_s = base_s
        self.max_s = max_s

    async def wait_for(self, keys: list[str]) -> float:
        now = _utcnow()
        waits = [0.0]
        for _, _, locked_until, last in await self.store.login_failures(keys):
            if (now - last).total_seconds() <= self.max_s:
                waits.append((locked_until - now).total_seconds())
        return max(waits)

    async def failed(self, keys: list[str]) -> None:
        now = _utcnow()
        known = {k: (count, last) for k, count, _, last in await self.store.login_failures(keys)}
        rows = []
        for key in keys:
            count, last = known.get(key, (0, now))
            count = 1 if (now - last).total_seconds() > self.max_s else count + 1
            wait = 0.0
            if count >= self.after:
                wait = min(self.max_s, self.base_s * 2 ** min(count - self.after, 32))
            rows.append((key, count, now + timedelta(seconds=wait), now))
        await self.store.put_login_failures(rows, forget_before=now - timedelta(seconds=self.max_s))

    async def succeeded(self, key: str) -> None:
        await self.store.forget_login_failures(key)


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)  # the tables keep naive UTC

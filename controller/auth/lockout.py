"""The login lockout, kept in the registry database every instance shares (table `login_failures`).

After `after` failed logins for a username (or from an address) each further attempt waits
`base_s`, doubling per failure up to `max_s`; a record is forgotten `max_s` after its last attempt.

Every attempt is counted *before* its password is checked, in one conditional UPDATE per attempt:
the row is counted only if it is not locked, and the lock the attempt would earn by failing is set
in the same statement. Counting after the check let 40 parallel guesses through a limit of 5 (each
read the count before any had written it). A login that then succeeds gives its count back: the
username's record is cleared and the address's attempt refunded, so people who log in often from
one office are never locked out by their own successes.

SQLite serialises writers (the first statement of the transaction is a write, so it takes the write
lock at once); PostgreSQL locks the rows and re-checks the WHERE clause on the newest row version
(READ COMMITTED), so the check and the count are one step on both. Every transaction here takes
the rows' locks in key order, so two logins never wait for each other in a circle.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Integer, String, case, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.elements import ColumnElement

from controller.registry import Base


class LoginFailureRow(Base):
    """Login attempts per username or client address that have not been given back by a success."""

    __tablename__ = "login_failures"
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    count: Mapped[int] = mapped_column(Integer)
    locked_until: Mapped[dt.datetime] = mapped_column()
    last: Mapped[dt.datetime] = mapped_column()


@dataclass(frozen=True)
class LockoutPolicy:
    after: int
    base_s: float
    max_s: float

    def wait_s(self, failures: int) -> float:
        """How long an attempt waits after `failures` failures in a row."""
        if failures < self.after:
            return 0.0
        return min(self.max_s, self.base_s * 2.0 ** min(failures - self.after, 32))


class LoginLockout:
    """`claim` an attempt before checking a password; `succeeded` after a good one."""

    def __init__(self, engine: AsyncEngine, policy: LockoutPolicy) -> None:
        self.engine = engine
        self.policy = policy

    async def claim(self, keys: Sequence[str]) -> float:
        """Count one attempt against every key, atomically; 0 if it may go ahead, else the seconds
        until it could. A refused attempt is not counted against any key."""
        now = _utcnow()
        forget = now - dt.timedelta(seconds=self.policy.max_s)
        keys = sorted(set(keys))  # one lock order for every transaction
        table = LoginFailureRow.__table__
        insert = (postgresql if self.engine.dialect.name == "postgresql" else sqlite).insert
        fresh = insert(table).values([{"key": k, "count": 0, "locked_until": now, "last": now} for k in keys])
        async with self.engine.begin() as conn:
            # Each row made or locked, in key order (a no-op update locks the rows that exist): the
            # UPDATE below then waits for nothing. Locked in its scan order instead, or not at all by
            # DO NOTHING, a login deadlocked with another on PostgreSQL (a 500 under parallel logins).
            await conn.execute(
                fresh.on_conflict_do_update(index_elements=["key"], set_={"last": table.c.last})
            )
            count = case((LoginFailureRow.last < forget, 1), else_=LoginFailureRow.count + 1)
            claimed = (
                await conn.execute(
                    update(LoginFailureRow)
                    .where(
                        LoginFailureRow.key.in_(keys),
                        (LoginFailureRow.locked_until <= now) | (LoginFailureRow.last < forget),
                    )
                    .values(count=count, locked_until=self._lock_after(count, now), last=now)
                    .returning(LoginFailureRow.key)
                )
            ).all()
            if len(claimed) == len(keys):
                return 0.0
            locked = (
                await conn.execute(select(LoginFailureRow.locked_until).where(LoginFailureRow.key.in_(keys)))
            ).scalars()
            wait = max((t - now).total_seconds() for t in locked)
            await conn.rollback()  # the keys that were free give their count back
        return max(wait, 0.001)

    async def succeeded(self, user_key: str, address_key: str) -> None:
        """The password was right: forget the user's failures, refund the address its attempt."""
        keys = sorted({user_key, address_key})
        async with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":  # both rows locked in key order, as `claim` does
                await conn.execute(
                    select(LoginFailureRow.key)
                    .where(LoginFailureRow.key.in_(keys))
                    .order_by(LoginFailureRow.key)
                    .with_for_update()
                )
            # The DELETE comes first: it takes SQLite's write lock, so the read below cannot go stale.
            await conn.execute(delete(LoginFailureRow).where(LoginFailureRow.key == user_key))
            row = (
                await conn.execute(
                    select(LoginFailureRow.count, LoginFailureRow.last)
                    .where(LoginFailureRow.key == address_key)
                    .with_for_update()
                )
            ).first()
            if row is None or row[0] <= 0:
                return
            failures, last = row[0] - 1, row[1]
            until = last + dt.timedelta(seconds=self.policy.wait_s(failures))
            await conn.execute(
                update(LoginFailureRow)
                .where(LoginFailureRow.key == address_key)
                .values(count=failures, locked_until=until)
            )

    def _lock_after(self, failures: ColumnElement[int], now: dt.datetime) -> ColumnElement[dt.datetime]:
        """SQL for "the lock `failures` failures earn from now", dialect-neutral: one CASE branch
        per doubling (a handful: base_s doubles to max_s in a few steps)."""
        p = self.policy
        doublings = max(0, math.ceil(math.log2(max(p.max_s / p.base_s, 1.0)))) + 1
        branches: list[tuple[ColumnElement[bool], dt.datetime]] = [(failures < p.after, now)]
        for k in range(doublings):
            branches.append((failures == p.after + k, now + dt.timedelta(seconds=p.wait_s(p.after + k))))
        return case(*branches, else_=now + dt.timedelta(seconds=p.max_s))


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)

"""Who serves which shard of links, held as leases in the shared database (docs/deployment.md).

PostgreSQL is the arbiter; there is no consensus of ours. Each shard (an instance number's links)
is one row: its links, its holder, a fencing token counted up at every acquisition, and an expiry
set from the database's own clock. The holder renews it every `lease_s / 3`; anyone may take a row
whose expiry has passed. The holder stops commanding by its *own* clock before the row can expire:
`renewed_at + lease_s - margin`, where `renewed_at` is the moment the renewal was sent (earlier than
the database's "now" in it), so a paused or cut-off holder is fenced off before a taker can start.

An instance returning to its own shard while another holds it marks the row claimed; the holder
hands it back (stops its work on it first, then releases) at its next renewal.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import JSON, BigInteger, String, Update, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.orm import Mapped, mapped_column

from controller.db import UtcDateTime
from controller.registry import Base

log = logging.getLogger(__name__)


class ShardLeaseRow(Base):
    __tablename__ = "shard_leases"

    shard: Mapped[str] = mapped_column(String(64), primary_key=True)
    links: Mapped[list[str]] = mapped_column(JSON)
    holder: Mapped[str | None] = mapped_column(String(200), nullable=True)
    token: Mapped[int] = mapped_column(BigInteger, default=0)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    acquired_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    claimed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


@dataclass(slots=True)
class Lease:
    """A shard this instance holds, and until when (its monotonic clock) it may act on it."""

    shard: str
    links: frozenset[str]
    token: int
    valid_until: float
    #: it ran out while the database was away: fenced off, its links still polled
    suspended: bool = False

    def valid(self) -> bool:
        return time.monotonic() < self.valid_until


@dataclass(frozen=True, slots=True)
class LeaseView:
    """A row as /healthz shows it."""

    shard: str
    links: tuple[str, ...]
    holder: str | None
    token: int
    expires_at: datetime


class LeaseTable:
    """The rows, read and changed in short transactions against the database's clock."""

    def __init__(self, engine: AsyncEngine, lease_s: float) -> None:
        self.engine = engine
        self.lease = timedelta(seconds=lease_s)
        #: a renewal that took longer than this leaves the lease's holder less time than it thinks
        self.margin_s = min(1.0, lease_s / 5)

    async def _now(self, conn: AsyncConnection) -> datetime:
        """The database's clock: the instances' own clocks may disagree, the arbiter's does not."""
        if conn.dialect.name == "postgresql":
            now = await conn.scalar(select(func.clock_timestamp()))
            assert isinstance(now, datetime)
            return now.astimezone(UTC)
        return datetime.now(UTC)  # SQLite: one machine, one clock

    async def offer(self, shard: str, links: frozenset[str]) -> None:
        """Make the shard's row (free, with a lease's grace for its own instance to take it), or
        update its links: the instance whose number it is says which links it has."""
        async with self.engine.begin() as conn:
            now = await self._now(conn)
            found = await conn.scalar(select(ShardLeaseRow.links).where(ShardLeaseRow.shard == shard))
            if found is None:
                try:
                    async with conn.begin_nested():
                        await conn.execute(
                            insert(ShardLeaseRow).values(
                                shard=shard,
                                links=sorted(links),
                                holder=None,
                                token=0,
                                expires_at=now + self.lease,
                            )
                        )
                except IntegrityError:
                    pass  # offered at the same moment by another instance
            elif sorted(found) != sorted(links):
                await conn.execute(_row(shard).values(links=sorted(links)))

    async def acquire(self, shard: str, holder: str, *, own: bool) -> Lease | None:
        """Take the shard if it is free or its lease has expired. A shard claimed back by its own
        instance is left to it for a few leases' time."""
        sent = time.monotonic()
        async with self.engine.begin() as conn:
            now = await self._now(conn)
            free = (ShardLeaseRow.holder.is_(None)) | (ShardLeaseRow.expires_at < now)
            if not own:
                recent_claim = ShardLeaseRow.claimed_at > now - 3 * self.lease
                free = free & ~(ShardLeaseRow.claimed_at.is_not(None) & recent_claim)
            got = (
                await conn.execute(
                    _row(shard)
                    .where(free)
                    .values(
                        holder=holder,
                        token=ShardLeaseRow.token + 1,
                        expires_at=now + self.lease,
                        acquired_at=now,
                        claimed_at=None if own else ShardLeaseRow.claimed_at,
                    )
                    .returning(ShardLeaseRow.token, ShardLeaseRow.links)
                )
            ).first()
        if got is None:
            return None
        return Lease(shard, frozenset(got.links), got.token, self._valid_until(sent))

    async def renew(self, lease: Lease, holder: str) -> tuple[bool, bool]:
        """(still ours, claimed back by its own instance since we took it)."""
        sent = time.monotonic()
        async with self.engine.begin() as conn:
            now = await self._now(conn)
            got = (
                await conn.execute(
                    _row(lease.shard)
                    .where(ShardLeaseRow.holder == holder, ShardLeaseRow.token == lease.token)
                    .where(ShardLeaseRow.expires_at >= now)
                    .values(expires_at=now + self.lease)
                    .returning(ShardLeaseRow.claimed_at, ShardLeaseRow.acquired_at)
                )
            ).first()
        if got is None:
            return False, False
        lease.valid_until = self._valid_until(sent)
        lease.suspended = False
        claimed = (
            got.claimed_at is not None and got.acquired_at is not None and got.claimed_at > got.acquired_at
        )
        return True, claimed

    async def release(self, lease: Lease, holder: str) -> None:
        """Give the shard up now (its work on it already stopped)."""
        lease.valid_until = 0.0
        async with self.engine.begin() as conn:
            now = await self._now(conn)
            await conn.execute(
                _row(lease.shard)
                .where(ShardLeaseRow.holder == holder, ShardLeaseRow.token == lease.token)
                .values(holder=None, expires_at=now)
            )

    async def claim(self, shard: str) -> None:
        """Ask the holder of our own shard to hand it back."""
        async with self.engine.begin() as conn:
            now = await self._now(conn)
            await conn.execute(_row(shard).where(ShardLeaseRow.holder.is_not(None)).values(claimed_at=now))

    async def taken_over(self, holder: str) -> tuple[list[str], float | None]:
        """Shards whose lease has expired with a holder in it (an instance that died), or that no
        instance has taken since they were offered: the ones anyone may take over; and in how many
        seconds the next of the others' leases expires (None: none runs), by the database's clock."""
        others = (ShardLeaseRow.holder.is_(None)) | (ShardLeaseRow.holder != holder)
        async with self.engine.begin() as conn:
            now = await self._now(conn)
            rows = await conn.scalars(
                select(ShardLeaseRow.shard)
                .where(ShardLeaseRow.expires_at < now)
                .where(others)
                .order_by(ShardLeaseRow.shard)
            )
            expired = list(rows)
            soonest = await conn.scalar(
                select(func.min(ShardLeaseRow.expires_at))
                .where(ShardLeaseRow.expires_at >= now)
                .where(others)
            )
        return expired, None if soonest is None else (soonest - now).total_seconds()

    async def views(self) -> list[LeaseView]:
        async with self.engine.connect() as conn:
            t = ShardLeaseRow
            query = select(t.shard, t.links, t.holder, t.token, t.expires_at).order_by(t.shard)
            rows = (await conn.execute(query)).all()
        return [LeaseView(r.shard, tuple(r.links), r.holder, r.token, r.expires_at) for r in rows]

    def _valid_until(self, sent: float) -> float:
        return sent + self.lease.total_seconds() - self.margin_s


def _row(shard: str) -> Update:
    return update(ShardLeaseRow).where(ShardLeaseRow.shard == shard)

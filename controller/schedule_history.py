"""Every version of every schedule object, kept: who changed it, when, why — to view, compare, restore.

A change to a program, calendar, group calendar or override appends a version in the same
transaction that stores the object, so the history never misses a change and never records one that
did not happen. A removal is a version without a document. Versions are numbered per object from 1.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import JSON, Integer, String, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.orm import Mapped, mapped_column

from controller.registry import Base

#: the longest reason a change may carry
MAX_REASON = 500


class ScheduleVersionRow(Base):
    __tablename__ = "schedule_versions"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16), index=True)
    key: Mapped[str] = mapped_column(String(300), index=True)
    version: Mapped[int] = mapped_column(Integer)
    doc: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    actor: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(String(MAX_REASON))
    at: Mapped[dt.datetime] = mapped_column()


@dataclass(frozen=True, slots=True)
class Change:
    """Who asks for a change, and why (shown in the history)."""

    actor: str = "system"
    reason: str = ""


#: a change the controller makes itself (a schedule file at start, an expired override)
SYSTEM = Change()


@dataclass(frozen=True, slots=True)
class Version:
    seq: int  # the order of all changes, for paging
    kind: str
    key: str
    version: int
    doc: dict[str, Any] | None
    actor: str
    reason: str
    at: dt.datetime

    @property
    def removed(self) -> bool:
        return self.doc is None


async def record(
    conn: AsyncConnection, kind: str, key: str, doc: dict[str, Any] | None, change: Change
) -> int:
    """Append the next version of one object (inside the caller's transaction); its number."""
    last = (
        await conn.execute(
            select(func.max(ScheduleVersionRow.version)).where(
                ScheduleVersionRow.kind == kind, ScheduleVersionRow.key == key
            )
        )
    ).scalar()
    number = int(last or 0) + 1
    await conn.execute(
        insert(ScheduleVersionRow).values(
            kind=kind,
            key=key,
            version=number,
            doc=doc,
            actor=change.actor[:200],
            reason=change.reason[:MAX_REASON],
            at=dt.datetime.now(dt.UTC),
        )
    )
    return number


def _version(row: Any) -> Version:
    at = row.at if row.at.tzinfo else row.at.replace(tzinfo=dt.UTC)
    return Version(row.seq, row.kind, row.key, row.version, row.doc, row.actor, row.reason, at)


async def versions(
    engine: AsyncEngine,
    kind: str | None = None,
    key: str | None = None,
    *,
    limit: int = 100,
    before: int | None = None,
) -> list[Version]:
    """The newest versions first (of one kind, of one object), at most `limit`, older than `before` (seq)."""
    query = select(ScheduleVersionRow).order_by(ScheduleVersionRow.seq.desc()).limit(limit)
    if kind is not None:
        query = query.where(ScheduleVersionRow.kind == kind)
    if key is not None:
        query = query.where(ScheduleVersionRow.key == key)
    if before is not None:
        query = query.where(ScheduleVersionRow.seq < before)
    async with engine.connect() as conn:
        return [_version(r) for r in (await conn.execute(query)).all()]


async def version(engine: AsyncEngine, kind: str, key: str, number: int) -> Version | None:
    query = select(ScheduleVersionRow).where(
        ScheduleVersionRow.kind == kind, ScheduleVersionRow.key == key, ScheduleVersionRow.version == number
    )
    async with engine.connect() as conn:
        row = (await conn.execute(query)).first()
    return _version(row) if row is not None else None


def differences(before: Any, after: Any, path: str = "") -> list[tuple[str, Any, Any]]:
    """(path, before, after) of every value that differs between two documents; lists by position."""
    if isinstance(before, dict) and isinstance(after, dict):
        out: list[tuple[str, Any, Any]] = []
        for k in sorted(set(before) | set(after)):
            out += differences(before.get(k), after.get(k), f"{path}.{k}" if path else str(k))
        return out
    if isinstance(before, list) and isinstance(after, list):
        out = []
        for i in range(max(len(before), len(after))):
            out += differences(
                before[i] if i < len(before) else None, after[i] if i < len(after) else None, f"{path}[{i}]"
            )
        return out
    return [] if before == after else [(path or "(whole)", before, after)]

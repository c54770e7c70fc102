"""The schedule objects as the database keeps them: one row per program, calendar, group calendar
and override (its document), each change recorded in the history in the same transaction."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, String, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Mapped, mapped_column

from controller.registry import Base
from controller.schedule_history import Change, record
from controller.state_news import announce_schedules


class ScheduleObjectRow(Base):
    __tablename__ = "schedule_objects"
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    id: Mapped[str] = mapped_column(String(300), primary_key=True)
    doc: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[dt.datetime] = mapped_column()


async def read_all(engine: AsyncEngine) -> dict[tuple[str, str], Any]:
    """(kind, id) → document, for every stored object."""
    async with engine.connect() as conn:
        rows = (
            await conn.execute(select(ScheduleObjectRow.kind, ScheduleObjectRow.id, ScheduleObjectRow.doc))
        ).all()
    return {(kind, key): doc for kind, key, doc in rows}


async def save(
    engine: AsyncEngine,
    kind: str,
    key: str,
    doc: dict[str, Any] | None,
    change: Change,
    announce_as: str | None = None,
) -> None:
    """Store `doc` as the object (kind, key), or remove it (None); the history keeps the version.
    `announce_as`: this instance's name, to tell the others at once (PostgreSQL; on commit)."""
    async with engine.begin() as conn:
        await conn.execute(
            delete(ScheduleObjectRow).where(ScheduleObjectRow.kind == kind, ScheduleObjectRow.id == key)
        )
        if doc is not None:
            await conn.execute(
                insert(ScheduleObjectRow).values(
                    kind=kind, id=key, doc=doc, updated_at=dt.datetime.now(dt.UTC)
                )
            )
        await record(conn, kind, key, doc, change)
        if announce_as is not None and conn.dialect.name == "postgresql":
            await announce_schedules(conn, announce_as)

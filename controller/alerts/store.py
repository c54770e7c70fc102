"""Persisted alerts, citizen reports and undeliverable webhook batches (the registry's database).

Alerts survive restarts: active ones are loaded back into the alert book at start. Every write is
one transaction per batch of events, so a storm of 5,000 raised alerts is one INSERT, not 5,000.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, Literal, cast

from sqlalchemy import JSON, Float, Index, Integer, String, Table, delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from controller.alerts.book import Alert, AlertEvent, Severity
from controller.alerts.reports import ReportKind, Verdict
from controller.db import insert_numbered
from controller.faults import FaultKind
from controller.groups import in_group_sql
from controller.registry import Base

AlertState = Literal["active", "open", "acknowledged", "cleared", "all"]


class AlertRow(Base):
    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_open", "cleared_at", "device_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[FaultKind] = mapped_column(String(32), index=True)
    severity: Mapped[Severity] = mapped_column(String(16))
    site_id: Mapped[str] = mapped_column(String(64))
    group_path: Mapped[str] = mapped_column(String(300))
    raised_at: Mapped[dt.datetime] = mapped_column()
    evidence: Mapped[str] = mapped_column(String(1000))
    reading: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    acknowledged_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    acknowledged_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    cleared_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)


class ReportRow(Base):
    __tablename__ = "citizen_reports"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[ReportKind] = mapped_column(String(32))
    latitude: Mapped[float] = mapped_column(Float)
    longitude: Mapped[float] = mapped_column(Float)
    radius_m: Mapped[float] = mapped_column(Float)
    reference: Mapped[str | None] = mapped_column(String(200), nullable=True)
    description: Mapped[str] = mapped_column(String(2000), default="")
    received_at: Mapped[dt.datetime] = mapped_column()
    verdict: Mapped[Verdict] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(500))
    lamps: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    alert_ids: Mapped[list[int]] = mapped_column(JSON)


class DeadLetterRow(Base):
    __tablename__ = "webhook_dead_letters"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    webhook_id: Mapped[str] = mapped_column(String(64), index=True)
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    attempts: Mapped[int] = mapped_column(Integer)
    last_error: Mapped[str] = mapped_column(String(500))
    failed_at: Mapped[dt.datetime] = mapped_column()


class AlertStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.session: async_sessionmaker[AsyncSession] = async_sessionmaker(engine, expire_on_commit=False)

    async def record(self, events: Sequence[AlertEvent]) -> None:
        """Store a batch of changes; raised alerts get their ids here."""
        raised = [e.alert for e in events if e.change == "raised" and e.alert.id is None]
        async with self.session.begin() as conn:
            if raised:
                table = cast(Table, AlertRow.__table__)
                new_ids = await insert_numbered(conn, table, [_row(a) for a in raised], ("device_id", "kind"))
                for alert, new_id in zip(raised, new_ids, strict=True):
                    alert.id = new_id
            changed = [e.alert for e in events if e.change != "raised" and e.alert.id is not None]
            if changed:
                await conn.execute(
                    update(AlertRow),
                    [
                        {
                            "id": a.id,
                            "acknowledged_at": a.acknowledged_at,
                            "acknowledged_by": a.acknowledged_by,
                            "cleared_at": a.cleared_at,
                        }
                        for a in changed
                    ],
                )

    async def active(self) -> list[Alert]:
        async with self.session() as s:
            rows = (await s.scalars(select(AlertRow).where(AlertRow.cleared_at.is_(None)))).all()
        return [to_alert(r) for r in rows]

    async def get(self, alert_id: int) -> Alert | None:
        async with self.session() as s:
            row = await s.get(AlertRow, alert_id)
        return None if row is None else to_alert(row)

    async def query(
        self,
        *,
        state: AlertState = "open",
        kind: str | None = None,
        site: str | None = None,
        group: str | None = None,
        device: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> tuple[list[Alert], int]:
        q = select(AlertRow)
        if state == "open":
            q = q.where(AlertRow.cleared_at.is_(None))
        elif state == "active":
            q = q.where(AlertRow.cleared_at.is_(None), AlertRow.acknowledged_at.is_(None))
        elif state == "acknowledged":
            q = q.where(AlertRow.cleared_at.is_(None), AlertRow.acknowledged_at.is_not(None))
        elif state == "cleared":
            q = q.where(AlertRow.cleared_at.is_not(None))
        if kind:
            q = q.where(AlertRow.kind == kind)
        if site:
            q = q.where(AlertRow.site_id == site)
        if device:
            q = q.where(AlertRow.device_id == device)
        if group:
            g = group.rstrip("/")
            q = q.where(in_group_sql(AlertRow.group_path, g))
        async with self.session() as s:
            total = await s.scalar(select(func.count()).select_from(q.subquery()))
            rows = (await s.scalars(q.order_by(AlertRow.id.desc()).limit(limit).offset(offset))).all()
        return [to_alert(r) for r in rows], int(total or 0)

    # -- citizen reports --------------------------------------------------------------------------
    async def add_report(self, row: ReportRow) -> ReportRow:
        async with self.session.begin() as s:
            s.add(row)
        return row

    async def report(self, report_id: int) -> ReportRow | None:
        async with self.session() as s:
            return await s.get(ReportRow, report_id)

    async def reports(self, limit: int, offset: int) -> tuple[Sequence[ReportRow], int]:
        async with self.session() as s:
            total = await s.scalar(select(func.count()).select_from(ReportRow))
            rows = (
                await s.scalars(select(ReportRow).order_by(ReportRow.id.desc()).limit(limit).offset(offset))
            ).all()
        return rows, int(total or 0)

    async def repair_hours(self, since: dt.datetime, limit: int = 50_000) -> list[float]:
        """Hours from raised to cleared of the alerts cleared since `since` (newest first, bounded)."""
        q = (
            select(AlertRow.raised_at, AlertRow.cleared_at)
            .where(AlertRow.cleared_at.is_not(None), AlertRow.cleared_at >= since)
            .order_by(AlertRow.id.desc())
            .limit(limit)
        )
        async with self.session() as s:
            rows = (await s.execute(q)).all()
        return [(c - r).total_seconds() / 3600 for r, c in rows if c is not None]

    async def between(
        self, group: str, start: dt.datetime, end: dt.datetime, limit: int = 100_000
    ) -> list[tuple[str, str, dt.datetime, dt.datetime | None]]:
        """(device, kind, raised, cleared) of the group's alerts open at some time in [start, end)."""
        q = (
            select(AlertRow.device_id, AlertRow.kind, AlertRow.raised_at, AlertRow.cleared_at)
            .where(
                in_group_sql(AlertRow.group_path, group.rstrip("/")),
                AlertRow.raised_at < end,
                or_(AlertRow.cleared_at.is_(None), AlertRow.cleared_at >= start),
            )
            .order_by(AlertRow.id)
            .limit(limit)
        )
        async with self.session() as s:
            rows = (await s.execute(q)).all()
        return [(d, k, _utc(r), _utc(c) if c is not None else None) for d, k, r, c in rows]

    async def open_for(self, device_ids: Sequence[str]) -> list[Alert]:
        """Alerts not yet cleared on these devices."""
        q = select(AlertRow).where(AlertRow.cleared_at.is_(None), AlertRow.device_id.in_(device_ids))
        async with self.session() as s:
            return [to_alert(r) for r in (await s.scalars(q)).all()]

    async def alerts_by_id(self, ids: Sequence[int]) -> list[Alert]:
        if not ids:
            return []
        async with self.session() as s:
            rows = (await s.scalars(select(AlertRow).where(AlertRow.id.in_(ids)))).all()
        return [to_alert(r) for r in rows]

    # -- webhook dead letters ---------------------------------------------------------------------
    async def dead_letter(self, webhook_id: str, body: dict[str, Any], attempts: int, error: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                insert(DeadLetterRow).values(
                    webhook_id=webhook_id,
                    body=body,
                    attempts=attempts,
                    last_error=error[:500],
                    failed_at=dt.datetime.now(dt.UTC),
                )
            )

    async def dead_letters(self, limit: int, offset: int) -> tuple[Sequence[DeadLetterRow], int]:
        async with self.session() as s:
            total = await s.scalar(select(func.count()).select_from(DeadLetterRow))
            rows = (
                await s.scalars(
                    select(DeadLetterRow).order_by(DeadLetterRow.id.desc()).limit(limit).offset(offset)
                )
            ).all()
        return rows, int(total or 0)

    async def take_dead_letters(self, webhook_id: str, reason: str) -> list[dict[str, Any]]:
        """Remove this webhook's dead letters left for `reason` and return their bodies, oldest
        first. One statement: of instances starting together, each letter goes to one."""
        row = DeadLetterRow
        async with self.engine.begin() as conn:
            rows = (
                await conn.execute(
                    delete(row)
                    .where(row.webhook_id == webhook_id, row.last_error == reason)
                    .returning(row.id, row.body)
                )
            ).all()
        return [body for _, body in sorted(rows, key=lambda row: row[0])]

    async def take_dead_letter(self, letter_id: int, *, webhooks: set[str]) -> DeadLetterRow | None:
        """Remove a dead letter to send it again; None if there is none with that id for these webhooks."""
        async with self.session.begin() as s:
            row = await s.get(DeadLetterRow, letter_id)
            if row is None or row.webhook_id not in webhooks:
                return None
            await s.delete(row)
        return row


def _row(a: Alert) -> dict[str, Any]:
    return {
        "device_id": a.device_id,
        "kind": a.kind,
        "severity": a.severity,
        "site_id": a.site,
        "group_path": a.group,
        "raised_at": a.raised_at,
        "evidence": a.evidence[:1000],
        "reading": a.reading,
        "acknowledged_at": a.acknowledged_at,
        "acknowledged_by": a.acknowledged_by,
        "cleared_at": a.cleared_at,
    }


def _utc(t: dt.datetime) -> dt.datetime:
    return t if t.tzinfo is not None else t.replace(tzinfo=dt.UTC)  # SQLite keeps no zone


def to_alert(r: AlertRow) -> Alert:
    return Alert(
        device_id=r.device_id,
        kind=r.kind,
        severity=r.severity,
        raised_at=r.raised_at,
        evidence=r.evidence,
        reading=r.reading,
        id=r.id,
        site=r.site_id,
        group=r.group_path,
        acknowledged_at=r.acknowledged_at,
        acknowledged_by=r.acknowledged_by,
        cleared_at=r.cleared_at,
    )

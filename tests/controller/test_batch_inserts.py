"""Alerts and commands by the thousand, on the SQLite default and on PostgreSQL: a district falling
silent raises thousands of alerts at once, a group command records a row a lamp. They go in a few
statements — one statement a row (what SQLite did with ids asked back in order) held its write lock
for seconds, and the state flush and operators' commands were refused meanwhile — and each row still
gets its own id, two of one key in a batch included."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncEngine

from controller.alerts.book import Alert, AlertEvent
from controller.alerts.store import AlertRow, AlertStore
from controller.db import create_engine
from controller.faults import FaultKind
from controller.registry import CommandRow, Registry, command_values

NOW = dt.datetime.now(dt.UTC)


@pytest.fixture
async def engine(registry_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(registry_url)
    await Registry(engine).create_schema()
    yield engine
    await engine.dispose()


def inserts_into(engine: AsyncEngine, table: str) -> list[str]:
    seen: list[str] = []

    def before(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith(f"INSERT INTO {table.upper()}"):
            seen.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", before)
    return seen


async def test_an_alert_storm_is_stored_in_batches_each_alert_with_its_own_row(
    engine: AsyncEngine,
) -> None:
    inserts = inserts_into(engine, "alerts")
    kinds: list[FaultKind] = ["communicationFailure", "lampFailure"]
    alerts = [
        Alert(f"gw{i // 400:02d}-{i // 2 % 200:03d}", kind, "major", NOW, f"evidence {i}", site="hn")
        for i, kind in enumerate(kinds * 1500)
    ]
    alerts.append(Alert(alerts[7].device_id, alerts[7].kind, "major", NOW, "evidence again", site="hn"))
    await AlertStore(engine).record([AlertEvent("raised", a) for a in alerts])
    async with engine.connect() as conn:
        stored = {row.id: row.evidence for row in await conn.execute(select(AlertRow.id, AlertRow.evidence))}
    assert len(inserts) <= 5
    assert len(stored) == len(alerts) == len({a.id for a in alerts})
    wrong = [(a.id, a.evidence, stored.get(a.id or 0)) for a in alerts if stored.get(a.id or 0) != a.evidence]
    assert not wrong, wrong[:5]


async def test_a_group_command_records_its_rows_in_batches_each_with_its_own_id(engine: AsyncEngine) -> None:
    inserts = inserts_into(engine, "commands")
    rows = [
        CommandRow(
            device_id=f"gw{i // 200:02d}-{i % 200:03d}",
            action="set_level",
            value={"value": i % 101},
            origin="group",
            priority=50,
            expires_at=None,
            status="pending",
            detail=f"row {i}",
            written={"dim_level_pct": i % 101},
            readback=None,
            created_at=NOW,
        )
        for i in range(3000)
    ]
    rows.append(CommandRow(**{**command_values(rows[5]), "detail": "again"}))  # one lamp asked twice
    rows.append(CommandRow(**{**command_values(rows[5]), "action": "switch", "detail": "switched"}))
    await Registry(engine).add_commands(rows)
    async with engine.connect() as conn:
        stored = {r.id: r.detail for r in await conn.execute(select(CommandRow.id, CommandRow.detail))}
    assert len(inserts) <= 5
    assert len(stored) == len(rows) == len({r.id for r in rows})
    wrong = [(r.id, r.detail, stored.get(r.id)) for r in rows if stored.get(r.id) != r.detail]
    assert not wrong, wrong[:5]

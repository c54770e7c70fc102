"""Async SQLAlchemy engines: SQLite (aiosqlite) by default, PostgreSQL by changing the URL."""

from __future__ import annotations

import json
import logging
import os
import stat
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import DateTime, MetaData, Table, event, insert, inspect
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.types import TypeDecorator

log = logging.getLogger(__name__)

#: SQLSTATE classes that mean "the database is away for now", not "this request is wrong":
#: connection exceptions, operator intervention (shutdown, restart), insufficient resources, and
#: a database not accepting connections (maintenance).
_AWAY_SQLSTATES = ("08", "57P", "53", "55000")
CONNECT_TIMEOUT_S = 10.0
#: far longer than any query of ours takes (mirroring 50,000 devices: ~25 s)
QUERY_TIMEOUT_S = 120.0
#: what a database that is away raises, besides DBAPIError (refused or timed-out connections)
DATABASE_AWAY_ERRORS = (DBAPIError, PoolTimeout, ConnectionError, TimeoutError)


def database_is_away(exc: BaseException) -> bool:
    """A database error that will pass by itself (restart, failover, network), not a bug."""
    if isinstance(exc, PoolTimeout | ConnectionError | TimeoutError):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated or isinstance(exc, OperationalError):
        return True
    state = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    return isinstance(state, str) and state.startswith(_AWAY_SQLSTATES)


def create_engine(url: str) -> AsyncEngine:
    """Create an engine; for SQLite, make the directory and use WAL so readers never block writers."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        # A database behind a cut cable drops packets: without these a connect or a query waited
        # for TCP to give up (~15 min) and held up whatever asked (a shard starting to serve).
        limits = {"timeout": CONNECT_TIMEOUT_S, "command_timeout": QUERY_TIMEOUT_S}
        return create_async_engine(
            url,
            pool_pre_ping=True,
            connect_args=limits,
            json_serializer=json_text,
            json_deserializer=json_value,
        )
    if parsed.database and parsed.database != ":memory:":
        _private_file(Path(parsed.database))
    engine = create_async_engine(url, json_serializer=json_text, json_deserializer=json_value)

    @event.listens_for(engine.sync_engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")  # durable at each checkpoint; safe with WAL
        cur.execute("PRAGMA busy_timeout=5000")
        cur.close()

    return engine


async def insert_numbered(
    conn: AsyncConnection | AsyncSession, table: Table, rows: Sequence[Mapping[str, Any]], key: Sequence[str]
) -> list[int]:
    """Insert the rows; return the ids the database gave them, in the rows' order.

    Not with an ordered RETURNING: SQLite cannot tie new row ids to the order of the parameters, so
    SQLAlchemy then inserts one row a round trip (10,000 alerts or commands held the write lock for
    3–4 s, and other writers failed with "database is locked"). The rows come back in any order with
    their `key` columns (plain values, which come back as they went) and are matched by them; rows of
    one key, if a batch has several, in id order, the order in which the statements insert them."""
    if not rows:
        return []
    result = await conn.execute(insert(table).returning(table.c.id, *(table.c[k] for k in key)), rows)
    ids: dict[tuple[Any, ...], list[int]] = defaultdict(list)
    for new_id, *values in sorted(result, key=lambda r: r[0], reverse=True):
        ids[tuple(values)].append(new_id)
    return [ids[tuple(row[k] for k in key)].pop() for row in rows]


def json_text(value: Any) -> str:
    """A JSON column's text: orjson (a device's state, saved at every flush, in a tenth of json's time);
    json for what orjson refuses (integers wider than 64 bits), so nothing stored before fails now."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        return json.dumps(value)


def json_value(text: str | bytes) -> Any:
    """A JSON column's value: orjson (52,500 device states' counters read at every start, their
    readings when first asked: 0.2 s with json);
    json for what orjson refuses (NaN, which json wrote before orjson did the writing)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def missing_columns(sync_conn: Any, metadata: MetaData) -> list[str]:
    """What the database lacks of these tables, one line per table (create_all adds missing
    tables, never missing columns)."""
    inspector = inspect(sync_conn)
    problems = []
    for table in metadata.sorted_tables:
        have = {c["name"] for c in inspector.get_columns(table.name)}
        lacking = [c.name for c in table.columns if c.name not in have]
        if lacking:
            problems.append(f"table {table.name} lacks {', '.join(lacking)}")
    return problems


def _private_file(path: Path) -> None:
    """The database file readable by its owner only: the registry holds the token-signing secret
    and password hashes. SQLite gives its -wal and -shm files the main file's mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))  # made private, never world-readable
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:  # made by an earlier version, or with another umask
        path.chmod(mode & 0o700)
        log.info("database %s: access for others removed (was %o)", path, mode)


class UtcDateTime(TypeDecorator[datetime]):
    """An instant, stored as UTC and always given back aware, in UTC.

    SQLite keeps no time zone: it gave naive datetimes back (and stored an aware one's wall time,
    whatever its zone), so a dozen places repaired them. Every timestamp column of ours has this
    type; no code after it needs to know which database it runs on.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return aware.replace(tzinfo=None) if dialect.name == "sqlite" else aware

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

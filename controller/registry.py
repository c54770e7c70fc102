"""The persisted registry: sites, links and devices mirrored from the config; state and commands.

Source of truth (docs/architecture.md): the config file owns sites, links and devices; the
database owns their live state, the command history and everything created through the API.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, cast

import orjson
from sqlalchemy import (
    JSON,
    ColumnElement,
    Float,
    ForeignKey,
    Integer,
    String,
    Table,
    Text,
    delete,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from controller.config import ControllerSettings, device_address, link_address
from controller.db import UtcDateTime, insert_numbered, missing_columns
from controller.device import Device
from controller.state_news import announce
from controller.supervisor import CriticalSection
from controller.vocabulary import Action, CommandStatus, DeviceKind, DeviceState, Origin

#: PostgreSQL advisory lock held while an instance creates tables and mirrors the config ("LAMP")
STARTUP_LOCK_KEY = 0x4C414D50


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, datetime: UtcDateTime()}


class SiteRow(Base):
    __tablename__ = "sites"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64))
    latitude: Mapped[float] = mapped_column(Float)
    longitude: Mapped[float] = mapped_column(Float)


class LinkRow(Base):
    __tablename__ = "links"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"))
    kind: Mapped[str] = mapped_column(String(32))
    address: Mapped[str] = mapped_column(String(300))


class DeviceRow(Base):
    __tablename__ = "devices"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"), index=True)
    link_id: Mapped[str] = mapped_column(ForeignKey("links.id"), index=True)
    unit_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: how the link addresses the device: the unit id for Modbus, the topic key for MQTT
    address: Mapped[str] = mapped_column(String(64))
    profile: Mapped[str] = mapped_column(String(64))
    kind: Mapped[DeviceKind] = mapped_column(String(32))
    group_path: Mapped[str] = mapped_column(String(300), index=True)
    latitude: Mapped[float] = mapped_column(Float)
    longitude: Mapped[float] = mapped_column(Float)
    rated_power_w: Mapped[float | None] = mapped_column(Float, nullable=True)  # lamps only
    poll_interval_s: Mapped[float] = mapped_column(Float)


class RegistryMetaRow(Base):
    """Small facts about the registry itself (the digest of the config it last mirrored)."""

    __tablename__ = "registry_meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))


class DeviceStateRow(Base):
    __tablename__ = "device_state"
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True)
    state: Mapped[DeviceState] = mapped_column(String(16))
    last_seen: Mapped[datetime | None] = mapped_column(nullable=True)
    last_reading: Mapped[dict[str, Any] | None] = mapped_column(nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    counters: Mapped[dict[str, Any]] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()


@dataclass(slots=True)
class SavedState:
    """A device_state row as read back (plain values: ORM objects for 50,000 rows cost more than
    the query)."""

    device_id: str
    state: str
    last_seen: datetime | None
    #: the reading's document as its JSON text, decoded when someone asks (`DeviceStatus`): a
    #: start read 52,500 of them in 0.45 s decoded, 0.18 s as text, and most are never asked for
    last_reading_json: str | None
    last_error: str | None
    counters: dict[str, Any]


#: Device's fields, in its order
_DEVICE_QUERY = select(*(DeviceRow.__table__.c[name] for name in Device._fields)).order_by(DeviceRow.id)
_STATE_QUERY = select(
    DeviceStateRow.device_id,
    DeviceStateRow.state,
    DeviceStateRow.last_seen,
    DeviceStateRow.last_reading.cast(Text),  # a CAST in SQL: the driver decodes no JSON
    DeviceStateRow.last_error,
    DeviceStateRow.counters,
)
#: rows per executemany batch of an upsert
UPSERT_CHUNK = 5000


class CommandRow(Base):
    __tablename__ = "commands"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(String(64), index=True)
    action: Mapped[Action] = mapped_column(String(32))
    value: Mapped[dict[str, Any]] = mapped_column()
    origin: Mapped[Origin] = mapped_column(String(16))
    priority: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[datetime | None] = mapped_column(nullable=True)
    status: Mapped[CommandStatus] = mapped_column(String(16))
    detail: Mapped[str] = mapped_column(String(500), default="")
    written: Mapped[dict[str, Any]] = mapped_column()
    readback: Mapped[dict[str, Any] | None] = mapped_column(nullable=True)
    created_at: Mapped[datetime] = mapped_column()
    completed_at: Mapped[datetime | None] = mapped_column(nullable=True)


#: (device id, setpoints written, completed at, created at) of a device's last command
LastAsked = tuple[str, dict[str, Any], datetime | None, datetime]


_COMMAND_COLUMNS = tuple(c.key for c in CommandRow.__table__.columns if c.key != "id")


def command_values(row: CommandRow) -> dict[str, Any]:
    """A command row's columns but its id (the database gives that), as an INSERT takes them."""
    return {key: getattr(row, key) for key in _COMMAND_COLUMNS}


class Registry:
    """Async access to the registry tables."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.session: async_sessionmaker[AsyncSession] = async_sessionmaker(engine, expire_on_commit=False)
        #: the command log's writes finish even when their sender is cancelled (a schedule pass at
        #: shutdown): cancelled in the middle, an aiosqlite write left its transaction open on the
        #: pooled connection and every later write waited busy_timeout, then failed "database is locked"
        self.writes = CriticalSection()

    async def create_schema(self) -> None:
        """Create missing tables; refuse, with a clear message, a database made by an older version."""
        async with self.engine.begin() as conn:
            await self._one_instance_at_a_time(conn)
            await conn.run_sync(Base.metadata.create_all)
            missing = await conn.run_sync(missing_columns, Base.metadata)
        if missing:
            raise RegistrySchemaError(
                f"the registry database {self.engine.url!r} was made by an older Lamplighter: "
                f"{'; '.join(missing)}. Delete it (sites, links and devices come back from the config) "
                "or migrate it."
            )

    async def mirror_config(self, settings: ControllerSettings) -> tuple[list[Device], int]:
        """Make sites, links and devices equal to the config; return the devices the registry then
        holds, sorted by id (a start no longer reads 52,500 rows back: 0.2–0.3 s), and how many
        were removed.

        Devices removed from the config lose their registry rows and state; their telemetry
        history stays in the telemetry store.
        """
        devices = settings.all_devices()
        wanted = {d.id for d in devices}
        link_site = {link.id: link.site for link in settings.links}
        sites = [
            {
                "id": x.id,
                "name": x.name or x.id,
                "timezone": x.timezone,
                "latitude": x.latitude,
                "longitude": x.longitude,
            }
            for x in settings.sites
        ]
        links = [
            {
                "id": x.id,
                "site_id": x.site,
                "kind": x.kind,
                "address": link_address(x),
            }
            for x in settings.links
        ]
        link_of = {x.id: x for x in settings.links}
        rows: list[dict[str, Any]] = []
        for d in devices:
            header = settings.profile(d.profile).profile
            rows.append(
                {
                    "id": d.id,
                    "site_id": link_site[d.link],
                    "link_id": d.link,
                    "unit_id": d.unit_id,
                    "address": str(device_address(d, link_of[d.link])),
                    "profile": d.profile,
                    "kind": header.kind,
                    "group_path": d.group,
                    "latitude": d.latitude,
                    "longitude": d.longitude,
                    "rated_power_w": d.rated_power_w
                    or (header.rated_power_w if header.kind == "lamp" else None),
                    "poll_interval_s": d.poll_interval_s,
                }
            )
        # Unchanged since the last mirror (a restart, or the next instance of a cluster): skip the
        # upsert, which for 50,000 devices took ~25 s of every instance's start.
        # (orjson: json took 0.14 s of every start at 52,500 devices; the first start after the
        # change sees another digest and mirrors once more)
        digest = hashlib.sha256(orjson.dumps([sites, links, rows], default=str)).hexdigest()
        mirrored = sorted((Device(**row) for row in rows), key=lambda d: d.id)
        async with self.engine.begin() as conn:
            await self._one_instance_at_a_time(conn)
            last = await conn.scalar(
                select(RegistryMetaRow.value).where(RegistryMetaRow.key == "config_digest")
            )
            if last == digest:
                return mirrored, 0
            await self._upsert(conn, SiteRow, sites)
            await self._upsert(conn, LinkRow, links)
            existing = set((await conn.scalars(select(DeviceRow.id))).all())
            stale = existing - wanted
            if stale:
                await conn.execute(delete(DeviceStateRow).where(DeviceStateRow.device_id.in_(stale)))
                await conn.execute(delete(DeviceRow).where(DeviceRow.id.in_(stale)))
            await self._upsert(conn, DeviceRow, rows)
            await self._upsert(conn, RegistryMetaRow, [{"key": "config_digest", "value": digest}])
        return mirrored, len(stale)

    async def _one_instance_at_a_time(self, conn: AsyncConnection) -> None:
        """On PostgreSQL, hold a transaction-scoped advisory lock: instances of a cluster started at
        once would otherwise race to create the same tables (a unique violation in pg_type) and to
        mirror the same config. SQLite serialises writers by itself."""
        if self.engine.dialect.name == "postgresql":
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": STARTUP_LOCK_KEY})

    async def _upsert(
        self,
        conn: AsyncConnection,
        model: type[Base],
        rows: list[dict[str, Any]],
        only_if: Callable[[Any], ColumnElement[bool]] | None = None,
    ) -> None:
        """INSERT … ON CONFLICT (primary key) DO UPDATE, in chunks (SQLite and PostgreSQL alike);
        `only_if(excluded)`: update an existing row only where this holds."""
        if not rows:
            return
        table = cast(Table, model.__table__)
        key = [c.name for c in table.primary_key]
        insert = sqlite_insert if self.engine.dialect.name == "sqlite" else pg_insert
        stmt = insert(table)
        stmt = stmt.on_conflict_do_update(
            index_elements=key,
            set_={c: stmt.excluded[c] for c in rows[0] if c not in key},
            where=None if only_if is None else only_if(stmt.excluded),
        )
        # One statement, compiled once (and cached), run over the rows (executemany): the rows
        # inlined as one multi-VALUES statement were compiled anew each time, 7,000 bound
        # parameters a chunk, and that was most of a flush's cost at 50,000 devices.
        for i in range(0, len(rows), UPSERT_CHUNK):
            await conn.execute(stmt, rows[i : i + UPSERT_CHUNK])

    async def devices(self) -> list[Device]:
        async with self.engine.connect() as conn:
            return [Device(*r) for r in await conn.execute(_DEVICE_QUERY)]

    async def load_states(self) -> list[SavedState]:
        async with self.engine.connect() as conn:
            return [SavedState(*r) for r in await conn.execute(_STATE_QUERY)]

    async def states_changed_since(
        self, since: datetime | None, *, chunk: int = 1000
    ) -> AsyncIterator[list[SavedState]]:
        """Device states saved after `since` (all of them if None), `chunk` rows at a time."""
        query = _STATE_QUERY
        if since is not None:
            query = query.where(DeviceStateRow.updated_at > since)
        async with self.engine.connect() as conn:
            result = await conn.stream(query.execution_options(yield_per=chunk))
            async for part in result.partitions(chunk):
                yield [SavedState(*r) for r in part]

    async def save_states(self, rows: list[dict[str, Any]], announce_from: str | None = None) -> None:
        """Upsert device_state rows given as column → value dicts. A state whose last reading is
        older than the stored one's is not written: a device of an MQTT shared group is saved by
        every instance that took in some of its readings, and the last to save is not always the
        one that saw the newest (a state change without a reading, going offline, keeps its time).
        `announce_from`: tell the other instances (PostgreSQL NOTIFY, controller/state_news.py)."""

        def not_older(new: Any) -> ColumnElement[bool]:
            stored = DeviceStateRow.last_seen
            return or_(stored.is_(None), new.last_seen.is_(None), new.last_seen >= stored)

        # In one order everywhere: two instances saving the same devices (an MQTT shared group, a
        # takeover) in different orders deadlocked on the rows' locks (PostgreSQL, bench-city).
        rows = sorted(rows, key=lambda r: str(r["device_id"]))
        async with self.engine.begin() as conn:
            await self._upsert(conn, DeviceStateRow, rows, not_older)
            if announce_from is not None and conn.dialect.name == "postgresql":
                await announce(conn, announce_from, [r["device_id"] for r in rows])

    async def states_of(self, device_ids: Sequence[str]) -> list[SavedState]:
        """The saved states of these devices (the ones another instance announced)."""
        out: list[SavedState] = []
        async with self.engine.connect() as conn:
            for i in range(0, len(device_ids), 1000):
                query = _STATE_QUERY.where(DeviceStateRow.device_id.in_(device_ids[i : i + 1000]))
                out += [SavedState(*r) for r in await conn.execute(query)]
        return out

    async def add_commands(self, rows: list[CommandRow]) -> None:
        await self.writes.run(self._add_commands(rows))

    async def _add_commands(self, rows: list[CommandRow]) -> None:
        table = cast(Table, CommandRow.__table__)
        async with self.engine.begin() as conn:
            ids = await insert_numbered(
                conn, table, [command_values(r) for r in rows], ("device_id", "action")
            )
        for row, new_id in zip(rows, ids, strict=True):
            row.id = new_id

    async def update_commands(self, rows: list[CommandRow], withdrawn: Sequence[CommandRow] = ()) -> None:
        """Record outcomes in one bulk UPDATE by primary key; `withdrawn`: rows of commands that
        were never sent, deleted in the same transaction."""
        await self.writes.run(self._update_commands(rows, withdrawn))

    async def _update_commands(self, rows: list[CommandRow], withdrawn: Sequence[CommandRow]) -> None:
        fields = ("status", "detail", "readback", "completed_at")
        async with self.session.begin() as s:
            if rows:
                await s.execute(
                    update(CommandRow), [{"id": r.id, **{f: getattr(r, f) for f in fields}} for r in rows]
                )
            ids = [r.id for r in withdrawn]
            for i in range(0, len(ids), 5_000):  # under SQLite's and asyncpg's bound-parameter limits
                await s.execute(delete(CommandRow).where(CommandRow.id.in_(ids[i : i + 5_000])))

    async def last_asked(self, links: Collection[str] | None = None) -> Sequence[LastAsked]:
        """What each device was last asked (its most recent command); `links`: only the devices on
        these (a shard's; the city's history holds every instance's commands). Plain values: a
        takeover reads 32,000 of them, and as ORM objects they took ~1 s of its rebuild."""
        latest = select(func.max(CommandRow.id)).group_by(CommandRow.device_id)
        if links is not None:
            on_links = select(DeviceRow.id).where(DeviceRow.link_id.in_(list(links)))
            latest = latest.where(CommandRow.device_id.in_(on_links))
        asked = (CommandRow.device_id, CommandRow.written, CommandRow.completed_at, CommandRow.created_at)
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(*asked).where(CommandRow.id.in_(latest.scalar_subquery())))
            return rows.all()

    async def command(self, device_id: str, command_id: int) -> CommandRow | None:
        async with self.session() as s:
            row = await s.get(CommandRow, command_id)
        return row if row is not None and row.device_id == device_id else None

    async def commands(self, device_id: str, limit: int, offset: int) -> tuple[Sequence[CommandRow], int]:
        async with self.session() as s:
            total = await s.scalar(
                select(func.count()).select_from(CommandRow).where(CommandRow.device_id == device_id)
            )
            rows = (
                await s.scalars(
                    select(CommandRow)
                    .where(CommandRow.device_id == device_id)
                    .order_by(CommandRow.id.desc())
                    .limit(limit)
                    .offset(offset)
                )
            ).all()
        return rows, int(total or 0)


class RegistrySchemaError(RuntimeError):
    """The registry database does not have the tables this version needs."""

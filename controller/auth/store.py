"""Users, API keys, the token secret and the audit log, in the registry's database.

The CLI writes here directly (keys are made and revoked with the controller running or not); the API
reads through a short cache so that checking credentials costs no query on most requests. A revoked
key or disabled user is therefore refused within `CACHE_TTL_S` on every instance.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import JSON, Boolean, Integer, String, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from controller.auth.credentials import ROLES, NewKey, Role, hash_password, new_api_key, new_token_secret
from controller.db import DATABASE_AWAY_ERRORS, database_is_away
from controller.registry import Base

log = logging.getLogger(__name__)
CACHE_TTL_S = 5.0
STALE_OK_S = 900.0  # with the database away, credentials checked this recently still count


class UserRow(Base):
    __tablename__ = "users"
    username: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(200))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column()
    # Tokens issued before this instant are refused: set on password change and on disable.
    tokens_valid_after: Mapped[dt.datetime] = mapped_column()


class ApiKeyRow(Base):
    __tablename__ = "api_keys"
    key_id: Mapped[str] = mapped_column(String(12), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), index=True)
    role: Mapped[str] = mapped_column(String(16))
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column()
    created_by: Mapped[str] = mapped_column(String(100))
    revoked_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)


class AuthSecretRow(Base):
    __tablename__ = "auth_secrets"
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))


class AuditRow(Base):
    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(120), index=True)
    role: Mapped[str | None] = mapped_column(String(16), nullable=True)
    action: Mapped[str] = mapped_column(String(300))
    status: Mapped[int] = mapped_column(Integer)
    client: Mapped[str] = mapped_column(String(100))
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


M = TypeVar("M", bound=Base)
R = TypeVar("R")


class NameTaken(ValueError):
    pass


@dataclass(frozen=True)
class KeyRecord:
    key_id: str
    name: str
    role: Role
    secret_hash: str
    revoked: bool


@dataclass(frozen=True)
class UserRecord:
    username: str
    role: Role
    password_hash: str
    disabled: bool
    tokens_valid_after: dt.datetime


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class AuthStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.session: async_sessionmaker[AsyncSession] = async_sessionmaker(engine, expire_on_commit=False)
        self._keys: dict[str, tuple[float, KeyRecord | None]] = {}
        self._users: dict[str, tuple[float, UserRecord | None]] = {}
        self._used: dict[str, dt.datetime] = {}
        self._stale_logged = 0.0

    # ---- keys
    async def create_key(self, name: str, role: Role, created_by: str) -> tuple[ApiKeyRow, NewKey]:
        key = new_api_key()
        row = ApiKeyRow(
            key_id=key.key_id,
            name=name,
            role=role,
            secret_hash=key.secret_hash,
            created_at=_now(),
            created_by=created_by,
        )
        async with self.session.begin() as s:
            s.add(row)
        return row, key

    async def revoke_key(self, ident: str, *, by_name: bool = False) -> list[ApiKeyRow]:
        """Revoke the live key with this id (or every live key of this name); returns what was revoked."""
        column = ApiKeyRow.name if by_name else ApiKeyRow.key_id
        async with self.session.begin() as s:
            rows = (
                await s.scalars(select(ApiKeyRow).where(column == ident, ApiKeyRow.revoked_at.is_(None)))
            ).all()
            for row in rows:
                row.revoked_at = _now()
        for row in rows:
            self._keys.pop(row.key_id, None)
        return list(rows)

    async def keys(self) -> Sequence[ApiKeyRow]:
        async with self.session() as s:
            return (await s.scalars(select(ApiKeyRow).order_by(ApiKeyRow.created_at))).all()

    async def key(self, key_id: str) -> KeyRecord | None:
        def record(row: ApiKeyRow) -> KeyRecord:
            return KeyRecord(
                row.key_id, row.name, _role(row.role), row.secret_hash, row.revoked_at is not None
            )

        return await self._cached(self._keys, ApiKeyRow, key_id, record)

    def key_used(self, key_id: str) -> None:
        """Noted in memory and written with the next flush: a key in use must not cost a write a request."""
        self._used[key_id] = _now()

    async def flush_key_use(self) -> None:
        used, self._used = self._used, {}
        if not used:
            return
        async with self.session.begin() as s:
            for key_id, at in used.items():
                await s.execute(update(ApiKeyRow).where(ApiKeyRow.key_id == key_id).values(last_used_at=at))

    # ---- users
    async def create_user(self, username: str, role: Role, password: str) -> UserRow:
        digest = await asyncio.to_thread(hash_password, password)
        now = _now()
        row = UserRow(
            username=username,
            role=role,
            password_hash=digest,
            disabled=False,
            created_at=now,
            tokens_valid_after=now - dt.timedelta(seconds=1),
        )
        try:
            async with self.session.begin() as s:
                s.add(row)
        except IntegrityError as exc:
            raise NameTaken(f"user {username!r} already exists") from exc
        return row

    async def update_user(
        self,
        username: str,
        *,
        role: Role | None = None,
        password: str | None = None,
        disabled: bool | None = None,
    ) -> UserRow | None:
        digest = None if password is None else await asyncio.to_thread(hash_password, password)
        async with self.session.begin() as s:
            row = await s.get(UserRow, username)
            if row is None:
                return None
            if role is not None and role != row.role:
                row.role = role
                row.tokens_valid_after = _now()  # a token carries its role: old ones must go
            if digest is not None:
                row.password_hash = digest
                row.tokens_valid_after = _now()
            if disabled is not None:
                row.disabled = disabled
                if disabled:
                    row.tokens_valid_after = _now()
        self._users.pop(username, None)
        return row

    async def delete_user(self, username: str) -> bool:
        async with self.session.begin() as s:
            row = await s.get(UserRow, username)
            if row is not None:
                await s.delete(row)
        self._users.pop(username, None)
        return row is not None

    async def users(self) -> Sequence[UserRow]:
        async with self.session() as s:
            return (await s.scalars(select(UserRow).order_by(UserRow.username))).all()

    async def user(self, username: str, *, fresh: bool = False) -> UserRecord | None:
        def record(row: UserRow) -> UserRecord:
            valid_after = row.tokens_valid_after
            return UserRecord(row.username, _role(row.role), row.password_hash, row.disabled, valid_after)

        if fresh:
            self._users.pop(username, None)
        return await self._cached(self._users, UserRow, username, record)

    async def _cached(
        self,
        cache: dict[str, tuple[float, R | None]],
        model: type[M],
        key: str,
        record: Callable[[M], R],
    ) -> R | None:
        """A row's record, from the cache when looked up in the last CACHE_TTL_S seconds (absence too)."""
        hit = cache.get(key)
        if hit is not None and time.monotonic() - hit[0] < CACHE_TTL_S:
            return hit[1]
        try:
            async with self.session() as s:
                row = await s.get(model, key)
        except DATABASE_AWAY_ERRORS as exc:
            # The database is away (restart, failover): a credential seen in the last STALE_OK_S
            # still counts, so the IOC keeps the live state; nothing can be revoked meanwhile.
            if hit is None or time.monotonic() - hit[0] > STALE_OK_S or not database_is_away(exc):
                raise
            if time.monotonic() - self._stale_logged > 60:
                self._stale_logged = time.monotonic()
                log.warning("credentials: the database is away (%s); using what was checked before", exc)
            return hit[1]
        value = None if row is None else record(row)
        cache[key] = (time.monotonic(), value)
        return value

    async def has_credentials(self) -> bool:
        async with self.session() as s:
            keys = await s.scalar(
                select(func.count()).select_from(ApiKeyRow).where(ApiKeyRow.revoked_at.is_(None))
            )
            users = await s.scalar(select(func.count()).select_from(UserRow))
        return bool(keys) or bool(users)

    # ---- token secret
    async def token_secret(self) -> str:
        """The signing secret, made on first use; shared by every instance on this database."""
        async with self.session() as s:
            row = await s.get(AuthSecretRow, "token")
        if row is not None:
            return row.value
        try:
            async with self.session.begin() as s:
                s.add(AuthSecretRow(name="token", value=new_token_secret()))
        except IntegrityError:
            pass  # another instance made it first: use theirs
        async with self.session() as s:
            made = await s.get(AuthSecretRow, "token")
        assert made is not None
        return made.value

    # ---- audit
    async def audit(
        self,
        actor: str,
        role: str | None,
        action: str,
        status: int,
        client: str,
        detail: dict[str, Any] | None = None,
    ) -> None:
        async with self.session.begin() as s:
            s.add(
                AuditRow(
                    at=_now(),
                    actor=actor[:120],
                    role=role,
                    action=action[:300],
                    status=status,
                    client=client[:100],
                    detail=detail,
                )
            )

    async def audit_log(
        self,
        *,
        actor: str | None = None,
        action: str | None = None,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> tuple[Sequence[AuditRow], int]:
        query = select(AuditRow)
        if actor is not None:
            query = query.where(AuditRow.actor == actor)
        if action is not None:
            query = query.where(AuditRow.action.contains(action, autoescape=True))
        if since is not None:
            query = query.where(AuditRow.at >= since.astimezone(dt.UTC).replace(tzinfo=None))
        if until is not None:
            query = query.where(AuditRow.at < until.astimezone(dt.UTC).replace(tzinfo=None))
        async with self.session() as s:
            total = await s.scalar(select(func.count()).select_from(query.subquery()))
            rows = (await s.scalars(query.order_by(AuditRow.id.desc()).limit(limit).offset(offset))).all()
        return rows, int(total or 0)


def _role(value: str) -> Role:
    for role in ROLES:
        if value == role:
            return role
    raise ValueError(f"unknown role {value!r} in the database")

"""Login, and the admin's routes for users and API keys."""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from api.access import ROLE_PERMISSIONS, CurrentPrincipal, Guard, Permission, allow
from api.deps import Service
from api.errors import ApiError, ErrorBody
from controller.auth.credentials import Role, issue_token, verify_password_or_dummy
from controller.auth.store import ApiKeyRow, NameTaken, UserRow
from schedules.inputs import Flag

NAME = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$"
Name = Annotated[str, Field(pattern=NAME, description="letters, digits and . _ @ -; up to 64")]
Password = Annotated[str, Field(min_length=10, max_length=200, description="10 to 200 characters")]

login_router = APIRouter(prefix="/api/v1/auth", tags=["access"])
me_router = APIRouter(prefix="/api/v1/auth", tags=["access"], dependencies=[allow(Permission.READ)])
admin_router = APIRouter(prefix="/api/v1", tags=["access"], dependencies=[allow(Permission.ADMIN)])


class LoginIn(BaseModel):
    username: Annotated[str, Field(min_length=1, max_length=64)]
    password: Annotated[str, Field(min_length=1, max_length=200)]


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int = Field(description="seconds")
    expires_at: datetime
    username: str
    role: Role


class MeOut(BaseModel):
    kind: str
    name: str
    role: Role
    permissions: list[str]


@login_router.post(
    "/login",
    response_model=TokenOut,
    responses={
        401: {"model": ErrorBody, "description": "wrong username or password"},
        429: {"model": ErrorBody, "description": "too many failures: wait Retry-After seconds"},
    },
    summary="Exchange a username and password for a short-lived bearer token",
)
async def login(request: Request, guard: Guard, body: LoginIn) -> TokenOut:
    client = request.client.host if request.client else "unknown"
    user_key = f"user:{body.username}"
    # The attempt is counted before the password is checked (controller/auth/lockout.py).
    wait = await guard.logins.claim([user_key, f"addr:{client}"])
    if wait > 0:
        raise ApiError(
            429,
            "locked_out",
            f"too many failed logins for this user or address: try again in {math.ceil(wait)} s",
            headers={"Retry-After": str(math.ceil(wait))},
        )
    read_at = datetime.now(UTC)  # the token is as old as what it was checked against
    user = await guard.store.user(body.username, fresh=True)
    # The hash is checked even for an unknown user, so timing does not tell which names exist.
    stored = user.password_hash if user is not None else None
    good = await asyncio.to_thread(verify_password_or_dummy, body.password, stored)
    if user is None or not good or user.disabled:
        request.state.audit_actor = f"user:{body.username}"
        raise ApiError(401, "unauthorized", "wrong username or password, or the user is disabled")
    await guard.logins.succeeded(user_key, f"addr:{client}")
    request.state.audit_actor = f"user:{user.username}"
    token = issue_token(user.username, user.role, await guard.token_secret(), guard.token_ttl, read_at)
    return TokenOut(
        access_token=token,
        expires_in=int(guard.token_ttl.total_seconds()),
        expires_at=(read_at + guard.token_ttl).replace(microsecond=0),
        username=user.username,
        role=user.role,
    )


@me_router.get("/me", response_model=MeOut, summary="Who the credentials belong to, and what they may do")
async def me(principal: CurrentPrincipal) -> MeOut:
    return MeOut(
        kind=principal.kind,
        name=principal.name,
        role=principal.role,
        permissions=sorted(p.value for p in ROLE_PERMISSIONS[principal.role]),
    )


# ---- users


class UserIn(BaseModel):
    username: Name
    role: Role
    password: Password


class UserPatch(BaseModel):
    role: Role | None = None
    password: Password | None = None
    disabled: Flag | None = None


class UserOut(BaseModel):
    username: str
    role: str
    disabled: bool
    created_at: datetime


def _user_out(row: UserRow) -> UserOut:
    return UserOut(
        username=row.username,
        role=row.role,
        disabled=row.disabled,
        created_at=row.created_at,
    )


_NO_USER: dict[int | str, dict[str, Any]] = {404: {"model": ErrorBody, "description": "no such user"}}


@admin_router.get("/users", response_model=list[UserOut], summary="Users who log in")
async def list_users(service: Service) -> list[UserOut]:
    return [_user_out(u) for u in await service.auth.users()]


@admin_router.post(
    "/users",
    response_model=UserOut,
    status_code=201,
    responses={409: {"model": ErrorBody, "description": "the name is taken"}},
    summary="Add a user",
)
async def add_user(service: Service, body: UserIn) -> UserOut:
    try:
        row = await service.auth.create_user(body.username, body.role, body.password)
    except NameTaken as exc:
        raise ApiError(409, "conflict", str(exc)) from None
    return _user_out(row)


@admin_router.patch(
    "/users/{username}",
    response_model=UserOut,
    responses=_NO_USER,
    summary="Change a user's role or password, or disable them (their tokens stop working)",
)
async def change_user(service: Service, username: str, body: UserPatch) -> UserOut:
    row = await service.auth.update_user(
        username, role=body.role, password=body.password, disabled=body.disabled
    )
    if row is None:
        raise ApiError(404, "not_found", f"no user {username!r}")
    return _user_out(row)


@admin_router.delete("/users/{username}", status_code=204, responses=_NO_USER, summary="Remove a user")
async def remove_user(service: Service, username: str) -> Response:
    if not await service.auth.delete_user(username):
        raise ApiError(404, "not_found", f"no user {username!r}")
    return Response(status_code=204)


# ---- API keys


class KeyIn(BaseModel):
    name: Name
    role: Role


class KeyOut(BaseModel):
    key_id: str
    name: str
    role: str
    created_at: datetime
    created_by: str
    revoked_at: datetime | None
    last_used_at: datetime | None


class NewKeyOut(KeyOut):
    key: str = Field(description="the key itself: shown this once, store it now")


def _key_out(row: ApiKeyRow) -> KeyOut:
    return KeyOut(
        key_id=row.key_id,
        name=row.name,
        role=row.role,
        created_at=row.created_at,
        created_by=row.created_by,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
    )


@admin_router.get("/keys", response_model=list[KeyOut], summary="API keys (never the keys themselves)")
async def list_keys(service: Service) -> list[KeyOut]:
    store = service.auth
    await store.flush_key_use()
    return [_key_out(k) for k in await store.keys()]


@admin_router.post(
    "/keys", response_model=NewKeyOut, status_code=201, summary="Create an API key; the answer shows it once"
)
async def add_key(service: Service, body: KeyIn, principal: CurrentPrincipal) -> NewKeyOut:
    row, key = await service.auth.create_key(body.name, body.role, principal.actor)
    return NewKeyOut(**_key_out(row).model_dump(), key=key.plaintext)


@admin_router.delete(
    "/keys/{key_id}",
    status_code=204,
    responses={404: {"model": ErrorBody, "description": "no live key with that id"}},
    summary="Revoke an API key",
)
async def revoke_key(service: Service, key_id: str) -> Response:
    if not await service.auth.revoke_key(key_id):
        raise ApiError(404, "not_found", f"no live API key {key_id!r}")
    return Response(status_code=204)

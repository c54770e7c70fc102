"""Who may call what: credentials → a principal with a role; routes declare the permission they need.

Every route of the API depends on `allow(...)` through its router (reads) and, for changes, on a
stricter permission beside it; `/healthz`, the login route, the OpenAPI description and the
dashboard's static files are the only things served without credentials.

Credentials, in this order:
- `X-API-Key: ll_…` — machine clients such as the IOC;
- `Authorization: Bearer <token>` — a token from `POST /api/v1/auth/login` (people), or an API key
  (for clients that can only send bearer credentials, like Prometheus).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from api.errors import ApiError
from api.throttle import RateLimiter
from controller.auth.credentials import (
    InvalidToken,
    Role,
    TokenClaims,
    key_matches,
    read_token,
    split_api_key,
)
from controller.auth.lockout import LoginLockout
from controller.auth.store import AuthStore
from controller.config import ApiSettings


class Permission(StrEnum):
    READ = "read"  # everything a viewer (the IOC) sees
    REPORT = "report"  # forward citizen reports: the IOC receives them, so viewers may
    ACKNOWLEDGE = "acknowledge"  # acknowledge alerts
    OPERATE = "operate"  # switch and dim devices and groups now (commands; not the schedules)
    SCHEDULES = "schedules"  # programs, calendars, overrides
    DEVICES = "devices"  # firmware, campaigns, device maintenance
    ADMIN = "admin"  # users, keys, audit log, webhook dead letters


_WATCH = {Permission.READ, Permission.REPORT, Permission.ACKNOWLEDGE, Permission.OPERATE}
ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    "viewer": frozenset({Permission.READ, Permission.REPORT}),
    # the night shift: sees everything, acknowledges, switches and dims; no schedules, users, firmware
    "operator": frozenset(_WATCH),
    "engineer": frozenset(_WATCH | {Permission.SCHEDULES}),
    "technician": frozenset(_WATCH | {Permission.DEVICES}),
    "admin": frozenset(Permission),
}


@dataclass(frozen=True)
class Principal:
    kind: str  # "key" or "user"
    name: str  # key name, or username
    role: Role
    key_id: str | None = None

    @property
    def actor(self) -> str:
        return f"key:{self.name}({self.key_id})" if self.kind == "key" else f"user:{self.name}"


class AccessGuard:
    """Checks credentials for one app; holds the token secret, the rate limiter and login lockout."""

    def __init__(self, store: AuthStore, logins: LoginLockout, settings: ApiSettings) -> None:
        self.store = store
        self.logins = logins
        self.settings = settings
        self.token_ttl = timedelta(seconds=settings.token_ttl_s)
        self.limiter = RateLimiter(settings.rate_limit_per_s, settings.rate_limit_burst)
        self._secret: str | None = None

    async def token_secret(self) -> str:
        if self._secret is None:
            self._secret = await self.store.token_secret()
        return self._secret

    async def identify(self, api_key: str | None, bearer: str | None, client: str) -> Principal:
        """The caller these credentials name; a refusal counts against the client's address, so
        unauthenticated probing is rate-limited per address."""
        try:
            return await self.principal(api_key, bearer)
        except ApiError:
            self.rate_limit(f"addr:{client}")
            raise

    async def principal(self, api_key: str | None, bearer: str | None) -> Principal:
        if api_key:
            return await self._from_key(api_key)
        if bearer:
            if bearer.startswith("ll_"):
                return await self._from_key(bearer)
            return await self._from_token(bearer)
        raise _unauthorized("send an API key in X-API-Key, or a token from POST /api/v1/auth/login")

    async def _from_key(self, presented: str) -> Principal:
        parts = split_api_key(presented)
        if parts is None:
            raise _unauthorized("the API key is malformed (expected ll_<id>_<secret>)")
        key_id, secret = parts
        record = await self.store.key(key_id)
        if record is None or not key_matches(secret, record.secret_hash):
            raise _unauthorized("unknown API key")
        if record.revoked:
            raise _unauthorized("this API key has been revoked")
        self.store.key_used(key_id)
        return Principal("key", record.name, record.role, key_id)

    async def _from_token(self, token: str) -> Principal:
        try:
            claims: TokenClaims = read_token(token, await self.token_secret())
        except InvalidToken as exc:
            raise _unauthorized(str(exc)) from None
        user = await self.store.user(claims.username)
        if user is None or user.disabled:
            raise _unauthorized("this user no longer exists or is disabled")
        # To the microsecond: a change made in the same second as a login ends that session too.
        if claims.issued_at < user.tokens_valid_after:
            raise _unauthorized("this token was issued before the user's password or role changed")
        # The role is the user's now, not the one written into the token when it was issued.
        return Principal("user", user.username, user.role)

    def rate_limit(self, identity: str) -> None:
        wait = self.limiter.take(identity)
        if wait > 0:
            raise ApiError(
                429,
                "rate_limited",
                f"too many requests: at most {self.settings.rate_limit_per_s:g}/s "
                f"(bursts of {self.settings.rate_limit_burst}); retry in {wait:.1f} s",
                headers={"Retry-After": str(math.ceil(wait))},
            )


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": 'Bearer realm="lamplighter"'})


def guard_of(request: Request) -> AccessGuard:
    guard: AccessGuard = request.app.state.guard
    return guard


async def _guard(request: Request) -> AccessGuard:  # async: see api/deps.py
    return guard_of(request)


Guard = Annotated[AccessGuard, Depends(_guard)]


# Declared as security schemes so the OpenAPI description (and /docs) shows both ways in.
_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="an API key (ll_…)")
_bearer = HTTPBearer(auto_error=False, description="a token from POST /api/v1/auth/login, or an API key")


async def current_principal(
    request: Request,
    api_key: Annotated[str | None, Depends(_key_header)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller, once per request (FastAPI caches it across the route's dependencies). A request
    with a body was identified before its body was read (api/gate.py)."""
    guard = guard_of(request)
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is None:
        client = request.client.host if request.client else "unknown"
        principal = await guard.identify(api_key, bearer.credentials if bearer else None, client)
        request.state.principal = principal
    guard.rate_limit(principal.actor)
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def forbidden(principal: Principal, permission: Permission) -> ApiError:
    """403 naming the caller's role and the roles that would do."""
    return ApiError(
        403,
        "forbidden",
        f"{principal.actor} has role {principal.role!r}, which may not {permission.value}: "
        f"this needs one of {', '.join(r for r, p in ROLE_PERMISSIONS.items() if permission in p)}",
    )


def allow(permission: Permission) -> Any:
    """A dependency that lets the request through only if the caller's role grants `permission`."""

    async def _check(principal: CurrentPrincipal) -> Principal:
        if permission not in ROLE_PERMISSIONS[principal.role]:
            raise forbidden(principal, permission)
        return principal

    return Depends(_check)

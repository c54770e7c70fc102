"""The audit log: every request that changes something — who, what, when, from where, and the answer.

A pure ASGI middleware (no buffering of responses, so the SSE stream is untouched) records each
POST/PUT/PATCH/DELETE after it is answered, refused ones included: a 403 is exactly what an auditor
wants to see. A JSON body of up to 4 KB is kept with secrets masked; a body that is longer, or not
valid JSON, is described by type and size only, never kept as text (a login with a trailing comma
would otherwise leave its password here). Query parameters that carry secrets are masked too.

Requests from no one — no credentials, or credentials refused — and requests refused by a rate
limit or the login lockout (429) are counted (`lamplighter_api_refused_total`) and logged at most
once a minute, not written: a row for each would let anyone fill the disk. Login attempts whose
password was checked are written, under the name they tried.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Query
from prometheus_client import Counter
from pydantic import BaseModel
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.access import Permission, allow
from api.deps import Service
from api.errors import ErrorBody
from api.models import Page
from api.params import Limit, Offset, instant
from controller.auth.store import AuthStore
from drivers.ratelog import RateLimitedLog
from schedules.inputs import Instant

log = logging.getLogger(__name__)
MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_KEEP_BYTES = 4096
_SECRET_FIELDS = frozenset(
    {"password", "secret", "token", "key", "access_token", "passphrase", "api_key", "apikey"}
)


class AuditMiddleware:
    def __init__(self, app: ASGIApp, store: AuthStore, refused: Counter) -> None:
        self.app = app
        self.store = store
        self.refused = refused
        self._refusals_log = RateLimitedLog(log, interval_s=60.0)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in MUTATING:
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})  # the route's Request.state writes the principal here
        body = bytearray()
        status = 0

        async def receive_and_keep() -> Message:
            message = await receive()
            if message["type"] == "http.request" and len(body) < _KEEP_BYTES:
                body.extend(message.get("body", b"")[: _KEEP_BYTES - len(body)])
            return message

        recorded = False

        async def send_and_note(message: Message) -> None:
            nonlocal status, recorded
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                # Written before the answer ends: a client that has its answer finds the record.
                recorded = True
                await self._record(scope, status or 500, bytes(body))
            await send(message)

        try:
            await self.app(scope, receive_and_keep, send_and_note)
        finally:
            if not recorded:  # the app failed before it answered
                await self._record(scope, status or 500, bytes(body))

    async def _record(self, scope: Scope, status: int, body: bytes) -> None:
        state = scope.get("state", {})
        principal = state.get("principal")
        client = scope.get("client")
        # Throttled (429) or anonymous: counted and logged, not written (see the module's note).
        if status == 429 or (principal is None and "audit_actor" not in state):
            self.refused.labels(str(status)).inc()
            self._refusals_log.warning(
                status, "refused %s %s from %s: %d", scope["method"], scope["path"], client, status
            )
            return
        actor = principal.actor if principal is not None else state["audit_actor"]
        query = _masked_query(scope.get("query_string", b"").decode("latin-1"))
        action = f"{scope['method']} {scope['path']}" + (f"?{query}" if query else "")
        try:
            await self.store.audit(
                actor,
                principal.role if principal is not None else None,
                action,
                status,
                client[0] if client else "unknown",
                _describe(scope, body),
            )
        except Exception:  # the change is made; the failure must still be seen
            log.exception("could not write the audit record of %s by %s", action, actor)


def _describe(scope: Scope, body: bytes) -> dict[str, Any] | None:
    if not body:
        return None
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
    content_type = headers.get("content-type", "")
    size = int(headers["content-length"]) if headers.get("content-length", "").isdigit() else len(body)
    if "json" in content_type and size < _KEEP_BYTES:
        try:
            return {"body": _mask(json.loads(body))}
        except (ValueError, UnicodeDecodeError):
            return {"content_type": content_type[:100], "bytes": size, "kept": "no: not valid JSON"}
    kept = "no: longer than 4 KB" if "json" in content_type else "no: not JSON"
    return {"content_type": content_type[:100], "bytes": size, "kept": kept}


def _masked_query(query: str) -> str:
    """The query string with the values of secret-looking parameters (`?api_key=…`) masked."""
    if not query:
        return query
    pairs = parse_qsl(query, keep_blank_values=True)
    if not any(k.lower() in _SECRET_FIELDS for k, _ in pairs):
        return query
    return urlencode([(k, "***" if k.lower() in _SECRET_FIELDS else v) for k, v in pairs])


def _mask(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: "***" if str(k).lower() in _SECRET_FIELDS else _mask(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask(v) for v in value]
    return value


class AuditOut(BaseModel):
    id: int
    at: datetime
    actor: str
    role: str | None
    action: str
    status: int
    client: str
    detail: dict[str, Any] | None


router = APIRouter(prefix="/api/v1", tags=["access"], dependencies=[allow(Permission.ADMIN)])


@router.get(
    "/audit",
    response_model=Page[AuditOut],
    responses={400: {"model": ErrorBody, "description": "invalid_range: `from` or `to` out of range"}},
    summary="Who changed what, when and from where; newest first",
)
async def audit_log(
    service: Service,
    actor: Annotated[
        str | None, Query(max_length=120, description="e.g. user:alice or key:ioc(0a1b2c3d4e5f)")
    ] = None,
    action: Annotated[
        str | None, Query(max_length=300, description="part of the method and path, e.g. /overrides")
    ] = None,
    since: Annotated[Instant | None, Query(alias="from")] = None,
    until: Annotated[Instant | None, Query(alias="to")] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Page[AuditOut]:
    rows, total = await service.auth.audit_log(
        actor=actor,
        action=action,
        since=instant(since, "from") if since else None,
        until=instant(until, "to") if until else None,
        limit=limit,
        offset=offset,
    )
    items = [
        AuditOut(
            id=r.id,
            at=r.at,
            actor=r.actor,
            role=r.role,
            action=r.action,
            status=r.status,
            client=r.client,
            detail=r.detail,
        )
        for r in rows
    ]
    return Page[AuditOut](items=items, total=total, limit=limit, offset=offset)

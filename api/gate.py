"""Who is sending a body, and how big it may be, is settled before the body is read.

FastAPI reads and parses a request's body before it runs the route's dependencies, the credential
check among them: 400 MB sent to `/api/v1/firmware` without a key was received and parsed before
the 401. This pure ASGI middleware checks the credentials in the headers of every request that
carries a body (the login excepted: its body is the credentials) and answers 401 — or 403 where a
route accepts larger bodies from some roles only — without reading a byte of it. uvicorn then
closes the connection rather than drain the rest; a client that sent `Expect: 100-continue` never
sends it at all.

It also enforces the body limits (`[api] max_body_bytes`; firmware uploads `[firmware]
max_image_mb` and 1 MB for the manifest): a declared length over the limit gets 413 at once, a
chunked body the moment it passes the limit, always as JSON.
"""

from __future__ import annotations

from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.access import ROLE_PERMISSIONS, AccessGuard, Permission, forbidden
from api.errors import ApiError, error_response

#: routes that accept bodies above `[api] max_body_bytes`, and who may send them
LARGE_BODIES = {"/api/v1/firmware": Permission.DEVICES}
_NO_CREDENTIALS_NEEDED = frozenset({"/api/v1/auth/login"})
_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})
_MANIFEST_AND_FORM = 2**20  # what an upload carries besides the image


class RequestGate:
    def __init__(self, app: ASGIApp, guard: AccessGuard, max_body_bytes: int, max_image_bytes: int) -> None:
        self.app = app
        self.guard = guard
        self.max_body_bytes = max_body_bytes
        self.large_limits = dict.fromkeys(LARGE_BODIES, max_image_bytes + _MANIFEST_AND_FORM)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _WITH_BODY:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if headers.get("content-length", "0") == "0" and "transfer-encoding" not in headers:
            await self.app(scope, receive, send)
            return
        limit = self.large_limits.get(scope["path"], self.max_body_bytes)
        if scope["path"] in _NO_CREDENTIALS_NEEDED:
            await self._limited(scope, receive, send, headers, limit)
            return
        authorization = headers.get("authorization", "")
        scheme, _, credentials = authorization.partition(" ")
        bearer = credentials.strip() if scheme.lower() == "bearer" else None
        client = scope["client"][0] if scope.get("client") else "unknown"
        try:
            principal = await self.guard.identify(headers.get("x-api-key"), bearer, client)
            # The routes' dependency takes it from here instead of looking the credentials up
            # again; the audit log records it, refused or not.
            scope.setdefault("state", {})["principal"] = principal
            needed = LARGE_BODIES.get(scope["path"])
            if needed is not None and needed not in ROLE_PERMISSIONS[principal.role]:
                raise forbidden(principal, needed)
        except ApiError as exc:
            response = error_response(
                exc.status,
                exc.code,
                exc.message,
                exc.details,
                {**exc.headers, "Connection": "close"},
                scope=scope,
            )
            await response(scope, receive, send)
            return
        await self._limited(scope, receive, send, headers, limit)

    async def _limited(
        self, scope: Scope, receive: Receive, send: Send, headers: Headers, limit: int
    ) -> None:
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            await _too_large(limit, scope)(scope, receive, send)
            return
        received = 0

        async def receive_within_limit() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:  # a chunked body, or one longer than it said
                raise HTTPException(413, _too_large_text(limit))  # answered as JSON by api/errors.py
            return message

        await self.app(scope, receive_within_limit, send)


def _too_large_text(limit: int) -> str:
    return f"the body is larger than this route accepts ({limit:,} bytes)"


def _too_large(limit: int, scope: Scope) -> JSONResponse:
    return error_response(
        413, "too_large", _too_large_text(limit), headers={"Connection": "close"}, scope=scope
    )

"""Who may call what: the role matrix on every route, logins and tokens, keys, lockout, limits, audit."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from api.app import create_app
from controller.auth.credentials import ROLES, issue_token
from controller.auth.store import CACHE_TTL_S
from controller.runtime import Controller
from controller.service import ControllerService
from tests.api.keys import auth_headers, serving, with_api
from tests.controller.city import settings_for
from tests.waiting import fetched_until

# The specification this test holds the app to: who may call each route. A route added to the app
# without a row here fails the test, so no route can ship unguarded by accident.
V, OP, E, T, A = "viewer", "operator", "engineer", "technician", "admin"
EVERYONE = {V, OP, E, T, A}
ACTING = {OP, E, T, A}
ROLE_MATRIX: dict[str, set[str]] = {
    "GET /api/v1/auth/me": EVERYONE,
    "GET /api/v1/users": {A},
    "POST /api/v1/users": {A},
    "PATCH /api/v1/users/{username}": {A},
    "DELETE /api/v1/users/{username}": {A},
    "GET /api/v1/keys": {A},
    "POST /api/v1/keys": {A},
    "DELETE /api/v1/keys/{key_id}": {A},
    "GET /api/v1/audit": {A},
    "GET /api/v1/devices": EVERYONE,
    "GET /api/v1/devices/{device_id}": EVERYONE,
    "GET /api/v1/devices/{device_id}/telemetry": EVERYONE,
    "POST /api/v1/devices/{device_id}/commands": ACTING,
    "GET /api/v1/devices/{device_id}/commands": EVERYONE,
    "GET /api/v1/devices/{device_id}/commands/{command_id}": EVERYONE,
    "POST /api/v1/groups/{group}/commands": ACTING,
    "GET /api/v1/schedules/preview": EVERYONE,
    "POST /api/v1/schedules/preview": {E, A},
    "GET /api/v1/schedule-history": EVERYONE,
    "GET /api/v1/schedule-history/version": EVERYONE,
    "GET /api/v1/schedule-history/compare": EVERYONE,
    "POST /api/v1/schedule-history/restore": {E, A},
    "GET /api/v1/schedules": EVERYONE,
    "PUT /api/v1/schedules/{program_id}": {E, A},
    "DELETE /api/v1/schedules/{program_id}": {E, A},
    "GET /api/v1/calendars": EVERYONE,
    "PUT /api/v1/calendars/{calendar_id}": {E, A},
    "DELETE /api/v1/calendars/{calendar_id}": {E, A},
    "PUT /api/v1/groups/{group}/calendar": {E, A},
    "DELETE /api/v1/groups/{group}/calendar": {E, A},
    "GET /api/v1/overrides": EVERYONE,
    "POST /api/v1/overrides": {E, A},
    "DELETE /api/v1/overrides/{override_id}": {E, A},
    "GET /api/v1/alerts": EVERYONE,
    "GET /api/v1/alerts/{alert_id}": EVERYONE,
    "POST /api/v1/alerts/{alert_id}/ack": ACTING,
    "POST /api/v1/alerts/ack": ACTING,
    "GET /api/v1/events": EVERYONE,
    "POST /api/v1/reports": EVERYONE,
    "GET /api/v1/reports": EVERYONE,
    "GET /api/v1/reports/{report_id}": EVERYONE,
    "GET /api/v1/webhooks/dead-letters": EVERYONE,
    "POST /api/v1/webhooks/dead-letters/{letter_id}/retry": {A},
    "GET /api/v1/energy": EVERYONE,
    "GET /api/v1/monthly-report": EVERYONE,
    "GET /api/v1/wifi": EVERYONE,
    "GET /api/v1/noise": EVERYONE,
    "GET /api/v1/air": EVERYONE,
    "GET /api/v1/air/history": EVERYONE,
    "GET /api/v1/air/daily": EVERYONE,
    "GET /api/v1/firmware": EVERYONE,
    "POST /api/v1/firmware": {T, A},
    "GET /api/v1/campaigns": EVERYONE,
    "POST /api/v1/campaigns": {T, A},
    "GET /api/v1/campaigns/{campaign_id}": EVERYONE,
    "POST /api/v1/campaigns/{campaign_id}/{action}": {T, A},
    "GET /api/v1/geojson": EVERYONE,
    "GET /api/v1/geojson/changes": EVERYONE,
    "GET /api/v1/map/view": EVERYONE,
    "GET /api/v1/map": EVERYONE,
    "GET /api/v1/kpis": EVERYONE,
    "GET /ngsi-ld/v1/entities": EVERYONE,
    "GET /ngsi-ld/v1/entities/{entity_id}": EVERYONE,
    "GET /metrics": EVERYONE,
}
PUBLIC = {
    "POST /api/v1/auth/login",
    "GET /healthz",
    "GET /ngsi-ld/v1/jsonldContexts/lamplighter",
    "GET /open-data/v1/city",  # what the city publishes: no credentials, rate-limited per address
}


@pytest.fixture
async def api(tmp_path: Path, registry_url: str) -> AsyncIterator[tuple[Controller, str]]:
    async with serving(settings_for(tmp_path, registry_url=registry_url)) as served:
        yield served


async def status_of(client: httpx.AsyncClient, method: str, path: str, headers: dict[str, str]) -> int:
    concrete = path.replace("{group}", "hanoi").replace("{action}", "pause")
    for name in ("username", "key_id", "device_id", "command_id", "program_id", "calendar_id"):
        concrete = concrete.replace("{" + name + "}", "1")
    for name in ("override_id", "alert_id", "letter_id", "campaign_id", "report_id", "entity_id"):
        concrete = concrete.replace("{" + name + "}", "1")
    body: dict[str, object] | None = None if method in ("GET", "DELETE") else {}
    # Streamed so the live-event route answers its status without running forever.
    async with client.stream(method, concrete, json=body, headers=headers) as response:
        return response.status_code


async def test_every_route_enforces_the_role_matrix(api: tuple[Controller, str]) -> None:
    ctl, url = api
    paths = create_app(ControllerService(ctl)).openapi()["paths"]
    app_routes = {f"{m.upper()} {p}" for p, ops in paths.items() for m in ops}
    assert app_routes == set(ROLE_MATRIX) | PUBLIC, "every route needs a row in ROLE_MATRIX"

    headers = {role: await auth_headers(ctl, role) for role in ROLES}
    wrong: list[str] = []
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        for route, allowed in ROLE_MATRIX.items():
            method, path = route.split(" ", 1)
            anonymous = await status_of(client, method, path, {})
            if anonymous != 401:
                wrong.append(f"{route} without credentials: {anonymous}")
            for role in ROLES:
                status = await status_of(client, method, path, headers[role])
                if role in allowed and status in (401, 403):
                    wrong.append(f"{route} as {role}: {status}, should be let through")
                if role not in allowed and status != 403:
                    wrong.append(f"{route} as {role}: {status}, should be 403")
        assert (await client.get("/healthz")).status_code in (200, 503)
        assert (await client.get("/openapi.json")).status_code == 200  # the description is public
    assert not wrong, "\n".join(wrong)


async def admin_client(ctl: Controller, url: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=url, timeout=10, headers=await auth_headers(ctl, "admin"))


async def test_people_log_in_for_short_lived_tokens_and_bad_tokens_are_refused(
    api: tuple[Controller, str],
) -> None:
    ctl, url = api
    async with await admin_client(ctl, url) as admin, httpx.AsyncClient(base_url=url, timeout=10) as anon:
        made = await admin.post(
            "/api/v1/users", json={"username": "linh", "role": "engineer", "password": "street-lamps-42"}
        )
        assert made.status_code == 201, made.text
        assert "password" not in made.text

        wrong = await anon.post("/api/v1/auth/login", json={"username": "linh", "password": "nope"})
        assert wrong.status_code == 401
        nobody = await anon.post("/api/v1/auth/login", json={"username": "ghost", "password": "x"})
        assert nobody.json()["error"]["message"] == wrong.json()["error"]["message"]  # names not revealed

        login = await anon.post(
            "/api/v1/auth/login", json={"username": "linh", "password": "street-lamps-42"}
        )
        assert login.status_code == 200, login.text
        token = login.json()["access_token"]
        assert login.json()["expires_in"] == ctl.settings.api.token_ttl_s
        bearer = {"Authorization": f"Bearer {token}"}
        me = (await anon.get("/api/v1/auth/me", headers=bearer)).json()
        assert (me["name"], me["role"]) == ("linh", "engineer")
        assert "schedules" in me["permissions"]
        assert "devices" not in me["permissions"]
        assert (await anon.get("/api/v1/keys", headers=bearer)).status_code == 403

        secret = await ctl.auth.token_secret()
        past = datetime.now(UTC) - timedelta(hours=2)
        expired = issue_token("linh", "engineer", secret, timedelta(minutes=15), now=past)
        forged = issue_token("linh", "admin", "not-the-secret-" * 4, timedelta(minutes=15))
        unsigned = jwt.encode(
            {"sub": "linh", "role": "admin", "iat": 0, "exp": 2**40}, key="", algorithm="none"
        )
        for bad, says in [(expired, "expired"), (forged, "signature"), (unsigned, "not valid"), ("abc", "")]:
            answer = await anon.get("/api/v1/devices", headers={"Authorization": f"Bearer {bad}"})
            assert answer.status_code == 401, bad
            assert says in answer.json()["error"]["message"]
            assert answer.headers["WWW-Authenticate"].startswith("Bearer")

        # A new password ends the tokens issued before it, even within the same second.
        changed = await admin.patch("/api/v1/users/linh", json={"password": "another-password-7"})
        assert changed.status_code == 200
        stale = await anon.get("/api/v1/devices", headers=bearer)
        assert stale.status_code == 401
        assert "changed" in stale.json()["error"]["message"]


async def test_repeated_failed_logins_lock_the_user_out_for_a_while_on_every_instance(
    tmp_path: Path, registry_url: str
) -> None:
    """Failures through one instance lock the user out on another: the counts are in the database
    the instances share, so guessing spread over a cluster gets no more tries."""
    settings = with_api(
        settings_for(tmp_path, registry_url=registry_url), lockout_after=3, lockout_s=1.0, lockout_max_s=4.0
    )
    async with (
        serving(settings) as (ctl, url),
        serving(settings) as (_, other_url),
        httpx.AsyncClient(base_url=url, timeout=10) as anon,
        httpx.AsyncClient(base_url=other_url, timeout=10) as elsewhere,
    ):
        await ctl.auth.create_user("minh", "viewer", "correct-horse-9")
        good = {"username": "minh", "password": "correct-horse-9"}
        for _ in range(3):
            bad = await anon.post("/api/v1/auth/login", json={"username": "minh", "password": "guess"})
            assert bad.status_code == 401
        locked = await elsewhere.post("/api/v1/auth/login", json=good)
        assert locked.status_code == 429  # even the right password waits, on the other instance too
        assert int(locked.headers["Retry-After"]) >= 1
        assert "try again" in locked.json()["error"]["message"]
        await asyncio.sleep(1.1)
        assert (await elsewhere.post("/api/v1/auth/login", json=good)).status_code == 200


async def test_keys_made_by_the_cli_work_until_revoked(api: tuple[Controller, str], tmp_path: Path) -> None:
    ctl, url = api
    config = str(tmp_path / "city.toml")
    env = {**os.environ, "LAMPLIGHTER_DATABASE__URL": ctl.settings.database.url}  # the same registry

    async def cli(*args: str) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "lamplighter", "auth", *args, "-c", config,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        return proc.returncode or 0, out.decode(), err.decode()

    code, out, err = await cli("key", "create", "ioc", "--role", "viewer")
    assert code == 0, err
    key = out.strip()
    assert key.startswith("ll_")
    assert "shown only now" in err
    async with httpx.AsyncClient(base_url=url, timeout=10, headers={"X-API-Key": key}) as ioc:
        assert (await ioc.get("/api/v1/devices")).status_code == 200
        assert (await ioc.post("/api/v1/overrides", json={})).status_code == 403
        listed = (await cli("key", "list"))[1]
        assert "ioc" in listed
        assert key not in listed
        assert key.split("_", 2)[2] not in str([r.secret_hash for r in await ctl.auth.keys()])  # only a hash

        code, out, _ = await cli("key", "revoke", "ioc", "--name")
        assert code == 0
        assert "revoked" in out

        answer = await fetched_until(  # other processes keep the key in their cache a while
            lambda: ioc.get("/api/v1/devices"),
            lambda got: got.status_code != 200,
            within_s=CACHE_TTL_S + 3,
            what="the revoked key refused",
        )
        assert answer.status_code == 401
        assert "revoked" in answer.json()["error"]["message"]


async def test_changes_are_audited_with_who_what_when_and_where(api: tuple[Controller, str]) -> None:
    ctl, url = api
    start = datetime.now(UTC) - timedelta(seconds=1)
    now = datetime.now(UTC)
    override = {
        "id": "night-market",
        "group": "hanoi",
        "level": 80,
        "start": now.isoformat(),
        "expiry": (now + timedelta(hours=1)).isoformat(),
        "reason": "<script>alert('x')</script>'; DROP TABLE audit_log;--",
    }
    async with (
        await admin_client(ctl, url) as admin,
        httpx.AsyncClient(base_url=url, timeout=10, headers=await auth_headers(ctl, "viewer")) as viewer,
        httpx.AsyncClient(base_url=url, timeout=10, headers=await auth_headers(ctl, "engineer")) as engineer,
    ):
        created = await engineer.post("/api/v1/overrides", json=override)
        assert created.status_code == 201, created.text
        assert created.json()["reason"] == override["reason"]  # kept as typed; JSON is not markup
        assert (await viewer.delete("/api/v1/overrides/night-market")).status_code == 403
        await admin.post(
            "/api/v1/users", json={"username": "an", "role": "viewer", "password": "pass-word-123"}
        )
        await admin.get("/api/v1/devices")  # reads are not audited

        assert (await viewer.get("/api/v1/audit")).status_code == 403
        log = (await admin.get("/api/v1/audit", params={"from": start.isoformat()})).json()
        entries = {(e["actor"].split("(")[0], e["action"], e["status"]) for e in log["items"]}
        assert ("key:test-engineer", "POST /api/v1/overrides", 201) in entries
        assert ("key:test-viewer", "DELETE /api/v1/overrides/night-market", 403) in entries
        assert ("key:test-admin", "POST /api/v1/users", 201) in entries
        assert not any(e["action"].startswith("GET") for e in log["items"])
        by_action = {e["action"]: e for e in log["items"]}
        assert by_action["POST /api/v1/overrides"]["client"] == "127.0.0.1"
        assert by_action["POST /api/v1/overrides"]["detail"]["body"]["reason"] == override["reason"]
        assert by_action["POST /api/v1/users"]["detail"]["body"]["password"] == "***"
        only = await admin.get("/api/v1/audit", params={"actor": by_action["POST /api/v1/users"]["actor"]})
        assert {e["action"] for e in only.json()["items"]} == {"POST /api/v1/users"}


async def test_rate_limits_cors_and_body_size_are_configurable(tmp_path: Path) -> None:
    settings = with_api(
        settings_for(tmp_path),
        rate_limit_per_s=2.0,
        rate_limit_burst=5,
        cors_origins=["https://ioc.example.city"],
        max_body_bytes=2048,
    )
    async with serving(settings) as (ctl, url):
        headers = await auth_headers(ctl, "engineer")
        async with httpx.AsyncClient(base_url=url, timeout=10, headers=headers) as client:
            statuses = [(await client.get("/api/v1/kpis")).status_code for _ in range(8)]
            assert statuses[:5] == [200] * 5
            limited = await client.get("/api/v1/kpis")
            assert limited.status_code == 429
            assert int(limited.headers["Retry-After"]) >= 1
            await asyncio.sleep(1.0)
            big = {"id": "x", "group": "hanoi", "level": 1, "start": "", "expiry": "", "reason": "x" * 4000}
            too_big = await client.post("/api/v1/overrides", json=big)
            assert too_big.status_code == 413
            malformed = await client.post(
                "/api/v1/overrides", content=b"{not json", headers={"Content-Type": "application/json"}
            )
            assert malformed.status_code == 422

        async with httpx.AsyncClient(base_url=url, timeout=10) as browser:
            preflight: Callable[[str], Any] = lambda origin: browser.options(  # noqa: E731
                "/api/v1/devices",
                headers={"Origin": origin, "Access-Control-Request-Method": "GET",
                         "Access-Control-Request-Headers": "x-api-key"},
            )  # fmt: skip
            ok = await preflight("https://ioc.example.city")
            assert ok.headers.get("access-control-allow-origin") == "https://ioc.example.city"
            other = await preflight("https://evil.example")
            assert "access-control-allow-origin" not in other.headers


async def test_names_that_look_like_sql_or_markup_are_refused(api: tuple[Controller, str]) -> None:
    ctl, url = api
    async with await admin_client(ctl, url) as admin:
        for name in ["'; DROP TABLE users;--", "<img src=x onerror=alert(1)>", "a" * 65, ""]:
            answer = await admin.post(
                "/api/v1/users", json={"username": name, "role": "viewer", "password": "p" * 12}
            )
            assert answer.status_code == 422, name
            answer = await admin.post("/api/v1/keys", json={"name": name, "role": "viewer"})
            assert answer.status_code == 422, name
        assert (await admin.get("/api/v1/users")).json() == []  # the table is there, and empty

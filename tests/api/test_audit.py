"""The audit log keeps no secrets, is not filled by strangers, and records the address that really called."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from tests.api.keys import auth_headers, serving, with_api
from tests.controller.city import settings_for
from tests.waiting import fetched_until


def _refused(metrics: bytes, status: str) -> float:
    prefix = f'lamplighter_api_refused_total{{status="{status}"}} '
    for line in metrics.decode().splitlines():
        if line.startswith(prefix):
            return float(line.removeprefix(prefix))
    return 0.0


async def test_the_audit_log_keeps_no_password_and_no_key(tmp_path: Path) -> None:
    async with serving(settings_for(tmp_path)) as (ctl, url):
        await ctl.auth.create_user("thu", "viewer", "the-right-one-1")
        start = datetime.now(UTC) - timedelta(seconds=1)
        admin_headers = await auth_headers(ctl, "admin")
        key = admin_headers["X-API-Key"]
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            # A login body that does not parse (a trailing comma), by someone who named a user.
            trailing_comma = b'{"username": "thu", "password": "hunter2-secret",}'
            bad = await client.post(
                "/api/v1/auth/login", content=trailing_comma, headers={"Content-Type": "application/json"}
            )
            assert bad.status_code == 422
            # An admin's oversized and malformed bodies, and a key in the query string.
            big = {"username": "tam", "role": "viewer", "password": "s3cret-" + "x" * 5000}
            await client.post("/api/v1/users", json=big, headers=admin_headers)
            await client.post(
                "/api/v1/users",
                content=b'{"username": "tam", "role": "viewer", "password": "pass-word-1234",}',
                headers={**admin_headers, "Content-Type": "application/json"},
            )
            await client.post(f"/api/v1/overrides?api_key={key}", json={"id": "x"}, headers=admin_headers)

            async def audit() -> dict[str, Any]:
                answer = await client.get(
                    "/api/v1/audit", params={"from": start.isoformat()}, headers=admin_headers
                )
                return dict(answer.json())

            # Each record is written as its answer ends. The stranger's malformed login
            # is not one of them: it was refused before anyone was named.
            log = await fetched_until(audit, lambda log: log["total"] >= 3, what="3 audit records")
        text = str(log)
        # ll_<id>_<secret>: the secret may itself hold "_", so split twice at most
        for secret in ("hunter2-secret", "s3cret-", "pass-word-1234", key, key.split("_", 2)[2]):
            assert secret not in text, secret
        actions = [e["action"] for e in log["items"]]
        assert "POST /api/v1/overrides?api_key=%2A%2A%2A" in actions
        kept = [e["detail"] for e in log["items"] if e["action"] == "POST /api/v1/users"]
        assert {d["kept"] for d in kept} == {"no: longer than 4 KB", "no: not valid JSON"}


async def test_strangers_are_counted_not_written(tmp_path: Path) -> None:
    async with serving(settings_for(tmp_path)) as (ctl, url):
        admin_headers = await auth_headers(ctl, "admin")
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            for i in range(30):
                answer = await client.post("/api/v1/overrides", json={"id": f"spam-{i}"})
                assert answer.status_code == 401
                unknown_key = {"X-API-Key": "ll_000000000000_" + "a" * 43}
                forged = await client.post("/api/v1/overrides", json={"id": "x"}, headers=unknown_key)
                assert forged.status_code == 401
            _, total = await ctl.auth.audit_log()
            assert total == 0  # before: 60 rows, one per stranger's request
            metrics = (await client.get("/metrics", headers=admin_headers)).content
            assert _refused(metrics, "401") == 60
            # Someone known is still audited, refused or not.
            viewer = await auth_headers(ctl, "viewer")
            assert (await client.post("/api/v1/overrides", json={}, headers=viewer)).status_code == 403
            rows, total = await fetched_until(ctl.auth.audit_log, lambda log: log[1] > 0)
            assert total == 1
            assert rows[0].actor.startswith("key:test-viewer")


async def test_x_forwarded_for_is_believed_only_from_configured_proxies(tmp_path: Path) -> None:
    settings = with_api(settings_for(tmp_path), lockout_after=2, lockout_s=30.0)
    async with serving(settings) as (ctl, url):
        await ctl.auth.create_user("vy", "viewer", "the-right-one-1")
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            # Each guess claims another address: before, each got its own lockout and rate limit.
            for i in range(4):
                await client.post(
                    "/api/v1/auth/login",
                    json={"username": "nobody", "password": "guess"},
                    headers={"X-Forwarded-For": f"203.0.113.{i}"},
                )
            locked = await client.post(
                "/api/v1/auth/login",
                json={"username": "vy", "password": "the-right-one-1"},
                headers={"X-Forwarded-For": "198.51.100.7"},
            )
            assert locked.status_code == 429  # the address is 127.0.0.1 whatever the header says
        rows, _ = await fetched_until(ctl.auth.audit_log, lambda log: log[1] >= 2)
        assert {r.client for r in rows} == {"127.0.0.1"}

    (tmp_path / "proxy").mkdir()
    behind_proxy = with_api(settings_for(tmp_path / "proxy"), trusted_proxies=["127.0.0.1/32"])
    async with serving(behind_proxy) as (ctl, url), httpx.AsyncClient(base_url=url, timeout=10) as client:
        await client.post(
            "/api/v1/auth/login",
            json={"username": "nobody", "password": "guess"},
            headers={"X-Forwarded-For": "203.0.113.9"},
        )
        rows, _ = await fetched_until(ctl.auth.audit_log, lambda log: log[1] > 0)
        assert [r.client for r in rows] == ["203.0.113.9"]

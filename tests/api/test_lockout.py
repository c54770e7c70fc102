"""The login lockout under concurrency, and sessions that end the moment a user changes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from sqlalchemy import select

from controller.auth.lockout import LockoutPolicy, LoginFailureRow, LoginLockout
from controller.db import create_engine
from controller.registry import Registry
from tests.api.keys import auth_headers, serving, with_api
from tests.controller.city import settings_for

AFTER = 5


async def test_parallel_guesses_spread_over_two_instances_get_no_more_tries(
    tmp_path: Path, registry_url: str
) -> None:
    """40 logins at once for one user, half through each instance, the right password last: before,
    39 wrong passwords were checked and the right one won a token; now at most `lockout_after`
    passwords are checked and the rest wait."""
    settings = with_api(
        settings_for(tmp_path, registry_url=registry_url),
        lockout_after=AFTER,
        lockout_s=30.0,
        lockout_max_s=60.0,
        rate_limit_per_s=0,
    )
    async with (
        serving(settings) as (ctl, url),
        serving(settings) as (_, other_url),
        httpx.AsyncClient(base_url=url, timeout=30) as one,
        httpx.AsyncClient(base_url=other_url, timeout=30) as other,
    ):
        await ctl.auth.create_user("minh", "viewer", "correct-horse-9")
        guesses = [f"guess-{i}" for i in range(39)] + ["correct-horse-9"]
        answers = await asyncio.gather(
            *(
                (one if i % 2 else other).post(
                    "/api/v1/auth/login", json={"username": "minh", "password": password}
                )
                for i, password in enumerate(guesses)
            )
        )
        statuses = [a.status_code for a in answers]
        # At most AFTER passwords were checked (the right one may be among them if it came early).
        assert statuses.count(401) <= AFTER, statuses
        assert statuses.count(429) >= len(guesses) - AFTER - 1, statuses
        assert all(a.headers.get("Retry-After") for a in answers if a.status_code == 429)
        # One more guess: still no more than AFTER wrong passwords checked in all. (Had the right
        # password come early, its success gave the address an attempt back: hence "in all".)
        late = await one.post("/api/v1/auth/login", json={"username": "minh", "password": "one-more-guess"})
        assert statuses.count(401) + (late.status_code == 401) <= AFTER, (statuses, late.status_code)


async def test_a_hundred_parallel_wrong_guesses_are_all_counted(tmp_path: Path, registry_url: str) -> None:
    settings = with_api(
        settings_for(tmp_path, registry_url=registry_url),
        lockout_after=AFTER,
        lockout_s=30.0,
        rate_limit_per_s=0,
    )
    async with serving(settings) as (ctl, url), httpx.AsyncClient(base_url=url, timeout=30) as anon:
        await ctl.auth.create_user("lan", "viewer", "correct-horse-9")
        answers = await asyncio.gather(
            *(
                anon.post("/api/v1/auth/login", json={"username": "lan", "password": f"wrong-{i}"})
                for i in range(100)
            )
        )
        statuses = sorted(a.status_code for a in answers)
        assert statuses == [401] * AFTER + [429] * (100 - AFTER)  # was: 100 × 401, recorded as 3
        async with ctl.auth.session() as s:
            counts = dict((await s.execute(select(LoginFailureRow.key, LoginFailureRow.count))).all())
        assert counts == {"user:lan": AFTER, "addr:127.0.0.1": AFTER}
        right = await anon.post("/api/v1/auth/login", json={"username": "lan", "password": "correct-horse-9"})
        assert right.status_code == 429  # even the right password waits now


async def test_successful_logins_never_lock_out_their_own_address(tmp_path: Path) -> None:
    """Attempts are counted before the password is checked; a success gives its count back."""
    settings = with_api(settings_for(tmp_path), lockout_after=3, lockout_s=30.0)
    async with serving(settings) as (ctl, url), httpx.AsyncClient(base_url=url, timeout=10) as office:
        for name in ("an", "binh", "chi"):
            await ctl.auth.create_user(name, "viewer", f"{name}-password-1")
        for _ in range(4):
            for name in ("an", "binh", "chi"):
                answer = await office.post(
                    "/api/v1/auth/login", json={"username": name, "password": f"{name}-password-1"}
                )
                assert answer.status_code == 200, answer.text
        # Two failures from the office, then successes: still two failures short of three.
        for _ in range(2):
            bad = await office.post("/api/v1/auth/login", json={"username": "an", "password": "typo"})
            assert bad.status_code == 401
        for name in ("binh", "chi", "an"):
            answer = await office.post(
                "/api/v1/auth/login", json={"username": name, "password": f"{name}-password-1"}
            )
            assert answer.status_code == 200, answer.text


async def test_a_role_change_in_the_same_second_as_a_login_ends_that_session(tmp_path: Path) -> None:
    async with (
        serving(settings_for(tmp_path)) as (ctl, url),
        httpx.AsyncClient(base_url=url, timeout=10) as anon,
        httpx.AsyncClient(base_url=url, timeout=10, headers=await auth_headers(ctl, "admin")) as admin,
    ):
        await ctl.auth.create_user("linh", "admin", "street-lamps-42")
        for change in ({"role": "viewer"}, {"password": "another-password-7"}):
            login = await anon.post(
                "/api/v1/auth/login", json={"username": "linh", "password": "street-lamps-42"}
            )
            assert login.status_code == 200, login.text
            bearer = {"Authorization": f"Bearer {login.json()['access_token']}"}
            assert (await anon.get("/api/v1/auth/me", headers=bearer)).status_code == 200
            # No sleep: before, a change made within the login's second left the token valid,
            # still carrying the role it was issued with.
            assert (await admin.patch("/api/v1/users/linh", json=change)).status_code == 200
            stale = await anon.get("/api/v1/auth/me", headers=bearer)
            assert stale.status_code == 401, stale.text
            assert "changed" in stale.json()["error"]["message"]
        login = await anon.post(
            "/api/v1/auth/login", json={"username": "linh", "password": "another-password-7"}
        )
        me = await anon.get(
            "/api/v1/auth/me", headers={"Authorization": f"Bearer {login.json()['access_token']}"}
        )
        assert me.json()["role"] == "viewer"


async def test_parallel_logins_some_right_never_deadlock(registry_url: str) -> None:
    """Right and wrong passwords for one user from one address at once: each attempt's count and
    each success's refund take the two rows' locks in the same order. In opposite orders they
    deadlocked on PostgreSQL and the login that lost answered 500 (seen in make test)."""
    registry = Registry(create_engine(registry_url))
    await registry.create_schema()
    lockout = LoginLockout(registry.engine, LockoutPolicy(after=1000, base_s=30.0, max_s=60.0))

    async def login(i: int) -> None:
        # (a claim may be asked to wait a millisecond: another, begun later, wrote a later time)
        waits = await lockout.claim(["user:minh", "addr:127.0.0.1"])
        if waits == 0.0 and i % 3 == 0:  # the right password
            await lockout.succeeded("user:minh", "addr:127.0.0.1")

    try:
        for _ in range(20):
            await asyncio.gather(*(login(i) for i in range(12)))
    finally:
        await registry.engine.dispose()

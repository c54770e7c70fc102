"""Every request has a price limit, and numbers and dates at the edges get a 4xx that names them.

Each case here answered a plain-text 500, or ran for seconds on the event loop, before.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from controller.alerts.book import Alert, AlertEvent
from controller.runtime import Controller
from tests.api.keys import api_client, auth_headers, serving, with_api
from tests.controller.city import running_controller, settings_for

HUGE = 2**63
NINES = "9" * 400


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[Controller, httpx.AsyncClient]]:
    async with running_controller(settings_for(tmp_path)) as ctl, api_client(ctl) as client:
        yield ctl, client


def assert_json_error(answer: httpx.Response, status: int | tuple[int, ...], says: str = "") -> None:
    assert answer.status_code in (status if isinstance(status, tuple) else (status,)), answer.text
    assert answer.headers["content-type"] == "application/json"
    error = answer.json()["error"]
    assert error["request_id"] == answer.headers["X-Request-ID"]
    assert says in error["message"], error["message"]


async def test_numbers_past_the_database_integer_are_refused_by_name(
    api: tuple[Controller, httpx.AsyncClient],
) -> None:
    _, client = api
    for path in (
        "/api/v1/alerts",
        "/api/v1/reports",
        "/api/v1/audit",
        "/api/v1/devices/gw1-001/commands",
        "/api/v1/webhooks/dead-letters",
        "/api/v1/campaigns",
    ):
        assert_json_error(await client.get(path, params={"offset": HUGE}), 422, "offset")
        assert (await client.get(path, params={"offset": 2**31 - 1})).status_code == 200
    for path in (
        f"/api/v1/alerts/{HUGE}",
        f"/api/v1/reports/{HUGE}",
        f"/api/v1/devices/gw1-001/commands/{HUGE}",
    ):
        assert_json_error(await client.get(path), 422, "less than or equal")
    assert_json_error(await client.post(f"/api/v1/webhooks/dead-letters/{HUGE}/retry"), 422)
    assert_json_error(await client.post(f"/api/v1/alerts/{HUGE}/ack", json={}), 422)


async def test_windows_and_dates_out_of_range_are_refused_by_name(
    api: tuple[Controller, httpx.AsyncClient],
) -> None:
    _, client = api
    telemetry = "/api/v1/devices/gw1-001/telemetry"
    energy = "/api/v1/energy"
    group = {"group": "hanoi"}
    for every in (NINES, "0.0000001s", "400d", "nan", "1e9d"):
        assert_json_error(await client.get(telemetry, params={"every": every}), (400, 422), "every")
        assert_json_error(await client.get(energy, params={**group, "every": every}), (400, 422), "every")
    for edge in ("0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "0001-01-01T00:00:00+07:00"):
        for path, params in ((telemetry, {}), (energy, group), ("/api/v1/audit", {})):
            assert_json_error(await client.get(path, params={**params, "from": edge}), 400, "`from`")
            assert_json_error(await client.get(path, params={**params, "to": edge}), 400, "`to`")
        preview = await client.get("/api/v1/schedules/preview", params={**group, "from": edge})
        assert_json_error(preview, 400, "`from`")
    year = {"from": "2025-01-01T00:00:00Z", "to": "2026-06-01T00:00:00Z"}
    assert_json_error(await client.get(telemetry, params=year), 400, "at most 366 days")


async def test_a_preview_is_bounded_and_computed_off_the_event_loop(
    api: tuple[Controller, httpx.AsyncClient],
) -> None:
    _, client = api
    preview = "/api/v1/schedules/preview"
    assert_json_error(await client.get(preview, params={"group": "hanoi", "every_min": 0.001}), 422)
    month = {"group": "hanoi", "from": "2026-12-01T00:00:00Z", "to": "2026-12-31T00:00:00Z"}
    assert_json_error(await client.get(preview, params=month), 400, "at most 7 days")
    many_steps = {
        "id": "flicker",
        "steps": [{"at": f"{12 + i // 60:02d}:{i % 60:02d}", "level": i % 100} for i in range(49)],
    }
    assert_json_error(await client.put("/api/v1/schedules/flicker", json=many_steps), 422, "48")
    rules = [{"program": "x", "date": f"2026-{1 + i // 28:02d}-{1 + i % 28:02d}"} for i in range(201)]
    calendar = {"id": "busy", "default_program": "x", "rules": rules}
    assert_json_error(await client.put("/api/v1/calendars/busy", json=calendar), 422, "200")
    nowhere = {"id": "nowhere", "default_program": "x", "holiday_country": "ZZ"}
    assert_json_error(await client.put("/api/v1/calendars/nowhere", json=nowhere), 422, "ZZ")

    # The worst allowed preview: a week at one-minute points, with a full program.
    steps = [{"at": f"{12 + i // 4:02d}:{15 * (i % 4):02d}", "level": (i * 7) % 101} for i in range(48)]
    assert (
        await client.put("/api/v1/schedules/busy", json={"id": "busy", "steps": steps})
    ).status_code == 200
    assert (
        await client.put("/api/v1/calendars/city", json={"id": "city", "default_program": "busy"})
    ).status_code == 200
    assert (await client.put("/api/v1/groups/hanoi/calendar", json={"calendar": "city"})).status_code == 200
    week: dict[str, str | int] = {
        "group": "hanoi",
        "from": "2026-12-01T00:00:00Z",
        "to": "2026-12-08T00:00:00Z",
        "every_min": 1,
    }
    answer = await client.get(preview, params=week)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert len(body["points"]) == 7 * 24 * 60
    assert body["from"] == "2026-12-01T00:00:00Z"
    assert all(0 <= t["level"] <= 100 for t in body["transitions"])  # an expiry said -1 %


async def test_overrides_must_name_what_exists_and_group_filters_are_not_patterns(
    api: tuple[Controller, httpx.AsyncClient],
) -> None:
    ctl, client = api
    now = dt.datetime.now(dt.UTC)
    window = {"start": now.isoformat(), "expiry": (now + dt.timedelta(hours=1)).isoformat(), "level": 50}
    ghost_group = await client.post("/api/v1/overrides", json={"id": "a", "group": "atlantis", **window})
    assert_json_error(ghost_group, 422, "atlantis")
    ghost_lamp = await client.post("/api/v1/overrides", json={"id": "b", "device_id": "gw9-999", **window})
    assert_json_error(ghost_lamp, 422, "gw9-999")
    assert (
        await client.post("/api/v1/overrides", json={"id": "c", "group": "hanoi", **window})
    ).status_code == 201
    assert [o["id"] for o in (await client.get("/api/v1/overrides")).json()] == ["c"]

    alert = Alert(
        device_id="gw1-001",
        kind="lampFailure",
        severity="major",
        raised_at=now,
        evidence="test",
        reading=None,
        site="hn",
        group="hanoi/ba-dinh/kim-ma",
    )
    await ctl.alert_store.record([AlertEvent("raised", alert)])
    for pattern, found in (("%", 0), ("hanoi/%", 0), ("_anoi", 0), ("hanoi", 1), ("hanoi/ba-dinh", 1)):
        listed = (await client.get("/api/v1/alerts", params={"group": pattern})).json()
        assert listed["total"] == found, pattern


async def test_event_streams_are_capped_per_caller(tmp_path: Path) -> None:
    settings = with_api(settings_for(tmp_path), max_event_streams=4, max_event_streams_per_client=2)
    async with serving(settings) as (ctl, url):
        one, two = await auth_headers(ctl, "viewer"), await auth_headers(ctl, "viewer")
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:

            async def stream(headers: dict[str, str]) -> tuple[int, asyncio.Task[None]]:
                opened: asyncio.Future[int] = asyncio.get_running_loop().create_future()

                async def hold() -> None:
                    async with client.stream("GET", "/api/v1/events", headers=headers) as answer:
                        opened.set_result(answer.status_code)
                        if answer.status_code == 200:
                            await asyncio.sleep(3600)

                task = asyncio.create_task(hold())
                return await asyncio.wait_for(opened, 10), task

            held = [await stream(one), await stream(one)]
            assert [status for status, _ in held] == [200, 200]
            third, _ = await stream(one)
            assert third == 429
            held += [await stream(two), await stream(two)]
            status, _ = await stream(await auth_headers(ctl, "viewer"))
            assert status == 503  # four open in all
            held[0][1].cancel()
            await asyncio.sleep(0.5)
            again, task = await stream(one)
            assert again == 200
            for _, t in [*held, (0, task)]:
                t.cancel()


async def test_a_chunked_body_past_the_limit_is_cut_off_with_a_json_413(tmp_path: Path) -> None:
    settings = with_api(settings_for(tmp_path), max_body_bytes=4096)
    async with serving(settings) as (ctl, url):
        headers = await auth_headers(ctl, "engineer")

        async def chunks() -> AsyncIterator[bytes]:
            yield b'{"id": "x", "reason": "'
            for _ in range(100):
                yield b"x" * 1024
            yield b'"}'

        async with httpx.AsyncClient(base_url=url, timeout=10, headers=headers) as client:
            answer = await client.post(
                "/api/v1/overrides", content=chunks(), headers={"Content-Type": "application/json"}
            )
        assert_json_error(answer, 413, "4,096 bytes")


async def test_an_unexpected_failure_answers_json_with_the_request_id(
    api: tuple[Controller, httpx.AsyncClient],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ctl, client = api

    async def broken(**_: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(ctl.alert_store, "query", broken)  # a bug, put there on purpose
    answer = await client.get("/api/v1/alerts", headers={"X-Request-ID": "ioc-4711"})
    assert_json_error(answer, 500, "request")
    assert answer.json()["error"]["request_id"] == "ioc-4711"
    assert "ioc-4711" in caplog.text
    # A request id that is not short and plain is replaced, not echoed.
    odd = await client.get("/api/v1/kpis", headers={"X-Request-ID": "<script>" * 20})
    assert odd.headers["X-Request-ID"] != "<script>" * 20
    # Ids we give are 32 hex digits, a new one for each request.
    given = [(await client.get("/api/v1/kpis")).headers["X-Request-ID"] for _ in range(3)]
    given.append(odd.headers["X-Request-ID"])
    assert all(re.fullmatch(r"[0-9a-f]{32}", g) for g in given), given
    assert len(set(given)) == 4

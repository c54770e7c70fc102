"""Alert webhooks against a real HTTP receiver on loopback: signatures, retries, dead letters."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from sqlalchemy.engine import make_url

from api.server import ApiServer
from controller.alerts.book import Alert, AlertEvent
from controller.alerts.messages import AlertMessage, alert_message
from controller.alerts.store import AlertStore
from controller.alerts.webhooks import SIGNATURE_HEADER, STOPPED, WebhookSender, sign, verify_signature
from controller.config import ConfigError, ControllerSettings, WebhookSettings, load_config
from controller.db import create_engine
from controller.metrics import ControllerMetrics
from controller.registry import Registry
from controller.runtime import Controller
from simulators.lamp import Fault
from tests.conftest import free_port
from tests.controller.city import running_city, running_controller, write_city
from tests.waiting import until

SECRET = "correct horse battery staple"


@dataclass
class Receiver:
    """A webhook endpoint: answers `plan` statuses in turn (then 200), or hangs while `hang` is set."""

    plan: list[int] = field(default_factory=list)
    hang: asyncio.Event | None = None
    bodies: list[dict[str, Any]] = field(default_factory=list)
    verified: list[bool] = field(default_factory=list)
    attempts: int = 0

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/hook")
        async def hook(request: Request) -> Response:
            self.attempts += 1
            raw = await request.body()
            if self.hang is not None:
                await self.hang.wait()
            self.verified.append(verify_signature(SECRET, request.headers.get(SIGNATURE_HEADER, ""), raw))
            status = self.plan.pop(0) if self.plan else 200
            if status == 200:
                self.bodies.append(json.loads(raw))
            return Response(status_code=status)

        return app


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    rec = Receiver()
    server = ApiServer(rec.app(), "127.0.0.1", 0)
    await server.start()
    yield rec, f"{server.url}/hook"
    if rec.hang is not None:
        rec.hang.set()
    await server.stop()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[AlertStore]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/alerts.db")
    await Registry(engine).create_schema()
    yield AlertStore(engine)
    await engine.dispose()


def event(device: str = "gw1-001") -> AlertEvent:
    alert = Alert(device, "lampFailure", "major", dt.datetime.now(dt.UTC), "out", id=1, site="hn")
    return AlertEvent("raised", alert)


def sender(url: str, store: AlertStore, **kw: Any) -> WebhookSender:
    settings = WebhookSettings(id="ioc", url=url, secret=SECRET, backoff_base_s=0.05, backoff_cap_s=0.1, **kw)
    return WebhookSender(settings, store, ControllerMetrics())


def test_signatures_verify_only_with_the_right_secret_body_and_time() -> None:
    body = b'{"events": []}'
    header = sign(SECRET, body, 1_800_000_000)
    assert verify_signature(SECRET, header, body, now=1_800_000_010)
    assert not verify_signature("another secret of some length", header, body, now=1_800_000_010)
    assert not verify_signature(SECRET, header, body + b" ", now=1_800_000_010)
    assert not verify_signature(SECRET, header, body, now=1_800_000_000 + 301)  # a replay, later
    assert not verify_signature(SECRET, "garbage", body)


async def test_a_failing_endpoint_is_retried_until_it_answers(
    receiver: tuple[Receiver, str], store: AlertStore
) -> None:
    rec, url = receiver
    rec.plan = [500, 503]
    hook = sender(url, store, max_attempts=4)
    async with httpx.AsyncClient(timeout=2) as client:
        assert await hook.deliver(client, [alert_message(event())])
    assert rec.attempts == 3
    assert rec.verified == [True, True, True]  # signed afresh on every attempt
    assert rec.bodies[0]["events"][0]["kind"] == "lampFailure"
    assert (await store.dead_letters(10, 0))[1] == 0


@pytest.mark.parametrize(
    ("plan", "hang", "attempts", "reason"),
    [
        ([500] * 5, False, 3, "HTTP 500"),
        ([400], False, 1, "HTTP 400"),  # refused: retrying would not help
        ([], True, 3, "ReadTimeout"),
    ],
)
async def test_an_endpoint_that_keeps_failing_ends_in_the_dead_letters(
    receiver: tuple[Receiver, str],
    store: AlertStore,
    plan: list[int],
    hang: bool,
    attempts: int,
    reason: str,
) -> None:
    rec, url = receiver
    rec.plan = list(plan)
    rec.hang = asyncio.Event() if hang else None
    hook = sender(url, store, max_attempts=3, timeout_s=0.3)
    async with httpx.AsyncClient(timeout=0.3) as client:
        assert not await hook.deliver(client, [alert_message(event())])
    rows, total = await store.dead_letters(10, 0)
    assert total == 1
    assert rows[0].attempts == attempts
    assert reason in rows[0].last_error
    assert rows[0].body["events"][0]["device_id"] == "gw1-001"


async def test_letters_a_stop_left_are_taken_back_once_oldest_first(registry_url: str) -> None:
    """What `keep_undelivered` left is taken back at a start; two instances starting together
    (the same webhooks, one database) share it out, never both."""
    engines = [create_engine(registry_url), create_engine(registry_url)]
    try:
        await Registry(engines[0]).create_schema()
        store, other = AlertStore(engines[0]), AlertStore(engines[1])
        for n in range(6):
            await store.dead_letter("ioc", {"n": n}, 0, STOPPED)
        await store.dead_letter("ioc", {"n": "failed"}, 5, "HTTP 500")  # an endpoint's refusal: kept
        await store.dead_letter("crm", {"n": "theirs"}, 0, STOPPED)
        ours, theirs = await asyncio.gather(
            store.take_dead_letters("ioc", STOPPED), other.take_dead_letters("ioc", STOPPED)
        )
        assert sorted(b["n"] for b in ours + theirs) == list(range(6))  # each once
        assert ours == sorted(ours, key=lambda b: b["n"])  # oldest first
        left, _ = await store.dead_letters(10, 0)
        assert sorted(str(row.body["n"]) for row in left) == ["failed", "theirs"]
    finally:
        for engine in engines:
            await engine.dispose()


async def test_a_start_takes_back_what_it_understands_and_keeps_the_rest(store: AlertStore) -> None:
    good = alert_message(event()).model_dump(mode="json")
    await store.dead_letter("ioc", {"webhook": "ioc", "events": [good, {"kind": "nonsense"}]}, 0, STOPPED)
    hook = sender("http://127.0.0.1:9/hook", store)
    assert await hook.take_back() == 1  # the start goes on
    taken = hook.queue.get_nowait()
    assert isinstance(taken, AlertMessage)
    assert taken.device_id == "gw1-001"
    rows, total = await store.dead_letters(10, 0)
    assert total == 1
    assert rows[0].last_error == "not understood at a start"
    assert rows[0].body["events"] == [{"kind": "nonsense"}]


async def test_a_refused_connection_ends_in_the_dead_letters(store: AlertStore) -> None:
    hook = sender(f"http://127.0.0.1:{free_port()}/hook", store, max_attempts=2)
    async with httpx.AsyncClient(timeout=1) as client:
        assert not await hook.deliver(client, [alert_message(event())])
    rows, _ = await store.dead_letters(10, 0)
    assert "ConnectError" in rows[0].last_error


def test_an_invalid_webhook_is_rejected_when_configured(tmp_path: Path) -> None:
    bad = """
[[webhooks]]
id = "ioc"
url = "ftp://ioc.example/hook"
secret = "short"
kinds = ["lampOut"]
"""
    with pytest.raises(ConfigError) as err:
        load_config(write_city(tmp_path, extra=bad))
    text = str(err.value)
    assert "city.toml:" in text
    assert "webhooks[0].url" in text
    assert "is not an http:// or https:// URL" in text
    assert "webhooks[0].secret" in text
    assert "at least 16 characters" in text
    assert "unknown fault kinds ['lampOut']" in text


async def test_the_controller_signs_alerts_and_a_hanging_hook_blocks_nothing(
    tmp_path: Path, receiver: tuple[Receiver, str]
) -> None:
    rec, url = receiver
    stuck = Receiver(hang=asyncio.Event())
    stuck_server = ApiServer(stuck.app(), "127.0.0.1", 0)
    await stuck_server.start()
    extra = f"""
[alerts]
stop_delivery_s = 0.5

[[webhooks]]
id = "ioc"
url = "{url}"
secret = "{SECRET}"

[[webhooks]]
id = "stuck"
url = "{stuck_server.url}/hook"
secret = "{SECRET}"
timeout_s = 30
"""
    settings = load_config(write_city(tmp_path, gw_lamps=3, bus_lamps=1, extra=extra))
    try:
        async with running_city(settings) as city, running_controller(settings) as ctl:
            assert ctl.alerts is not None
            city.segments.find("gw1", 1).faults.add(Fault.VOLTAGE_SAG)
            await until(lambda: bool(rec.bodies), what="webhook delivery")
            await until(lambda: stuck.attempts == 1, what="the stuck hook's first attempt")
            # the stuck endpoint holds its request open; alerts keep flowing everywhere else
            city.segments.find("gw1", 2).faults.add(Fault.VOLTAGE_SURGE)
            await until(lambda: sum(len(b["events"]) for b in rec.bodies) >= 2, what="second alert")
            assert stuck.attempts == 1
    finally:
        if stuck.hang is not None:
            stuck.hang.set()
        await stuck_server.stop()
    assert all(rec.verified)
    events = [e for b in rec.bodies for e in b["events"]]
    assert [(e["device_id"], e["kind"], e["event"]) for e in events[:2]] == [
        ("gw1-001", "supplyVoltageTooLow", "raised"),
        ("gw1-002", "supplyVoltageTooHigh", "raised"),
    ]
    assert rec.bodies[0]["webhook"] == "ioc"


@contextlib.asynccontextmanager
async def hooked_city(
    tmp_path: Path, url: str, stop_delivery_s: float
) -> AsyncIterator[tuple[Any, Controller, ControllerSettings]]:
    """A city whose alerts go to the webhook at `url`; the test stops the controller (that is what
    it watches), or this does if the test failed before."""
    extra = f"""
[alerts]
stop_delivery_s = {stop_delivery_s}

[[webhooks]]
id = "ioc"
url = "{url}"
secret = "{SECRET}"
timeout_s = 30
"""
    settings = load_config(write_city(tmp_path, gw_lamps=2, bus_lamps=1, extra=extra))
    async with running_city(settings) as city:
        ctl = Controller(settings)
        await ctl.start()
        try:
            yield city, ctl, settings
        finally:
            if ctl.started_at is not None:
                await ctl.stop()


async def test_a_stop_waits_for_the_alerts_on_their_way_to_a_webhook(
    tmp_path: Path, receiver: tuple[Receiver, str]
) -> None:
    rec, url = receiver
    rec.hang = asyncio.Event()  # the receiver holds the first POST until released
    async with hooked_city(tmp_path, url, stop_delivery_s=10) as (city, ctl, settings):
        city.segments.find("gw1", 1).faults.add(Fault.VOLTAGE_SAG)
        await until(lambda: rec.attempts == 1, what="the alert's POST")
        stopping = asyncio.create_task(ctl.stop())  # Ctrl-C while the POST is on its way
        await asyncio.sleep(0.5)
        assert not stopping.done()
        rec.hang.set()
        await stopping
    assert ctl.webhooks["ioc"].sent == 1
    assert [e["kind"] for b in rec.bodies for e in b["events"]] == ["supplyVoltageTooLow"]
    assert await dead_letters_of(settings) == []


async def test_alerts_a_webhook_did_not_take_before_the_stop_are_sent_after_the_restart(
    tmp_path: Path, receiver: tuple[Receiver, str]
) -> None:
    rec, url = receiver
    rec.hang = asyncio.Event()  # does not answer until the restart
    async with hooked_city(tmp_path, url, stop_delivery_s=0.5) as (city, ctl, settings):
        city.segments.find("gw1", 1).faults.add(Fault.VOLTAGE_SAG)
        await until(lambda: rec.attempts == 1, what="the alert's POST")
        city.segments.find("gw1", 2).faults.add(Fault.VOLTAGE_SURGE)
        alerts = ctl.alerts
        assert alerts is not None
        await until(lambda: len(alerts.book.active) == 2, what="the second alert")
        await ctl.stop()
    letters = await dead_letters_of(settings)
    assert len(letters) == 1
    assert letters[0].last_error == "not delivered before the controller stopped"
    said = [("gw1-001", "supplyVoltageTooLow"), ("gw1-002", "supplyVoltageTooHigh")]
    # the POST cut short and the event still queued behind it: both kept
    assert [(e["device_id"], e["kind"]) for e in letters[0].body["events"]] == said
    rec.hang.set()
    # the receiver finishes reading the cut POST (its client long gone); then the restart
    await until(lambda: len(rec.bodies) == 1, what="the cut POST's end")
    rec.bodies.clear()
    async with running_controller(settings):  # (the city's lamps are gone: nothing new to say yet)
        await until(lambda: bool(rec.bodies), what="the events sent again")
    first = rec.bodies[0]["events"]  # before anything the restarted controller said
    assert [(e["device_id"], e["kind"], e["event"]) for e in first] == [(*s, "raised") for s in said]
    assert await dead_letters_of(settings) == []


async def dead_letters_of(settings: ControllerSettings) -> list[Any]:
    engine = create_engine(settings.database.url)
    try:
        rows, _ = await AlertStore(engine).dead_letters(10, 0)
        return list(rows)
    finally:
        await engine.dispose()


async def test_an_alert_being_stored_when_the_stop_comes_is_still_delivered(
    tmp_path: Path, receiver: tuple[Receiver, str]
) -> None:
    rec, url = receiver
    async with hooked_city(tmp_path, url, stop_delivery_s=10) as (city, ctl, settings):
        database = make_url(settings.database.url).database
        assert database is not None
        alerts = ctl.alerts
        assert alerts is not None
        writer = sqlite3.connect(database, isolation_level=None)
        writer.execute("BEGIN IMMEDIATE")  # another writer holds the database: the alert's write waits
        try:
            city.segments.find("gw1", 1).faults.add(Fault.VOLTAGE_SAG)
            await until(lambda: len(alerts.book.active) == 1, what="the alert raised, being stored")
            stopping = asyncio.create_task(ctl.stop())
            await asyncio.sleep(0.5)
            assert not rec.bodies  # its write still waits: nothing offered yet
        finally:
            writer.execute("ROLLBACK")
            writer.close()
        await stopping
    assert [e["kind"] for b in rec.bodies for e in b["events"]] == ["supplyVoltageTooLow"]

"""Alerts, live events and citizen reports over the HTTP API (uvicorn on loopback, simulators)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from controller.commands import Command
from controller.runtime import Controller
from simulators.city import SimulatedCity
from simulators.lamp import Fault
from tests.api.keys import api_client
from tests.controller.city import running_city, running_controller, settings_for
from tests.waiting import fetched_until, json_of, until

Env = tuple[httpx.AsyncClient, Controller, SimulatedCity]


@pytest.fixture
async def env(tmp_path: Path, registry_url: str) -> AsyncIterator[Env]:
    settings = settings_for(tmp_path, registry_url=registry_url, gw_lamps=6, bus_lamps=2)
    async with (
        running_city(settings) as city,
        running_controller(settings) as ctl,
        api_client(ctl) as client,
    ):
        await until(lambda: all(st.last_seen for st in ctl.fleet.devices.values()), what="first polls")
        yield client, ctl, city


async def open_alerts(client: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    response = await client.get("/api/v1/alerts", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_alerts_are_listed_filtered_and_acknowledged(env: Env) -> None:
    client, ctl, city = env
    city.segments.find("gw1", 2).faults.add(Fault.VOLTAGE_SAG)
    city.segments.find("bus1", 1).faults.add(Fault.VOLTAGE_SURGE)
    await until(lambda: ctl.alerts is not None and len(ctl.alerts.book.active) == 2, what="two alerts")
    # The book moves first, then the change is stored: wait for what the API reads.
    everything = await fetched_until(lambda: open_alerts(client), lambda page: page["total"] == 2)
    assert everything["total"] == 2
    low = await open_alerts(client, kind="supplyVoltageTooLow")
    (alert,) = low["items"]
    assert alert["device_id"] == "gw1-002"
    assert alert["state"] == "active"
    assert alert["severity"] == "major"
    assert "below 207 V" in alert["evidence"]
    assert alert["reading"]["values"]["voltage_v"] < 207
    in_group = await open_alerts(client, group="hanoi/hoan-kiem")
    assert [a["device_id"] for a in in_group["items"]] == ["bus1-001"]
    assert (await open_alerts(client, site="elsewhere"))["total"] == 0

    ack = await client.post(f"/api/v1/alerts/{alert['id']}/ack", json={"by": "night shift"})
    assert ack.status_code == 200
    assert ack.json()["state"] == "acknowledged"
    assert ack.json()["acknowledged_by"].startswith("night shift (key:test-admin(")  # the name and the key
    again = await client.post(f"/api/v1/alerts/{alert['id']}/ack", json={"by": "someone else"})
    assert (
        again.json()["acknowledged_by"] == ack.json()["acknowledged_by"]
    )  # idempotent: the first acknowledgement stands
    assert (await open_alerts(client, state="active"))["total"] == 1
    assert (await open_alerts(client, state="acknowledged"))["total"] == 1

    missing = await client.post("/api/v1/alerts/999999/ack")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    bad_kind = await client.get("/api/v1/alerts", params={"kind": "lampOut"})
    assert bad_kind.status_code == 422

    city.segments.find("gw1", 2).faults.clear()
    await until(lambda: ctl.alerts is not None and len(ctl.alerts.book.active) == 1, what="cleared")
    page = await fetched_until(lambda: open_alerts(client, state="cleared"), lambda page: page["total"] >= 1)
    cleared = page["items"]
    assert [a["id"] for a in cleared] == [alert["id"]]
    late = await client.post(f"/api/v1/alerts/{alert['id']}/ack")
    assert late.status_code == 409
    assert "cleared at" in late.json()["error"]["message"]


async def test_the_event_stream_carries_alerts_as_they_happen(env: Env) -> None:
    client, ctl, city = env
    events: list[tuple[str, dict[str, Any]]] = []

    async def listen() -> None:
        async with client.stream("GET", "/api/v1/events") as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            name = ""
            async for line in response.aiter_lines():
                if line.startswith("event: "):
                    name = line.removeprefix("event: ")
                elif line.startswith("data: "):
                    events.append((name, json.loads(line.removeprefix("data: "))))

    task = asyncio.create_task(listen())
    await until(lambda: bool(ctl.events.listeners), what="listener connected")
    city.segments.find("gw1", 4).faults.add(Fault.OVER_TEMPERATURE)
    await until(lambda: bool(events), what="an alert event")
    city.segments.find("gw1", 4).faults.clear()
    await until(lambda: len(events) >= 2, within_s=15, what="the cleared event")
    task.cancel()
    assert [(n, e["event"], e["device_id"], e["kind"]) for n, e in events[:2]] == [
        ("alert", "raised", "gw1-004", "overTemperature"),
        ("alert", "cleared", "gw1-004", "overTemperature"),
    ]


async def test_a_citizen_report_is_checked_against_the_nearest_lamps(env: Env) -> None:
    client, ctl, city = env
    # gw1-001 stands at (21.03, 105.81); gw1-002 4 km east: far outside the radius
    lit = await client.post("/api/v1/reports", json={"latitude": 21.03, "longitude": 105.8101})
    assert lit.status_code == 201
    body = lit.json()
    assert body["verdict"] == "not_confirmed"
    assert body["reason"] == "gw1-001 is off as asked (nothing asks for light now)"
    assert body["lamps"][0]["device_id"] == "gw1-001"
    assert body["lamps"][0]["distance_m"] == pytest.approx(10.4, abs=0.5)
    assert lit.headers["location"] == f"/api/v1/reports/{body['id']}"

    assert ctl.dispatcher is not None
    await ctl.dispatcher.execute("gw1-001", Command(action="set_level", value=80))
    await asyncio.sleep(0.5)
    lit_now = (await client.post("/api/v1/reports", json={"latitude": 21.03, "longitude": 105.8101})).json()
    assert lit_now["verdict"] == "not_confirmed"
    assert "gw1-001 reports lit (80 W) just now" in lit_now["reason"]

    city.segments.find("gw1", 1).faults.add(Fault.NO_RESPONSE)
    await fetched_until(
        lambda: open_alerts(client, device="gw1-001"), lambda page: page["total"] > 0, what="gw1-001's alert"
    )
    out = await client.post(
        "/api/v1/reports",
        json={"latitude": 21.03, "longitude": 105.8101, "reference": "IOC-4711", "description": "tối om"},
    )
    report = out.json()
    assert report["verdict"] == "confirmed"
    assert report["reason"] == "gw1-001 has open alert communicationFailure"
    assert [a["kind"] for a in report["alerts"]] == ["communicationFailure"]
    assert report["resolved"] is False
    city.segments.find("gw1", 1).faults.clear()
    await until(lambda: ctl.alerts is not None and not ctl.alerts.book.active, what="alert cleared")
    # the book moves first, then the clear is stored: the report follows the store
    fetched = await fetched_until(
        lambda: json_of(client.get(f"/api/v1/reports/{report['id']}")),
        lambda body: bool(body["resolved"]),
        what="the report resolved",
    )  # the IOC can close its ticket
    assert fetched["reference"] == "IOC-4711"

    nowhere = (await client.post("/api/v1/reports", json={"latitude": 10.0, "longitude": 106.0})).json()
    assert nowhere["verdict"] == "unknown"
    assert "no lamp within 50 m" in nowhere["reason"]
    listed = (await client.get("/api/v1/reports")).json()
    assert listed["total"] == 4


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"latitude": 91, "longitude": 105.8}, "body.latitude"),
        ({"latitude": 21, "longitude": -181}, "body.longitude"),
        ({"latitude": "NaN", "longitude": 105.8}, "body.latitude"),
        ({"latitude": 21, "longitude": 105.8, "radius_m": 5000}, "body.radius_m"),
        ({"longitude": 105.8}, "body.latitude"),
    ],
)
async def test_impossible_report_coordinates_are_refused(env: Env, body: dict[str, Any], where: str) -> None:
    client, _, _ = env
    response = await client.post("/api/v1/reports", json=body)
    assert response.status_code == 422
    assert where in response.json()["error"]["message"]
    assert (await client.get("/api/v1/reports")).json()["total"] == 0


async def test_a_feeder_trip_is_one_root_cause_in_the_api_and_the_event_stream(env: Env) -> None:
    client, ctl, city = env
    for lamp in city.segments.segments["gw1"].lamps.values():  # the gateway's feeder trips
        lamp.faults.add(Fault.NO_RESPONSE)
    grouped = await fetched_until(
        lambda: open_alerts(client, grouped="true"),
        lambda page: any(e["type"] == "group" and e["devices"] == 6 for e in page["items"]),
        within_s=20,
    )
    (group,) = grouped["items"]  # one entry, not six
    assert group["title"] == {"vi": "gw1: 6 thiết bị mất liên lạc", "en": "gw1: 6 devices unreachable"}
    assert (group["link"], group["kind"], group["devices_on_link"]) == ("gw1", "communicationFailure", 6)
    assert sorted(m["device_id"] for m in group["members"]) == [f"gw1-00{i}" for i in range(1, 7)]
    assert {m["root_cause"] for m in group["members"]} == {group["id"]}
    flat = await open_alerts(client)
    assert flat["total"] == 6  # one by one, as before

    def said() -> list[dict[str, Any]]:
        return [json.loads(e.data) for e in ctl.events.replay if e.name == "alert_group"]

    assert said()[0]["event"] == "group_raised"
    assert said()[-1]["title"]["en"] == "gw1: 6 devices unreachable"

    refused = await client.post("/api/v1/alerts/ack", json={})
    assert refused.status_code == 422
    unknown = await client.post("/api/v1/alerts/ack", json={"root_cause": "gw9:lampFailure:1"})
    assert unknown.status_code == 404
    assert (await client.get("/api/v1/alerts", params={"grouped": "true", "state": "all"})).status_code == 422
    acked = await client.post("/api/v1/alerts/ack", json={"root_cause": group["id"], "by": "Lan"})
    assert acked.status_code == 200, acked.text
    assert sorted(acked.json()["acknowledged"]) == sorted(group["alert_ids"])
    (after,) = (await open_alerts(client, grouped="true"))["items"]
    assert after["state"] == "acknowledged"
    assert {m["acknowledged_by"].split(" (")[0] for m in after["members"]} == {"Lan"}

    for lamp in city.segments.segments["gw1"].lamps.values():
        lamp.faults.clear()
    await until(lambda: said()[-1]["event"] == "group_cleared", within_s=20, what="the group cleared")

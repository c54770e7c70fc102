"""The HTTP API over a real socket (uvicorn on loopback), against a controller polling simulators."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from controller.commands import Command
from controller.runtime import Controller
from simulators.city import SimulatedCity
from simulators.lamp import Fault
from tests.api.keys import api_client
from tests.controller.city import running_city, running_controller, settings_for
from tests.waiting import fetched_until, json_of, until


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Controller, SimulatedCity]]:
    settings = settings_for(tmp_path)
    async with (
        running_city(settings) as city,
        running_controller(settings) as ctl,
        api_client(ctl) as client,
    ):
        await until(
            lambda: all(st.state != "unknown" for st in ctl.fleet.devices.values()),
            what="every device polled once",
        )
        yield client, ctl, city


def alert_open(ctl: Controller, device: str, kind: str) -> bool:
    return ctl.alerts is not None and (device, kind) in ctl.alerts.book.active


async def test_device_list_is_paginated_and_filtered(
    env: tuple[httpx.AsyncClient, Controller, SimulatedCity],
) -> None:
    client, _, _ = env
    page = (await client.get("/api/v1/devices", params={"limit": 4, "offset": 2})).json()
    assert page["total"] == 9
    assert page["limit"] == 4
    assert page["offset"] == 2
    # sorted by id: bus1-001..003, then gw1-001..006
    assert [d["id"] for d in page["items"]] == ["bus1-003", "gw1-001", "gw1-002", "gw1-003"]
    by_group = (await client.get("/api/v1/devices", params={"group": "hanoi/hoan-kiem"})).json()
    assert {d["id"] for d in by_group["items"]} == {"bus1-001", "bus1-002", "bus1-003"}
    by_site = (await client.get("/api/v1/devices", params={"site": "hn", "state": "ok"})).json()
    assert by_site["total"] == 9
    none = (await client.get("/api/v1/devices", params={"site": "elsewhere"})).json()
    assert none == {"items": [], "total": 0, "limit": 100, "offset": 0}


async def test_device_detail_shows_last_reading_state_and_counters(
    env: tuple[httpx.AsyncClient, Controller, SimulatedCity],
) -> None:
    client, _, _ = env
    body = (await client.get("/api/v1/devices/bus1-002")).json()
    assert body["state"] == "ok"
    assert body["link"] == "bus1"
    assert body["rated_power_w"] == 60
    assert body["last_seen"] is not None
    assert 220 < body["last_reading"]["values"]["voltage_v"] < 240
    assert body["last_reading"]["status"]["lamp_failure"] is False
    assert body["counters"]["polls_ok"] >= 1


async def test_faulty_and_silent_devices_show_in_state(
    env: tuple[httpx.AsyncClient, Controller, SimulatedCity],
) -> None:
    client, _, city = env
    city.segments.find("gw1", 1).faults.add(Fault.LAMP_FAILURE)
    city.segments.find("gw1", 2).faults.add(Fault.NO_RESPONSE)
    faults = await fetched_until(
        lambda: json_of(client.get("/api/v1/devices", params={"state": "fault"})),
        lambda page: page["total"] == 1,
        what="one faulty lamp",
    )
    offline = await fetched_until(
        lambda: json_of(client.get("/api/v1/devices", params={"state": "offline"})),
        lambda page: page["total"] == 1,
        what="one lamp offline",
    )
    assert [d["id"] for d in faults["items"]] == ["gw1-001"]
    assert [d["id"] for d in offline["items"]] == ["gw1-002"]
    detail = (await client.get("/api/v1/devices/gw1-002")).json()
    assert detail["counters"]["timeout"] >= 2
    assert "gateway target failed" in detail["last_error"]


async def test_command_confirmed_by_read_back_through_the_api(
    env: tuple[httpx.AsyncClient, Controller, SimulatedCity],
) -> None:
    client, _, city = env
    rsp = await client.post("/api/v1/devices/gw1-003/commands", json={"action": "set_level", "value": 35})
    assert rsp.status_code == 201, rsp.text
    body = rsp.json()
    assert body["status"] == "confirmed"
    assert body["readback"] == {
        "dim_level_pct": 35,
        "lamp_on": True,
    }
    assert rsp.headers["location"] == f"/api/v1/devices/gw1-003/commands/{body['id']}"
    assert city.segments.find("gw1", 3).level_cmd == 35
    again = (await client.get(rsp.headers["location"])).json()
    assert again == body
    missing = await client.get("/api/v1/devices/gw1-002/commands/" + str(body["id"]))
    assert missing.status_code == 404
    assert "has no command" in missing.json()["error"]["message"]
    history = (await client.get("/api/v1/devices/gw1-003/commands")).json()
    assert history["total"] == 1
    assert history["items"][0]["status"] == "confirmed"


@pytest.mark.parametrize(
    ("path", "payload", "status", "code", "phrase"),
    [
        (
            "/api/v1/devices/gw1-001/commands",
            {"action": "set_level", "value": 101},
            422,
            "invalid_request",
            "0–100",
        ),
        (
            "/api/v1/devices/gw1-001/commands",
            {"action": "set_level", "value": -1},
            422,
            "invalid_request",
            "0–100",
        ),
        (
            "/api/v1/devices/gw1-001/commands",
            {"action": "switch", "value": 5},
            422,
            "invalid_request",
            "true or false",
        ),
        (
            "/api/v1/devices/gw1-001/commands",
            {"action": "explode", "value": 1},
            422,
            "invalid_request",
            "body.action",
        ),
        (
            "/api/v1/devices/nope/commands",
            {"action": "set_level", "value": 50},
            404,
            "not_found",
            "no device 'nope'",
        ),
    ],
)
async def test_bad_commands_get_a_clear_4xx(
    env: tuple[httpx.AsyncClient, Controller, SimulatedCity],
    path: str,
    payload: dict[str, object],
    status: int,
    code: str,
    phrase: str,
) -> None:
    client, _, city = env
    rsp = await client.post(path, json=payload)
    assert rsp.status_code == status
    error = rsp.json()["error"]
    assert error["code"] == code
    assert phrase in error["message"]
    assert city.segments.find("gw1", 1).level_cmd == 0  # nothing reached the device


async def test_telemetry_history_raw_and_aggregated(
    env: tuple[httpx.AsyncClient, Controller, SimulatedCity],
) -> None:
    client, ctl, _ = env
    await until(lambda: ctl.fleet["gw1-001"].counters["polls_ok"] >= 3, what="three polls of gw1-001")
    # a reading is live state first and stored after (the ingest's batch): wait for the store
    raw = await fetched_until(
        lambda: json_of(
            client.get("/api/v1/devices/gw1-001/telemetry", params={"fields": "voltage_v,power_w"})
        ),
        lambda page: len(page["points"]) >= 2,
        what="two readings stored",
    )
    assert raw["fields"] == ["voltage_v", "power_w"]
    assert set(raw["points"][0]["values"]) == {"voltage_v", "power_w"}
    agg = (
        await client.get("/api/v1/devices/gw1-001/telemetry", params={"every": "1h", "fields": "voltage_v"})
    ).json()
    assert agg["every_s"] == 3600
    assert agg["aggregate"] == "mean"
    assert 1 <= len(agg["points"]) <= 2
    assert 220 < agg["points"][0]["values"]["voltage_v"] < 240
    bad = await client.get("/api/v1/devices/gw1-001/telemetry", params={"every": "soon"})
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "invalid_every"
    bad = await client.get("/api/v1/devices/gw1-001/telemetry", params={"fields": "volts"})
    assert bad.status_code == 400
    assert "volts" in bad.json()["error"]["message"]
    bad = await client.get(
        "/api/v1/devices/gw1-001/telemetry",
        params={"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"},
    )
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "invalid_range"
    assert (await client.get("/api/v1/devices/nope/telemetry")).status_code == 404


async def test_health_metrics_and_openapi(
    env: tuple[httpx.AsyncClient, Controller, SimulatedCity],
) -> None:
    client, _, _ = env
    health = (await client.get("/healthz")).json()
    assert health["status"] == "ok"
    assert health["links"] == {"gw1": True, "bus1": True}
    assert sum(health["devices"].values()) == 9
    metrics = (await client.get("/metrics")).text
    assert 'lamplighter_polls_total{link="bus1",result="ok"}' in metrics
    assert 'lamplighter_devices{state="ok"} 9.0' in metrics
    assert "lamplighter_reading_queue_depth" in metrics
    spec = (await client.get("/openapi.json")).json()
    assert {
        "/api/v1/devices",
        "/api/v1/devices/{device_id}",
        "/api/v1/devices/{device_id}/telemetry",
        "/api/v1/devices/{device_id}/commands",
        "/healthz",
        "/metrics",
    } <= set(spec["paths"])
    assert (await client.get("/docs")).status_code == 200


async def test_a_group_command_reaches_every_lamp_of_the_subtree_with_a_result_each(
    env: tuple[httpx.AsyncClient, Controller, SimulatedCity],
) -> None:
    client, _, city = env
    city.segments.find("gw1", 5).faults.add(Fault.NO_RESPONSE)
    rsp = await client.post(
        "/api/v1/groups/hanoi/ba-dinh/commands", json={"action": "set_level", "value": 25}
    )
    assert rsp.status_code == 200, rsp.text
    body = rsp.json()
    assert body["total"] == 6
    assert body["by_status"] == {"confirmed": 5, "failed": 1}
    failed = [r for r in body["results"] if r["status"] == "failed"]
    assert [r["device_id"] for r in failed] == ["gw1-005"]
    assert all(city.segments.find("gw1", u).level_cmd == 25 for u in (1, 2, 3, 4, 6))
    history = (await client.get("/api/v1/devices/gw1-001/commands")).json()
    assert history["items"][0]["status"] == "confirmed"
    missing = await client.post("/api/v1/groups/nowhere/commands", json={"action": "switch", "value": True})
    assert missing.status_code == 404


async def test_geojson_puts_every_device_on_the_map_with_its_state_and_alerts(
    env: tuple[httpx.AsyncClient, Controller, SimulatedCity],
) -> None:
    client, ctl, city = env
    city.segments.find("gw1", 3).faults.add(Fault.LAMP_FAILURE)
    await until(lambda: alert_open(ctl, "gw1-003", "lampFailure"), what="gw1-003's lamp failure alert")
    response = await client.get("/api/v1/geojson")
    assert response.headers["content-type"] == "application/geo+json"
    collection = response.json()
    assert collection["type"] == "FeatureCollection"
    by_id = {f["id"]: f for f in collection["features"]}
    assert len(by_id) == 9
    first = by_id["gw1-001"]
    assert first["geometry"] == {"type": "Point", "coordinates": [105.81, 21.03]}  # longitude first
    assert first["properties"]["group"] == "hanoi/ba-dinh/kim-ma"
    assert "voltage_v" in first["properties"]["values"]
    assert by_id["gw1-003"]["properties"]["alerts"] == ["lampFailure"]
    assert by_id["gw1-003"]["properties"]["state"] == "fault"
    only_bus = (await client.get("/api/v1/geojson", params={"group": "hanoi/hoan-kiem"})).json()
    assert sorted(f["id"] for f in only_bus["features"]) == ["bus1-001", "bus1-002", "bus1-003"]
    faulty = (await client.get("/api/v1/geojson", params={"state": "fault"})).json()
    assert [f["id"] for f in faulty["features"]] == ["gw1-003"]


async def test_kpis_count_lamps_faults_repairs_and_energy(
    env: tuple[httpx.AsyncClient, Controller, SimulatedCity],
) -> None:
    client, ctl, city = env
    assert ctl.dispatcher is not None
    await ctl.dispatcher.execute_many(["gw1-001", "gw1-002"], Command(action="set_level", value=100))
    city.segments.find("gw1", 5).faults.add(Fault.NO_RESPONSE)
    city.segments.find("gw1", 6).faults.add(Fault.VOLTAGE_SAG)
    await until(
        lambda: (
            ctl.alerts is not None
            and len(ctl.alerts.book.active) >= 2
            and ctl.fleet["gw1-005"].state == "offline"
        ),
        what="two alerts open and gw1-005 offline",
    )
    city.segments.find("gw1", 6).faults.clear()
    await until(
        lambda: not alert_open(ctl, "gw1-006", "supplyVoltageTooLow"), what="gw1-006's voltage alert cleared"
    )
    # open faults follow the book, repair times the store, which the clear reaches after the book
    body = await fetched_until(
        lambda: json_of(client.get("/api/v1/kpis")),
        lambda body: body["mttr_hours"] is not None,
        what="the repair stored",
    )
    assert body["lamps"]["total"] == 9
    assert body["lamps"]["offline"] == 1
    assert body["lamps"]["available_pct"] == round(100 * 8 / 9, 2)
    assert body["lamps"]["lit_now"] == 2
    assert body["faults_open"] == {"communicationFailure": 1}
    assert 0 < body["mttr_hours"] < 0.01  # the sag was repaired within seconds
    assert body["energy"]["month_baseline_kwh"] >= body["energy"]["today_baseline_kwh"] >= 0
    assert body["energy"]["today_source"] == "lamps"  # no cabinet meter in this city: the lamps' counters
    assert body["sensors"] == {"total": 0, "up_pct": None}


async def test_ngsi_ld_serves_streetlights_and_their_groups_as_smart_data_models(
    env: tuple[httpx.AsyncClient, Controller, SimulatedCity],
) -> None:
    client, ctl, city = env
    assert ctl.dispatcher is not None
    await ctl.dispatcher.execute("gw1-001", Command(action="set_level", value=60))
    city.segments.find("gw1", 2).faults.add(Fault.LAMP_FAILURE)
    await until(lambda: alert_open(ctl, "gw1-002", "lampFailure"), what="gw1-002's lamp failure alert")
    await asyncio.sleep(0.5)
    response = await client.get(
        "/ngsi-ld/v1/entities",
        params={"type": "Streetlight", "limit": 3, "count": "true"},
        headers={"Accept": "application/ld+json"},
    )
    assert response.headers["content-type"].startswith("application/ld+json")
    assert response.headers["ngsild-results-count"] == "9"
    lights = {e["id"]: e for e in response.json()}
    assert len(lights) == 3
    one = (await client.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Streetlight:gw1-001")).json()
    assert one["type"] == "Streetlight"
    assert one["powerState"]["value"] == "low"  # lit at 60 %
    assert one["illuminanceLevel"]["value"] == 0.6
    assert one["status"]["value"] == "ok"
    assert one["refStreetlightGroup"]["object"] == "urn:ngsi-ld:StreetlightGroup:hanoi:ba-dinh:kim-ma"
    assert one["location"]["value"]["coordinates"] == [105.81, 21.03]
    broken = (await client.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Streetlight:gw1-002")).json()
    assert broken["status"]["value"] == "defectiveLamp"
    groups = (await client.get("/ngsi-ld/v1/entities", params={"type": "StreetlightGroup"})).json()
    assert [g["id"] for g in groups] == [
        "urn:ngsi-ld:StreetlightGroup:hanoi:ba-dinh:kim-ma",
        "urn:ngsi-ld:StreetlightGroup:hanoi:hoan-kiem:hang-dao",
    ]
    assert len(groups[0]["refStreetlight"]["object"]) == 6
    missing_type = await client.get("/ngsi-ld/v1/entities")
    assert missing_type.status_code == 400
    assert missing_type.json()["type"] == "https://uri.etsi.org/ngsi-ld/errors/BadRequestData"
    unknown = await client.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Streetlight:nope")
    assert unknown.status_code == 404
    assert unknown.json()["type"] == "https://uri.etsi.org/ngsi-ld/errors/ResourceNotFound"

"""NGSI-LD as ETSI GS CIM 009 says, for what we serve: queries, representations, errors, a real client.

Each case here was answered differently before: `limit=0&count=true` was a 422 (and the
`ngsildclient` library refused to connect), an unknown type or an IRI a 400, `q`, `georel`,
`attrs`, `id`, `idPattern` and `options` were ignored, every Accept got ld+json.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from api.app import create_app
from api.server import ApiServer
from controller.commands import Command
from controller.runtime import Controller
from controller.service import ControllerService
from simulators.lamp import Fault
from tests.api.keys import api_client, auth_headers
from tests.api.smart_data_models import FIWARE_PYTHON, model_problems
from tests.controller.city import running_city, running_controller, settings_for
from tests.waiting import fetched_until, json_of, until

NGSI = "/ngsi-ld/v1/entities"
ERRORS = "https://uri.etsi.org/ngsi-ld/errors/"


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[Controller, str, httpx.AsyncClient]]:
    settings = settings_for(tmp_path)
    async with running_city(settings), running_controller(settings) as ctl:
        await until(lambda: all(st.state == "ok" for st in ctl.fleet.devices.values()), within_s=10)
        assert ctl.dispatcher is not None
        await ctl.dispatcher.execute("gw1-001", Command(action="set_level", value=60))
        await ctl.dispatcher.execute("gw1-002", Command(action="set_level", value=60))
        await until(lambda: ctl.fleet["gw1-002"].last_values().get("dim_level_pct") == 60)
        server = ApiServer(create_app(ControllerService(ctl)), "127.0.0.1", 0)
        await server.start()
        try:
            headers = await auth_headers(ctl, "viewer")
            async with httpx.AsyncClient(base_url=server.url, timeout=10, headers=headers) as client:
                yield ctl, server.url, client
        finally:
            await server.stop()


def ids(answer: httpx.Response) -> list[str]:
    assert answer.status_code == 200, answer.text
    return [e["id"] for e in answer.json()]


def problem(answer: httpx.Response, status: int, kind: str) -> str:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/json"
    body = answer.json()
    assert body["type"] == (f"{ERRORS}{kind}" if kind != "about:blank" else kind), body
    assert body["title"]
    return str(body["detail"])


async def test_counting_types_and_paging(served: tuple[Controller, str, httpx.AsyncClient]) -> None:
    _, _, client = served
    counted = await client.get(NGSI, params={"type": "Streetlight", "limit": 0, "count": "true"})
    assert counted.status_code == 200
    assert counted.json() == []
    assert counted.headers["NGSILD-Results-Count"] == "9"
    problem(await client.get(NGSI, params={"type": "Streetlight", "limit": 0}), 400, "BadRequestData")
    problem(await client.get(NGSI, params={"type": "Streetlight", "limit": 1001}), 403, "TooManyResults")
    assert ids(await client.get(NGSI, params={"type": "ParkingSpot"})) == []  # unknown: none, not an error
    both = ids(await client.get(NGSI, params={"type": "StreetlightGroup,AirQualityObserved"}))
    assert both == [
        "urn:ngsi-ld:StreetlightGroup:hanoi:ba-dinh:kim-ma",
        "urn:ngsi-ld:StreetlightGroup:hanoi:hoan-kiem:hang-dao",
    ]
    for iri in (
        "https://uri.etsi.org/ngsi-ld/default-context/Streetlight",
        "https://smartdatamodels.org/dataModel.Streetlighting/Streetlight",
    ):
        assert len(ids(await client.get(NGSI, params={"type": iri, "limit": 100}))) == 9
    assert ids(await client.get(NGSI, params={"type": "Streetlight;StreetlightGroup"})) == []  # all of: none
    problem(await client.get(NGSI, params={"type": "(Streetlight"}), 400, "BadRequestData")
    problem(await client.get(NGSI), 400, "BadRequestData")  # no selector at all

    first = await client.get(NGSI, params={"type": "Streetlight", "limit": 4})
    assert len(first.json()) == 4
    assert 'rel="next"' in first.headers["Link"]
    assert "offset=4" in first.headers["Link"]
    last = await client.get(NGSI, params={"type": "Streetlight", "limit": 4, "offset": 8})
    assert len(last.json()) == 1
    assert 'rel="prev"' in last.headers["Link"]
    assert 'rel="next"' not in last.headers["Link"]


async def test_q_attrs_ids_and_key_values(served: tuple[Controller, str, httpx.AsyncClient]) -> None:
    _, _, client = served
    low = ids(await client.get(NGSI, params={"type": "Streetlight", "q": 'powerState=="low"'}))
    assert low == ["urn:ngsi-ld:Streetlight:gw1-001", "urn:ngsi-ld:Streetlight:gw1-002"]
    ranged = ids(await client.get(NGSI, params={"type": "Streetlight", "q": "illuminanceLevel==0.5..0.7"}))
    assert ranged == low
    either = ids(
        await client.get(
            NGSI,
            params={
                "type": "Streetlight",
                "q": '(powerState=="low"|powerState=="on");status=="ok"',
                "limit": 50,
            },
        )
    )
    assert set(low) <= set(either)
    unit = ids(
        await client.get(NGSI, params={"type": "Streetlight", "q": 'powerConsumption.unitCode=="WTT"'})
    )
    assert len(unit) >= 2
    pattern = ids(await client.get(NGSI, params={"type": "Streetlight", "q": 'name~="^bus1-00[12]$"'}))
    assert pattern == ["urn:ngsi-ld:Streetlight:bus1-001", "urn:ngsi-ld:Streetlight:bus1-002"]
    for malformed in ("(((", 'powerState=="low', "powerState===1", "a==b;", "|"):
        problem(await client.get(NGSI, params={"type": "Streetlight", "q": malformed}), 400, "BadRequestData")
    problem(
        await client.get(NGSI, params={"type": "Streetlight", "q": ";".join(["a==1"] * 60)}),
        403,
        "TooComplexQuery",
    )

    by_id = ids(
        await client.get(
            NGSI, params={"id": "urn:ngsi-ld:Streetlight:gw1-003,urn:ngsi-ld:Streetlight:bus1-001"}
        )
    )
    assert by_id == ["urn:ngsi-ld:Streetlight:bus1-001", "urn:ngsi-ld:Streetlight:gw1-003"]
    by_pattern = ids(await client.get(NGSI, params={"idPattern": "Streetlight:gw1-00[45]$"}))
    assert by_pattern == ["urn:ngsi-ld:Streetlight:gw1-004", "urn:ngsi-ld:Streetlight:gw1-005"]
    evil = await client.get(NGSI, params={"idPattern": "(a+)+$"})  # linear time with RE2: no stall
    assert evil.status_code == 200

    projected = (
        await client.get(NGSI, params={"type": "Streetlight", "attrs": "powerState", "limit": 1})
    ).json()
    assert set(projected[0]) == {"id", "type", "powerState"}
    simple = (
        await client.get(NGSI, params={"id": "urn:ngsi-ld:Streetlight:gw1-001", "options": "keyValues"})
    ).json()[0]
    assert simple["powerState"] == "low"
    assert simple["location"] == {"type": "Point", "coordinates": [105.81, 21.03]}
    assert simple["refStreetlightGroup"] == "urn:ngsi-ld:StreetlightGroup:hanoi:ba-dinh:kim-ma"
    problem(
        await client.get(NGSI, params={"type": "Streetlight", "options": "sysAttrs"}), 400, "BadRequestData"
    )
    detail = problem(
        await client.get(NGSI, params={"type": "Streetlight", "pick": "id"}), 400, "BadRequestData"
    )
    assert "pick" in detail  # a parameter left out is refused, never ignored


async def test_geo_queries(served: tuple[Controller, str, httpx.AsyncClient]) -> None:
    _, _, client = served
    # gw1 lamps run along latitude 21.03 from longitude 105.81 to 105.83; the bus1 lamps are at Hoan Kiem.
    near = ids(
        await client.get(
            NGSI,
            params={
                "type": "Streetlight",
                "georel": "near;maxDistance==1000",
                "geometry": "Point",
                "coordinates": "[105.81,21.03]",
            },
        )
    )
    assert near
    assert all("gw1-" in i for i in near)
    box = [[[105.849, 21.032], [105.852, 21.032], [105.852, 21.037], [105.849, 21.037], [105.849, 21.032]]]
    within = ids(
        await client.get(
            NGSI,
            params={
                "type": "Streetlight",
                "georel": "within",
                "geometry": "Polygon",
                "coordinates": json.dumps(box),
            },
        )
    )
    assert within == [
        "urn:ngsi-ld:Streetlight:bus1-001",
        "urn:ngsi-ld:Streetlight:bus1-002",
        "urn:ngsi-ld:Streetlight:bus1-003",
    ]
    for bad in (
        {"georel": "near", "geometry": "Point", "coordinates": "[105.81,21.03]"},
        {"georel": "near;maxDistance==1000", "geometry": "Polygon", "coordinates": json.dumps(box)},
        {"georel": "within", "geometry": "Point", "coordinates": "[105.81]"},
        {"georel": "sideways", "geometry": "Point", "coordinates": "[105.81,21.03]"},
        {"geometry": "Point", "coordinates": "[105.81,21.03]"},
    ):
        problem(await client.get(NGSI, params={"type": "Streetlight", **bad}), 400, "BadRequestData")


async def test_representations_and_errors_follow_the_accept_header(
    served: tuple[Controller, str, httpx.AsyncClient],
) -> None:
    _, url, client = served
    one = f"{NGSI}/urn:ngsi-ld:Streetlight:gw1-001"
    plain = await client.get(one)
    assert plain.headers["content-type"] == "application/json"
    assert "@context" not in plain.json()
    assert 'rel="http://www.w3.org/ns/json-ld#context"' in plain.headers["Link"]
    context_url = plain.headers["Link"].split(";")[0].strip("<>")
    async with httpx.AsyncClient(timeout=10) as anyone:  # the context document is public
        context = (await anyone.get(context_url)).json()["@context"]
    ld = await client.get(one, headers={"Accept": "application/ld+json"})
    assert ld.headers["content-type"] == "application/ld+json"
    assert ld.json()["@context"] == context
    geo = await client.get(
        NGSI, params={"type": "Streetlight", "limit": 2}, headers={"Accept": "application/geo+json"}
    )
    assert geo.headers["content-type"] == "application/geo+json"
    collection = geo.json()
    assert collection["type"] == "FeatureCollection"
    assert collection["features"][0]["geometry"]["type"] == "Point"
    assert collection["features"][0]["properties"]["type"] == "Streetlight"
    preferred = await client.get(one, headers={"Accept": "text/html;q=0.9, application/ld+json;q=0.5"})
    assert preferred.headers["content-type"] == "application/ld+json"
    problem(await client.get(one, headers={"Accept": "text/html"}), 406, "about:blank")
    problem(await client.get(f"{NGSI}/urn:ngsi-ld:Streetlight:nope"), 404, "ResourceNotFound")
    problem(await client.get(f"{NGSI}/not-a-uri"), 400, "BadRequestData")
    foreign = await client.get(
        one, headers={"Link": '<https://example.org/ctx.jsonld>; rel="http://www.w3.org/ns/json-ld#context"'}
    )
    problem(foreign, 503, "LdContextNotAvailable")
    async with httpx.AsyncClient(base_url=url, timeout=10) as anonymous:
        assert "API key" in problem(
            await anonymous.get(NGSI, params={"type": "Streetlight"}), 401, "about:blank"
        )


async def test_the_ngsildclient_library_connects_and_queries(
    served: tuple[Controller, str, httpx.AsyncClient],
) -> None:
    if not FIWARE_PYTHON.exists():
        pytest.fail(f"{FIWARE_PYTHON} is missing: `make test` makes it (the ngsildclient library)")
    ctl, url, _ = served
    key = (await auth_headers(ctl, "viewer"))["X-API-Key"]
    port = url.rsplit(":", 1)[1]
    proc = await asyncio.create_subprocess_exec(
        str(FIWARE_PYTHON), str(Path(__file__).with_name("ngsi_client_check.py")), port, key,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()[-3000:]
    seen = json.loads(out.decode().strip().splitlines()[-1])
    assert seen["connected"] is True
    assert seen["streetlights"] == 9
    assert seen["lit_low"] == 2
    assert seen["groups"] == [  # every page of one, followed by the client through offset
        "urn:ngsi-ld:StreetlightGroup:hanoi:ba-dinh:kim-ma",
        "urn:ngsi-ld:StreetlightGroup:hanoi:hoan-kiem:hang-dao",
    ]
    assert seen["one"]["powerState"]["value"] == "low"
    assert seen["unknown_type"] == 0


async def test_entities_follow_the_smart_data_models(tmp_path: Path) -> None:
    """Every attribute we serve is one of its model's, with the model's NGSI type, JSON type and
    allowed values, and every required one is there — for lit, dimmed, faulty and silent lamps and
    their groups (air quality: tests/controller/test_mqtt_devices.py)."""
    settings = settings_for(tmp_path)
    async with running_city(settings) as city, running_controller(settings) as ctl:
        await until(lambda: all(st.state == "ok" for st in ctl.fleet.devices.values()), within_s=10)
        assert ctl.dispatcher is not None
        await ctl.dispatcher.execute("gw1-001", Command(action="set_level", value=60))
        city.segments.find("gw1", 2).faults.add(Fault.LAMP_FAILURE)
        city.segments.find("gw1", 3).faults.add(Fault.VOLTAGE_SAG)
        city.segments.find("gw1", 4).faults.add(Fault.NO_RESPONSE)
        await until(lambda: ctl.fleet["gw1-004"].state == "offline", within_s=10)
        async with api_client(ctl, "viewer") as client:
            entities = await fetched_until(
                lambda: json_of(client.get(NGSI, params={"type": "Streetlight,StreetlightGroup"})),
                lambda got: (
                    {e["status"]["value"] for e in got if "status" in e}
                    >= {"ok", "defectiveLamp", "columnIssue"}
                ),
                what="lamps ok, defective and with a column issue",
            )
    assert {e["type"] for e in entities} == {"Streetlight", "StreetlightGroup"}
    assert any("annotations" in e for e in entities if e["type"] == "Streetlight")  # the silent one
    assert await model_problems(entities) == []
    lamp = next(e for e in entities if e["type"] == "Streetlight")
    wrong = {
        **lamp,
        "status": {"type": "Property", "value": "broken"},
        "dimLevel": {"type": "Property", "value": 1},
    }
    statuses = ["brokenLantern", "columnIssue", "defectiveLamp", "ok"]
    assert await model_problems([wrong]) == [
        f"{lamp['id']}: status = 'broken' is not one of {statuses}",
        f"{lamp['id']}: dimLevel is not an attribute of dataModel.Streetlighting/Streetlight",
    ]

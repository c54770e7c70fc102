"""The shipped device library against its makers' documented data: each profile's example (under
tests/devices/examples/) is served by a real pymodbus server or published through a real Mosquitto,
and every field it documents must come out of the API with its value, in its unit, and as an NGSI-LD
entity its Smart Data Model accepts.
"""

from __future__ import annotations

import datetime as dt
import math
import tomllib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from pydantic import BaseModel, ConfigDict
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from api.ngsi_entities import urn
from controller.config import load_config
from drivers.fields import FieldValue
from drivers.profile import load_profile
from tests.api.keys import api_client
from tests.api.smart_data_models import model_problems
from tests.conftest import free_port
from tests.controller.city import running_controller
from tests.mosquitto import Mosquitto
from tests.waiting import fetched_until

EXAMPLES = Path(__file__).with_name("examples")
#: profiles whose devices the simulators play, tested through them (tests/simulators, tests/controller)
SIMULATED = {"lamp_lcu", "legacy_node", "env_sensor", "wifi_ap", "ble_env_sensor", "ble_adv_sensor"}


class Example(BaseModel):
    """One documented message or register image of a device model, and what the API must show."""

    model_config = ConfigDict(extra="forbid")

    profile: str
    expect: dict[str, FieldValue]
    # MQTT
    key: str | None = None
    topic: str | None = None
    payload: str | None = None
    availability: tuple[str, str] | None = None
    link_zone: str | None = None
    time: dt.datetime | None = None
    # Modbus
    unit_id: int | None = None
    registers: int = 0
    input: dict[str, list[int]] = {}


def examples() -> list[str]:
    return sorted(p.stem for p in EXAMPLES.glob("*.toml"))


def example(name: str) -> Example:
    return Example.model_validate(tomllib.loads((EXAMPLES / f"{name}.toml").read_text(encoding="utf-8")))


def test_every_shipped_profile_is_tested_with_its_documented_data() -> None:
    shipped = {p.name[:-5] for p in resources.files("drivers.profiles").iterdir() if p.name.endswith(".toml")}
    assert shipped - SIMULATED - set(examples()) == set(), "add tests/devices/examples/<profile>.toml"
    assert len(examples()) >= 8
    for name in examples():
        profile = load_profile(name)
        assert example(name).profile == name
        assert set(example(name).expect) == set(profile.mapped_fields()), f"{name}: every field checked"


def _config(tmp_path: Path, ex: Example, link: str) -> Path:
    path = tmp_path / "city.toml"
    address = f"unit_id = {ex.unit_id}" if ex.unit_id is not None else f'key = "{ex.key}"'
    path.write_text(
        f"""
[database]
url = "sqlite+aiosqlite:///{tmp_path}/registry.db"
[telemetry]
url = "sqlite+aiosqlite:///{tmp_path}/telemetry.db"
[poller]
ingest_linger_s = 0.05

[[sites]]
id = "hn"
latitude = 21.0
longitude = 105.8
timezone = "Asia/Ho_Chi_Minh"
{link}
[[devices]]
id = "dev-1"
link = "l1"
{address}
profile = "{ex.profile}"
group = "hanoi/hoan-kiem/cabinet-7"
latitude = 21.0287
longitude = 105.8524
poll_interval_s = 0.5
""",
        encoding="utf-8",
    )
    return path


@asynccontextmanager
async def _modbus_meter(ex: Example, port: int) -> AsyncIterator[None]:
    """A plain pymodbus server holding the example's input registers, zeros elsewhere in its range."""
    image = [0] * ex.registers
    for address, words in ex.input.items():
        image[int(address) : int(address) + len(words)] = words
    device = SimDevice(
        id=ex.unit_id or 1,
        simdata=(
            [SimData(0, values=False, datatype=DataType.BITS)],
            [SimData(0, values=False, datatype=DataType.BITS)],
            [SimData(0, values=0, datatype=DataType.REGISTERS)],
            [SimData(0, values=image, datatype=DataType.REGISTERS)],
        ),
    )
    server = ModbusTcpServer([device], address=("127.0.0.1", port))
    await server.serve_forever(background=True)
    try:
        yield
    finally:
        await server.shutdown()  # type: ignore[no-untyped-call]


def _same(got: Any, want: FieldValue) -> bool:
    if isinstance(want, bool | str):
        return bool(got == want)
    return isinstance(got, int | float) and math.isclose(got, want, rel_tol=1e-5, abs_tol=1e-9)


@pytest.mark.parametrize("name", examples())
async def test_a_shipped_profile_reads_its_documented_data(
    name: str, tmp_path: Path, mosquitto: Mosquitto
) -> None:
    ex = example(name)
    profile = load_profile(ex.profile)
    if profile.profile.protocol == "modbus":
        port = free_port()
        link = f'[[links]]\nid = "l1"\nsite = "hn"\nkind = "modbus_tcp"\nhost = "127.0.0.1"\nport = {port}\n'
    else:
        zone = f'timestamp_zone = "{ex.link_zone}"\n' if ex.link_zone else ""
        link = (
            f'[[links]]\nid = "l1"\nsite = "hn"\nkind = "mqtt"\nhost = "127.0.0.1"\n'
            f"port = {mosquitto.port}\n{zone}"
        )
    settings = load_config(_config(tmp_path, ex, link))
    async with running_controller(settings) as ctl, api_client(ctl, "viewer") as client:
        if profile.profile.protocol == "modbus":
            async with _modbus_meter(ex, port):
                detail = await fetched_until(
                    lambda: client.get("/api/v1/devices/dev-1"),
                    lambda r: r.json()["last_reading"] is not None,
                    what=f"{name}: a reading",
                )
        else:
            assert ex.topic is not None
            assert ex.payload is not None
            async with aiomqtt.Client("127.0.0.1", mosquitto.port) as publisher:
                if ex.availability:
                    await publisher.publish(ex.availability[0], ex.availability[1], qos=1, retain=True)
                await publisher.publish(ex.topic, ex.payload.strip(), qos=1)
            detail = await fetched_until(
                lambda: client.get("/api/v1/devices/dev-1"),
                lambda r: r.json()["last_reading"] is not None,
                what=f"{name}: a reading",
            )
        body = detail.json()
        reading = body["last_reading"]
        assert reading["rejected"] == {}, f"{name}: {reading['rejected']}"
        wrong = {
            f: (reading["values"].get(f), v)
            for f, v in ex.expect.items()
            if not _same(reading["values"].get(f), v)
        }
        assert wrong == {}, f"{name}: (got, documented) {wrong}"
        assert set(body["units"]) == set(ex.expect)  # every field says its unit
        if ex.time is not None:
            assert dt.datetime.fromisoformat(reading["ts"]) == ex.time
        if ex.availability:
            assert body["state"] != "offline"
        kind = profile.profile.entity_type
        entities = (await client.get("/ngsi-ld/v1/entities", params={"type": kind})).json()
        mine = [e for e in entities if e["id"] == urn(kind, "dev-1")]
        assert len(mine) == 1, f"{name}: no {kind} entity in {entities}"
        assert await model_problems(mine) == []

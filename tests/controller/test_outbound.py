"""Outbound MQTT: device state reaches a real broker, retained, within one interval of a change."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiomqtt
import pytest

from controller.config import load_config
from controller.outbound import DeviceStateMessage, json_schemas
from simulators.lamp import Fault
from tests.conftest import free_port
from tests.controller.city import running_city, running_controller, write_city
from tests.mosquitto import Mosquitto
from tests.waiting import until


async def test_state_is_published_retained_and_changes_go_out_promptly(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    path = write_city(tmp_path, interval=0.2)
    path.write_text(
        path.read_text()
        + f"""
[outbound]
enabled = true
host = "127.0.0.1"
port = {mosquitto.port}
state_interval_s = 0.2
"""
    )
    settings = load_config(path)
    async with running_city(settings) as city, running_controller(settings) as ctl:
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as ioc:
            await ioc.subscribe("lamplighter/#", qos=1)
            latest: dict[str, DeviceStateMessage] = {}
            events: list[dict[str, object]] = []

            async def listen() -> None:
                async for message in ioc.messages:
                    assert isinstance(message.payload, bytes)
                    if message.topic.matches("lamplighter/+/+/state"):
                        state = DeviceStateMessage.model_validate_json(message.payload)
                        assert message.topic.value == f"lamplighter/hn/{state.device_id}/state"
                        latest[state.device_id] = state
                    elif message.topic.matches("lamplighter/+/events"):
                        events.append(json.loads(message.payload))

            listener = asyncio.create_task(listen())
            try:
                await until(lambda: len(latest) == 9 and all(s.state == "ok" for s in latest.values()))
                assert float(latest["gw1-002"].values["voltage_v"]) > 200
                city.segments.find("gw1", 2).faults.add(Fault.LAMP_FAILURE)
                # one poll (0.2 s) plus one publish interval (0.2 s); generous on a loaded machine
                await until(lambda: latest["gw1-002"].state == "fault", within_s=5)
                assert latest["gw1-002"].status["lamp_failure"] is True
            finally:
                listener.cancel()
        assert ctl.publisher is not None
        published = ctl.publisher.published
    # retained: a late subscriber (an IOC starting up) gets every device's state at once
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as late:
        await late.subscribe("lamplighter/hn/+/state", qos=1)
        seen = set()
        async with asyncio.timeout(5):
            async for message in late.messages:
                seen.add(message.topic.value.split("/")[2])
                if len(seen) == 9:
                    break
    assert published >= 10
    assert {"gw1-002", "bus1-003"} <= seen


async def test_alerts_the_broker_never_had_are_counted_and_said_at_a_stop(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    extra = f"""
[alerts]
stop_delivery_s = 0.3

[outbound]
enabled = true
host = "127.0.0.1"
port = {free_port()}
"""
    settings = load_config(write_city(tmp_path, gw_lamps=2, bus_lamps=1, extra=extra))
    async with running_city(settings) as city, running_controller(settings) as ctl:
        city.segments.find("gw1", 1).faults.add(Fault.LAMP_FAILURE)
        alerts = ctl.alerts
        assert alerts is not None
        await until(lambda: len(alerts.book.active) == 1, what="the alert")
    assert ctl.publisher is not None
    assert ctl.publisher.alerts_dropped == 1
    assert ctl.metrics.alert_deliveries.labels("mqtt", "dropped")._value.get() == 1
    assert "1 alert messages not published before the stop" in caplog.text


def test_every_outbound_payload_has_a_json_schema() -> None:
    schemas = json_schemas()
    assert set(schemas) == {
        "lamplighter/<site>/<device>/state",
        "lamplighter/<site>/<device>/alert",
        "lamplighter/<site>/events",
    }
    state = schemas["lamplighter/<site>/<device>/state"]
    assert {"device_id", "state", "values", "last_seen"} <= set(state["required"])


def test_docs_show_the_schemas_the_code_publishes() -> None:
    text = (Path(__file__).parents[2] / "docs" / "mqtt.md").read_text(encoding="utf-8")
    for schema in json_schemas().values():
        assert json.dumps(schema, indent=2) in text

"""The MQTT driver against a real Mosquitto on a private port."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt

from drivers.base import DeviceRef, Reading
from drivers.mqtt import MqttLink
from drivers.options import MqttBroker
from drivers.profile import load_profile
from tests.mosquitto import Mosquitto
from tests.waiting import until

SENSOR = load_profile("env_sensor")
AP = load_profile("wifi_ap")
DEVICES = [
    DeviceRef("env-hoankiem-1", "hk1", SENSOR),
    DeviceRef("env-hoankiem-2", "hk2", SENSOR),
    DeviceRef("ap-hoankiem-1", "ap1", AP),
]
READING = {
    "ts": 1795000000,
    "pm": {"pm2_5": 41, "pm10": 70},
    "climate": {"temperature": 24.5, "humidity": 77},
    "noise_dba": 58,
    "lux": 12000,
}


class Sinks:
    def __init__(self, slow_s: float = 0.0) -> None:
        self.readings: list[Reading] = []
        self.availability: list[tuple[str, bool]] = []
        self.rejected: list[tuple[str, str, str]] = []
        self.slow_s = slow_s

    async def reading(self, r: Reading) -> None:
        if self.slow_s:
            await asyncio.sleep(self.slow_s)
        self.readings.append(r)

    def online(self, device_id: str, online: bool) -> None:
        self.availability.append((device_id, online))

    def reject(self, device_id: str, reason: str, detail: str) -> None:
        self.rejected.append((device_id, reason, detail))


@contextlib.asynccontextmanager
async def listening(link: MqttLink, sinks: Sinks) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(link.run(sinks.reading, sinks.online, sinks.reject))
    await until(lambda: link.stats.connected)
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def publish(broker: Mosquitto, *messages: tuple[str, bytes | str], qos: int = 1) -> None:
    async with aiomqtt.Client("127.0.0.1", broker.port) as client:
        for topic, payload in messages:
            await client.publish(topic, payload, qos=qos)


def make_link(broker: Mosquitto, **options: object) -> MqttLink:
    settings = MqttBroker.model_validate(
        {"host": "127.0.0.1", "port": broker.port, "backoff_base_s": 0.1, "backoff_cap_s": 0.5, **options}
    )
    return MqttLink("broker", settings, DEVICES)


async def test_sensor_and_access_point_messages_become_readings(mosquitto: Mosquitto) -> None:
    sinks = Sinks()
    link = make_link(mosquitto)
    assert sorted(link.subscriptions) == sorted(
        ["city/env/+/telemetry", "city/env/+/status", "city/wifi/+/stats", "city/wifi/+/status"]
    )
    async with listening(link, sinks):
        await publish(
            mosquitto,
            ("city/env/hk1/telemetry", json.dumps(READING)),
            (
                "city/wifi/ap1/stats",
                json.dumps(
                    {
                        "radio": {"clients": 23, "rx_kbps": 900, "tx_kbps": 5100},
                        "uptime_s": 86400,
                        "fw": "3.2",
                    }
                ),
            ),
        )
        await until(lambda: len(sinks.readings) == 2)
    by_device = {r.device_id: r for r in sinks.readings}
    assert by_device["env-hoankiem-1"].values["pm2_5_ugm3"] == 41
    assert by_device["env-hoankiem-1"].values["illuminance_lx"] == 12000
    assert by_device["ap-hoankiem-1"].values["clients"] == 23
    assert by_device["ap-hoankiem-1"].values["firmware_version"] == "3.2"


async def test_bad_messages_are_counted_per_reason_and_device_and_good_fields_kept(
    mosquitto: Mosquitto,
) -> None:
    sinks = Sinks()
    link = make_link(mosquitto)
    partial = dict(READING, noise_dba="loud")
    async with listening(link, sinks):
        await publish(
            mosquitto,
            ("city/env/hk1/telemetry", b"garbage"),
            ("city/env/hk1/telemetry", b"garbage again"),
            ("city/env/hk2/telemetry", json.dumps(READING).replace("58", "NaN")),
            ("city/env/nobody/telemetry", json.dumps(READING)),
            ("city/env/hk2/telemetry", b"[]"),
            ("city/env/hk2/telemetry", json.dumps(partial)),
        )
        await until(lambda: len(sinks.readings) == 1)
    assert link.stats.rejections == {
        ("env-hoankiem-1", "not_json"): 2,
        ("env-hoankiem-2", "not_json"): 1,
        ("env-hoankiem-2", "not_object"): 1,
        ("(unknown)", "unknown_device"): 1,
    }
    assert [(d, r) for d, r, _ in sinks.rejected].count(("env-hoankiem-1", "not_json")) == 2
    reading = sinks.readings[0]
    assert "noise_dba" in reading.rejected
    assert reading.values["pm2_5_ugm3"] == 41


async def test_last_will_and_online_messages_set_availability(mosquitto: Mosquitto) -> None:
    sinks = Sinks()
    async with listening(make_link(mosquitto), sinks):
        # an access point in its own process, whose power is then cut (kill -9): the broker
        # publishes the last will it registered
        ap = await asyncio.create_subprocess_exec(
            *[
                "mosquitto_sub",
                "-p",
                str(mosquitto.port),
                "-t",
                "city/wifi/ap1/cmd",
                "-k",
                "5",
                "--will-topic",
                "city/wifi/ap1/status",
                "--will-payload",
                "offline",
                "--will-qos",
                "1",
            ]
        )
        try:
            await asyncio.sleep(0.3)
            await publish(mosquitto, ("city/wifi/ap1/status", "online"))
            await until(lambda: ("ap-hoankiem-1", True) in sinks.availability)
        finally:
            ap.kill()
            await ap.wait()
        await until(lambda: ("ap-hoankiem-1", False) in sinks.availability)


async def test_persistent_session_keeps_messages_while_the_controller_is_away(mosquitto: Mosquitto) -> None:
    sinks = Sinks()
    link = make_link(mosquitto)
    async with listening(link, sinks):
        pass  # first connection creates the session and its subscriptions
    await publish(
        mosquitto, *[("city/env/hk1/telemetry", json.dumps(dict(READING, lux=i))) for i in range(50)]
    )
    async with listening(link, sinks):
        await until(lambda: len(sinks.readings) == 50)
    assert sorted(r.values["illuminance_lx"] for r in sinks.readings) == list(range(50))


async def test_broker_restart_loses_nothing_and_the_link_comes_back(mosquitto: Mosquitto) -> None:
    sinks = Sinks()
    link = make_link(mosquitto)
    async with listening(link, sinks):
        await publish(mosquitto, ("city/env/hk1/telemetry", json.dumps(dict(READING, lux=1))))
        await until(lambda: len(sinks.readings) == 1)
        mosquitto.stop()
        await until(lambda: not link.stats.connected)
        mosquitto.start()
        await until(lambda: link.stats.connected)
        await publish(mosquitto, ("city/env/hk1/telemetry", json.dumps(dict(READING, lux=2))))
        # QoS 1 is at least once: the broker may deliver lux=1 again after its restart
        await until(lambda: any(r.values.get("illuminance_lx") == 2 for r in sinks.readings))
    assert {r.values.get("illuminance_lx") for r in sinks.readings} == {1, 2}
    assert link.stats.connects == 2
    assert link.stats.connect_failures >= 1


async def test_a_full_inbound_queue_sheds_and_counts(mosquitto: Mosquitto) -> None:
    sinks = Sinks(slow_s=0.05)
    link = make_link(mosquitto, max_queued_messages=5, qos=0, persistent_session=False)
    async with listening(link, sinks):
        await publish(mosquitto, *[("city/env/hk1/telemetry", json.dumps(READING))] * 200, qos=0)
        await until(lambda: link.stats.shed > 0 and link.stats.messages + link.stats.shed >= 200)
    assert link.stats.shed >= 150  # the sink takes 50 ms a message, so most of the burst is shed


async def test_wrong_credentials_give_one_clear_message(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path / "secure", users={"lamplighter": "right"})
    broker.start()
    try:
        link = make_link(broker, username="lamplighter", password="wrong")
        sinks = Sinks()
        task = asyncio.create_task(link.run(sinks.reading, sinks.online, sinks.reject))
        await until(lambda: link.stats.connect_failures >= 1)
        assert "broker refused the connection" in (link.stats.last_error or "")
        assert "check username and password" in (link.stats.last_error or "")
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        ok = make_link(broker, username="lamplighter", password="right")
        async with listening(ok, sinks):
            assert ok.stats.connected
    finally:
        broker.stop()


async def test_messages_queued_for_the_session_survive_a_broker_restart(mosquitto: Mosquitto) -> None:
    sinks = Sinks()
    link = make_link(mosquitto)
    async with listening(link, sinks):
        pass
    await publish(
        mosquitto, *[("city/env/hk2/telemetry", json.dumps(dict(READING, lux=i))) for i in range(30)]
    )
    mosquitto.stop()  # the broker writes its persistence file, queued messages included
    mosquitto.start()
    async with listening(link, sinks):
        await until(lambda: len(sinks.readings) == 30)
    assert sorted(r.values["illuminance_lx"] for r in sinks.readings) == list(range(30))


async def test_tls_with_client_certificates(tmp_path: Path) -> None:
    from tests.tls_certs import make_tls_files

    tls = make_tls_files(tmp_path)
    broker = Mosquitto(tmp_path / "tls", tls=tls)
    broker.start()
    try:
        no_client_cert = make_link(broker, tls_ca_file=str(tls.ca), connect_timeout_s=1.0)
        sinks = Sinks()
        task = asyncio.create_task(no_client_cert.run(sinks.reading, sinks.online, sinks.reject))
        await until(lambda: no_client_cert.stats.connect_failures >= 1)
        assert not no_client_cert.stats.connected
        assert "check tls_cert_file and tls_key_file" in (no_client_cert.stats.last_error or "")
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

        link = make_link(
            broker,
            tls_ca_file=str(tls.ca),
            tls_cert_file=str(tls.client_cert),
            tls_key_file=str(tls.client_key),
        )
        async with listening(link, sinks):
            payload = json.dumps(READING)
            # a device on the same TLS listener, with its own certificate
            device = aiomqtt.Client(
                "127.0.0.1",
                broker.port,
                tls_params=aiomqtt.TLSParameters(
                    ca_certs=str(tls.ca), certfile=str(tls.client_cert), keyfile=str(tls.client_key)
                ),
            )
            async with device:
                await device.publish("city/env/hk1/telemetry", payload, qos=1)
            await until(lambda: len(sinks.readings) == 1)
    finally:
        broker.stop()


async def test_mqtt_5_with_a_persistent_session(mosquitto: Mosquitto) -> None:
    sinks = Sinks()
    link = make_link(mosquitto, protocol="5")
    async with listening(link, sinks):
        pass  # the session (7-day expiry) is created with the first connection
    await publish(
        mosquitto, *[("city/env/hk1/telemetry", json.dumps(dict(READING, lux=i))) for i in range(10)]
    )
    async with listening(link, sinks):
        await until(lambda: len(sinks.readings) == 10)
    assert sorted(r.values["illuminance_lx"] for r in sinks.readings) == list(range(10))


async def test_a_shared_group_spreads_telemetry_over_instances_and_each_sees_availability(
    mosquitto: Mosquitto,
) -> None:
    """Two controllers in one shared group: each telemetry message reaches exactly one of them;
    a device going offline reaches both."""
    instances = [(make_link(mosquitto, shared_group="city", client_id=f"ctl-{i}"), Sinks()) for i in (1, 2)]
    assert "$share/city/city/env/+/telemetry" in instances[0][0].subscriptions
    assert "city/env/+/status" in instances[0][0].subscriptions  # availability is not shared
    async with listening(*instances[0]), listening(*instances[1]):
        messages = [
            ("city/env/hk1/telemetry", json.dumps({**READING, "noise_dba": n})) for n in range(40, 80)
        ]
        await publish(mosquitto, *messages, ("city/env/hk2/status", "offline"))
        await until(lambda: sum(len(s.readings) for _, s in instances) == 40, what="40 readings")
        await until(
            lambda: all(("env-hoankiem-2", False) in s.availability for _, s in instances), what="offline"
        )
        await asyncio.sleep(0.3)  # a duplicate would arrive now
    seen = [[r.values["noise_dba"] for r in s.readings] for _, s in instances]
    assert sorted(seen[0] + seen[1]) == list(range(40, 80))  # each once, none lost
    assert all(seen)  # the broker spread them over both

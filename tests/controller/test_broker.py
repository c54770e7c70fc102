"""The broker is not open: the same rules on the embedded broker and on a real Mosquitto.

One behaviour, two brokers: the embedded broker enforces controller/broker/access.py itself; the
real Mosquitto runs with the acl_file `lamplighter broker acl` prints and a password file written
partly by `mosquitto_passwd`, partly by us (each broker reads the other's hashes).
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiomqtt
import psutil
import pytest

from controller.broker.access import (
    broker_rules,
    mosquitto_acl,
    read_password_file,
    set_password,
)
from controller.broker.embedded import BrokerAccess, EmbeddedBroker
from controller.config import load_config
from tests.controller.city import write_mqtt_city
from tests.controller.test_cli import LAMPLIGHTER
from tests.mosquitto import Mosquitto

PASSWORDS = {
    "lamplighter": "controller-secret-1",
    "env1": "sensor-one-secret",
    "env2": "sensor-two-secret",
    "ap1": "access-point-secret",
    "ioc": "operations-room-1",
}
LIMIT = 65_536


@dataclass
class BrokerUnderTest:
    kind: str
    port: int
    embedded: EmbeddedBroker | None = None

    def client(self, user: str | None, password: str | None = None, **kw: object) -> aiomqtt.Client:
        if user is not None and password is None:
            password = PASSWORDS[user]
        return aiomqtt.Client("127.0.0.1", self.port, username=user, password=password, timeout=5, **kw)  # type: ignore[arg-type]


def password_file(path: Path) -> Path:
    for user in ("env1", "env2", "ioc"):
        set_password(path, user, PASSWORDS[user])  # ours …
    for user in ("lamplighter", "ap1"):  # … and Mosquitto's own tool
        subprocess.run(["mosquitto_passwd", "-b", str(path), user, PASSWORDS[user]], check=True)
    return path


@pytest.fixture(params=["embedded", "mosquitto"])
async def broker(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[BrokerUnderTest]:
    devices = [("env-1", "env1", "env_sensor"), ("env-2", "env2", "env_sensor"), ("ap-1", "ap1", "wifi_ap")]
    config = write_mqtt_city(tmp_path, 1883, devices, extra='[embedded_broker]\nreaders = ["ioc"]')
    rules = broker_rules(load_config(config), links=["broker"], controller_users=["lamplighter"])
    passwd = password_file(tmp_path / "passwd")
    if request.param == "embedded":
        access = BrokerAccess(read_password_file(passwd), rules)
        embedded = EmbeddedBroker("127.0.0.1", 0, access=access, max_message_bytes=LIMIT)
        port = await embedded.start()
        yield BrokerUnderTest("embedded", port, embedded)
        await embedded.stop()
        return
    acl = tmp_path / "acl"
    acl.write_text(mosquitto_acl(rules))
    mosquitto = Mosquitto(tmp_path / "mosquitto", password_file=passwd, acl_file=acl, max_packet_bytes=LIMIT)
    mosquitto.start()
    yield BrokerUnderTest("mosquitto", mosquitto.port)
    mosquitto.stop()


async def received(client: aiomqtt.Client, until_topic: str, within_s: float = 5.0) -> list[str]:
    """Topics received until `until_topic` arrives (a sentinel sent after what is tested)."""
    topics: list[str] = []
    async with asyncio.timeout(within_s):
        async for message in client.messages:
            topics.append(message.topic.value)
            if message.topic.value == until_topic:
                return topics
    return topics


async def test_only_known_users_with_their_password_connect(broker: BrokerUnderTest) -> None:
    for user, password in ((None, None), ("env1", "wrong-password"), ("nobody", "whatever-1")):
        with pytest.raises(aiomqtt.MqttError):
            async with broker.client(user, password):
                pass
    async with broker.client("env1"):
        pass


async def test_devices_publish_only_on_their_own_topics(broker: BrokerUnderTest) -> None:
    async with broker.client("lamplighter") as controller, broker.client("env1") as env1:
        await controller.subscribe("#", qos=1)
        await asyncio.sleep(0.2)
        # Another device's telemetry, the IOC's state topics, an alert: none may come from env1.
        for topic in (
            "city/env/env2/telemetry",
            "city/wifi/ap1/status",
            "lamplighter/hn/env-2/state",
            "lamplighter/fw/env2/up",
        ):
            await env1.publish(topic, b'{"pm": {"pm2_5": 999}}', qos=0, retain=True)
        await env1.publish("city/env/env1/telemetry", b"{}", qos=1)  # its own: delivered
        assert await received(controller, "city/env/env1/telemetry") == ["city/env/env1/telemetry"]
        # Subscriptions wider than its own: the embedded broker refuses them (0x80), Mosquitto
        # grants them and delivers nothing; either way nothing else reaches the device.
        for topic_filter in ("#", "city/env/+/telemetry", "lamplighter/fw/env1/down"):
            await env1.subscribe(topic_filter, qos=1)
        await controller.publish("city/env/env2/telemetry", b"{}", qos=1)
        await controller.publish("lamplighter/hn/env-2/state", b"{}", qos=1)
        await controller.publish("lamplighter/fw/env1/down", b"frame", qos=1)
        assert await received(env1, "lamplighter/fw/env1/down") == ["lamplighter/fw/env1/down"]


async def test_readers_read_the_outbound_topics_and_nothing_else(broker: BrokerUnderTest) -> None:
    async with broker.client("lamplighter") as controller:
        await controller.publish("lamplighter/hn/lamp-1/state", b'{"state": "ok"}', qos=1, retain=True)
    async with broker.client("ioc") as ioc, broker.client("lamplighter") as watcher:
        await ioc.subscribe("city/#", qos=1)  # not the reader's: nothing comes of it
        await ioc.subscribe("lamplighter/#", qos=1)
        assert await received(ioc, "lamplighter/hn/lamp-1/state") == ["lamplighter/hn/lamp-1/state"]
        await watcher.subscribe("lamplighter/#", qos=1)
        await ioc.publish("lamplighter/hn/lamp-1/state", b'{"state": "fault"}', qos=0, retain=True)
        async with broker.client("lamplighter") as controller:
            await controller.publish("lamplighter/hn/events", b"sentinel", qos=1)
        topics = await received(watcher, "lamplighter/hn/events")
        assert "lamplighter/hn/events" in topics
        assert all(t == "lamplighter/hn/lamp-1/state" for t in topics[:-1])  # the retained one, at subscribe
    async with broker.client("ioc") as ioc:
        await ioc.subscribe("lamplighter/hn/lamp-1/state", qos=1)
        async with asyncio.timeout(5):
            message = await anext(aiter(ioc.messages))
        assert message.payload == b'{"state": "ok"}'  # the reader's write did not land


async def test_a_client_gets_only_the_retained_messages_it_subscribed_to(broker: BrokerUnderTest) -> None:
    async with broker.client("env1") as env1, broker.client("ap1") as ap1:
        await env1.publish("city/env/env1/status", b"online", qos=1, retain=True)
        await ap1.publish("city/wifi/ap1/status", b"offline", qos=1, retain=True)
    async with broker.client("lamplighter") as controller:
        await controller.publish("lamplighter/hn/lamp-1/state", b'{"state": "ok"}', qos=1, retain=True)
        async with broker.client("lamplighter", identifier="watcher") as other:
            await other.subscribe("city/+/+/status", qos=1)  # someone else's subscription
            # A new client with one narrow subscription (before, it also got both statuses above).
            async with broker.client("lamplighter", identifier="narrow") as narrow:
                await narrow.subscribe("lamplighter/hn/lamp-1/state", qos=1)
                await controller.publish("lamplighter/hn/lamp-1/state", b"sentinel", qos=1)
                topics = await received(narrow, "lamplighter/hn/lamp-1/state", within_s=5)
                with contextlib.suppress(TimeoutError):
                    topics += await received(narrow, "(nothing more)", within_s=1)
        assert set(topics) == {"lamplighter/hn/lamp-1/state"}


async def test_an_oversized_message_closes_the_connection_unread(
    broker: BrokerUnderTest, tmp_path: Path
) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * (32 * 2**20))
    process = psutil.Process()  # the embedded broker's process; the sender is another one
    async with broker.client("lamplighter") as controller:
        await controller.subscribe("city/#", qos=1)
        before = process.memory_info().rss
        sender = await asyncio.create_subprocess_exec(
            "mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), "-u", "env1", "-P", PASSWORDS["env1"],
            "-t", "city/env/env1/telemetry", "-q", "1", "-f", str(big),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        await asyncio.wait_for(sender.wait(), 30)
        grown = process.memory_info().rss - before
        async with broker.client("env1") as env1:
            await env1.publish("city/env/env1/status", b"online", qos=1)
        topics = await received(controller, "city/env/env1/status")
        assert topics == ["city/env/env1/status"]  # the 32 MB message never arrived
    if broker.embedded is not None:
        assert broker.embedded.oversized == 1
        assert grown < 8 * 2**20, f"{grown / 2**20:.0f} MB"  # not read into memory (was +285 MB for 100 MB)


EXAMPLES = Path(__file__).parents[2] / "examples"
#: what the test machine supplies itself: its own port, paths and no TLS certificates
_LOCAL = ("listener", "certfile", "keyfile", "cafile", "password_file", "acl_file", "persistence_location")


def test_the_shipped_mosquitto_example_is_what_the_config_makes_and_it_works(tmp_path: Path) -> None:
    config = str(EXAMPLES / "city.toml")
    acl = subprocess.run(
        [*LAMPLIGHTER, "broker", "acl", "-c", config, "--controller-user", "lamplighter"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert acl.stdout == (EXAMPLES / "mosquitto" / "lamplighter.acl").read_text(), "regenerate the example"
    passwd = tmp_path / "passwd"
    for user, password in (("lamplighter", "controller-secret-1"), ("dth", "sensor-secret-12")):
        made = subprocess.run(
            [*LAMPLIGHTER, "broker", "passwd", str(passwd), user, "--password", password],
            capture_output=True, text=True,
        )  # fmt: skip
        assert made.returncode == 0, made.stderr
    example = (EXAMPLES / "mosquitto" / "mosquitto.conf").read_text().splitlines()
    kept = [line for line in example if line.strip() and not line.startswith(("#", *_LOCAL))]
    assert "allow_anonymous false" in kept
    broker = Mosquitto(
        tmp_path / "mosquitto",
        password_file=passwd,
        acl_file=EXAMPLES / "mosquitto" / "lamplighter.acl",
        extra=kept,
    )
    broker.start()
    try:
        asyncio.run(_device_and_controller(broker.port))
    finally:
        broker.stop()


async def _device_and_controller(port: int) -> None:
    def client(user: str, password: str) -> aiomqtt.Client:
        return aiomqtt.Client("127.0.0.1", port, username=user, password=password, timeout=5)

    async with (
        client("lamplighter", "controller-secret-1") as controller,
        client("dth", "sensor-secret-12") as dth,
    ):
        await controller.subscribe("city/#", qos=1)
        await asyncio.sleep(0.2)
        await dth.publish("city/env/lethaito/telemetry", b"{}", qos=1)  # another sensor's topic
        await dth.publish("city/env/dth/telemetry", b"{}", qos=1)
        assert await received(controller, "city/env/dth/telemetry") == ["city/env/dth/telemetry"]

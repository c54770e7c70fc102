"""Firmware over MQTT through a real Mosquitto: several devices on one broker connection."""

from __future__ import annotations

import asyncio

from firmware_bridge.mqtt_channel import MqttFirmwareLink
from firmware_bridge.signing import sign_image
from firmware_bridge.transfer import TransferOptions, transfer
from simulators.bootloader import BootFault, BootloaderModel, MqttBootloaders
from tests.firmware_bridge.conftest import Keys, image_of
from tests.mosquitto import Mosquitto

OPTS = TransferOptions(chunk_size=4096, timeout_s=1.0, retries=2, boot_timeout_s=5)


async def test_three_sensors_are_updated_over_one_broker_and_a_silent_one_later(
    mosquitto: Mosquitto, keys: Keys
) -> None:
    trusted = {keys.key_id: keys.public}
    devices = {
        f"env-{i}": BootloaderModel(address=0, model="env_sensor", trusted=trusted, version="2.0.0")
        for i in range(3)
    }
    sims = MqttBootloaders("127.0.0.1", mosquitto.port, devices)
    await sims.start()
    image = image_of(50_000)
    signed = sign_image(image, keys.private, model="env_sensor", version="2.1.0")
    try:
        async with MqttFirmwareLink("127.0.0.1", mosquitto.port) as link:
            devices["env-2"].faults.add(BootFault.SILENT)
            results = await asyncio.gather(
                *(transfer(link.channel(key), 0, key, image, signed, trusted, OPTS) for key in devices)
            )
            by_device = {r.device_id: r for r in results}
            assert by_device["env-0"].state == "UPDATED", by_device["env-0"].reason
            assert by_device["env-1"].state == "UPDATED", by_device["env-1"].reason
            assert by_device["env-2"].state == "FAILED"
            assert "stopped answering" in (by_device["env-2"].reason or "")
            devices["env-2"].faults.clear()
            again = await transfer(link.channel("env-2"), 0, "env-2", image, signed, trusted, OPTS)
    finally:
        await sims.stop()
    assert again.state == "UPDATED", again.reason
    assert {d.version for d in devices.values()} == {"2.1.0"}
    assert all(d.slots[d.active].image == image for d in devices.values())

"""Firmware over BLE (bleak's real client on the simulated radio), and one campaign over all three
transports: a serial line (socat pty), BLE, and MQTT through a real Mosquitto."""

from __future__ import annotations

from pathlib import Path

from drivers.base import SerialPort
from firmware_bridge.ble_channel import BleFirmwareChannel
from firmware_bridge.campaign import Campaign, CampaignSpec
from firmware_bridge.mqtt_channel import MqttFirmwareLink
from firmware_bridge.serial_channel import SerialFirmwareChannel
from firmware_bridge.signing import sign_image
from firmware_bridge.transfer import FirmwareChannel, TransferOptions, TransferStatus, transfer
from simulators.ble_bootloader import BleBootloaderRadio
from simulators.bootloader import BootFault, BootloaderModel, MqttBootloaders, SerialBootloaders
from simulators.pty import PtyPair
from tests.firmware_bridge.conftest import Keys, image_of
from tests.mosquitto import Mosquitto

OPTS = TransferOptions(chunk_size=180, timeout_s=0.5, retries=2, boot_timeout_s=5)
BLE = "C0:FF:EE:00:00:01"


async def test_an_image_over_ble_with_crc_errors_and_a_rollback(keys: Keys) -> None:
    trusted = {keys.key_id: keys.public}
    device = BootloaderModel(address=0, model="ble_env_sensor", trusted=trusted, version="1.0.0")
    radio = BleBootloaderRadio({BLE: device})
    channel = BleFirmwareChannel(BLE, backend=radio.backend)
    image = image_of(3000)
    device.faults.add(BootFault.CRC_ERRORS)
    signed = sign_image(image, keys.private, model="ble_env_sensor", version="1.1.0")
    ok = await transfer(channel, 0, "ble-1", image, signed, trusted, OPTS)
    assert ok.state == "UPDATED", ok.reason
    assert ok.resent >= 5
    assert device.version == "1.1.0"
    device.faults = {BootFault.BOOT_FAIL}
    newer = sign_image(image_of(3000, seed=9), keys.private, model="ble_env_sensor", version="1.2.0")
    failed = await transfer(channel, 0, "ble-1", image_of(3000, seed=9), newer, trusted, OPTS)
    await channel.close()
    assert failed.state == "FAILED"
    assert failed.reason == "the device rolled back to 1.1.0: boot_check_failed"
    missing = BleFirmwareChannel("C0:FF:EE:00:00:99", backend=radio.backend)
    gone = await transfer(missing, 0, "ble-9", image, signed, trusted, OPTS)
    assert gone.state == "FAILED"
    assert "was not found" in (gone.reason or "") or "stopped answering" in (gone.reason or "")


async def test_one_campaign_updates_devices_over_serial_ble_and_mqtt(
    tmp_path: Path, keys: Keys, mosquitto: Mosquitto
) -> None:
    trusted = {keys.key_id: keys.public}

    def node(address: int = 0) -> BootloaderModel:
        return BootloaderModel(address=address, model="street_node", trusted=trusted, version="4.0.0")

    serial_devices = {f"rs485-{a}": node(a) for a in (1, 2, 3)}
    ble_devices = {f"ble-{i}": node() for i in range(3)}
    mqtt_devices = {f"mqtt-{i}": node() for i in range(3)}
    pty = PtyPair(tmp_path / "ttyRS485")
    await pty.start()
    line = SerialBootloaders(str(pty.device_end), list(serial_devices.values()), baudrate=115200)
    await line.start()
    radio = BleBootloaderRadio({f"C0:FF:EE:00:01:0{i}": ble_devices[f"ble-{i}"] for i in range(3)})
    broker_sims = MqttBootloaders("127.0.0.1", mosquitto.port, mqtt_devices)
    await broker_sims.start()
    serial = SerialFirmwareChannel(SerialPort(port=str(pty.controller_end), baudrate=115200))
    image = image_of(4000)
    signed = sign_image(image, keys.private, model="street_node", version="4.1.0")
    try:
        async with MqttFirmwareLink("127.0.0.1", mosquitto.port) as link:
            channels: dict[str, tuple[FirmwareChannel, int]] = {
                **{d: (serial, serial_devices[d].address) for d in serial_devices},
                **{
                    f"ble-{i}": (BleFirmwareChannel(f"C0:FF:EE:00:01:0{i}", backend=radio.backend), 0)
                    for i in range(3)
                },
                **{d: (link.channel(d), 0) for d in mqtt_devices},
            }

            async def update(device: str) -> TransferStatus:
                channel, address = channels[device]
                return await transfer(channel, address, device, image, signed, trusted, OPTS)

            spec = CampaignSpec(id="all", version="4.1.0", targets=tuple(sorted(channels)), waves=(34, 100))
            campaign = Campaign(spec, update)
            await campaign.start()
    finally:
        await serial.close()
        await broker_sims.stop()
        await line.stop()
        await pty.stop()
    assert campaign.state == "finished", campaign.reason
    assert campaign.summary() == {"UPDATED": 9}
    everyone = {**serial_devices, **ble_devices, **mqtt_devices}
    assert {d.version for d in everyone.values()} == {"4.1.0"}

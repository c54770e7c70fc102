"""Firmware transfer throughput per transport, and a 1,000-device campaign.

    python -m bench.bench_firmware [--image-kb 64] [--devices 1000]

- serial: a socat pty pair and the simulated bootloader, which spends real wire time at 115,200 baud
  (10 bits per byte, 8N1); effective image bytes/s against the line rate (11,520 bytes/s).
- MQTT: a private Mosquitto; image bytes/s of a transfer (4 KB chunks) against a bare aiomqtt client
  publishing the same 4 KB payloads at QoS 1 one after another, each waited for (the same pattern).
- campaign: `--devices` simulated bootloaders on MQTT, waves [1, 10, 100] %, error threshold 10 %;
  run once with every device healthy (time to complete), once with 15 % of wave 2 failing its boot
  check (the campaign must stop after wave 2).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import aiomqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from drivers.base import SerialPort
from drivers.firmware import SignedManifest
from firmware_bridge.campaign import Campaign, CampaignSpec
from firmware_bridge.mqtt_channel import MqttFirmwareLink
from firmware_bridge.serial_channel import SerialFirmwareChannel
from firmware_bridge.signing import generate_keypair, load_private_key, load_public_key, sign_image
from firmware_bridge.transfer import TransferOptions, TransferStatus, transfer
from simulators.bootloader import BootFault, BootloaderModel, MqttBootloaders, SerialBootloaders
from simulators.pty import PtyPair
from tests.mosquitto import Mosquitto


def image_of(size: int) -> bytes:
    return bytes((i * 131 + 7) % 256 for i in range(size))


async def serial_rate(tmp: Path, image: bytes, trusted: dict, signed, chunk: int) -> tuple[float, float]:  # type: ignore[no-untyped-def,type-arg]
    pty = PtyPair(tmp / f"tty{chunk}")
    await pty.start()
    device = BootloaderModel(address=0, model="legacy_node", trusted=trusted, version="1.0.0")
    sim = SerialBootloaders(str(pty.device_end), [device], baudrate=115200)
    await sim.start()
    channel = SerialFirmwareChannel(SerialPort(port=str(pty.controller_end), baudrate=115200))
    t0 = time.perf_counter()
    status = await transfer(channel, 0, "node", image, signed, trusted, TransferOptions(chunk_size=chunk))
    elapsed = time.perf_counter() - t0
    await channel.close()
    await sim.stop()
    await pty.stop()
    assert status.state == "UPDATED", status.reason
    return elapsed, len(image) / elapsed


async def mqtt_rates(broker: Mosquitto, image: bytes, trusted: dict, signed) -> tuple[float, float]:  # type: ignore[no-untyped-def,type-arg]
    payload = image_of(4096)
    async with aiomqtt.Client("127.0.0.1", broker.port) as client:
        n = max(1, len(image) // 4096)
        t0 = time.perf_counter()
        for _ in range(n):
            await client.publish("bench/bare", payload, qos=1)
        bare = n * 4096 / (time.perf_counter() - t0)
    devices = {"node": BootloaderModel(address=0, model="legacy_node", trusted=trusted, version="1.0.0")}
    sims = MqttBootloaders("127.0.0.1", broker.port, devices)
    await sims.start()
    async with MqttFirmwareLink("127.0.0.1", broker.port) as link:
        t0 = time.perf_counter()
        status = await transfer(
            link.channel("node"), 0, "node", image, signed, trusted, TransferOptions(chunk_size=4096)
        )
        elapsed = time.perf_counter() - t0
    await sims.stop()
    assert status.state == "UPDATED", status.reason
    return bare, len(image) / elapsed


async def campaign(
    broker: Mosquitto,
    devices_n: int,
    trusted: dict[str, Ed25519PublicKey],
    signed: SignedManifest,
    image: bytes,
    failing: bool,
) -> None:
    devices = {
        f"node-{i:04d}": BootloaderModel(address=0, model="legacy_node", trusted=trusted, version="1.0.0")
        for i in range(devices_n)
    }
    targets = tuple(sorted(devices))
    spec = CampaignSpec(id="bench", version=signed.manifest.version, targets=targets, waves=(1, 10, 100),
                        error_threshold_pct=10, success_threshold_pct=80, concurrency=100)  # fmt: skip
    if failing:
        wave2 = targets[devices_n // 100 : devices_n // 10]
        for name in wave2[: max(1, int(len(wave2) * 0.15))]:
            devices[name].faults.add(BootFault.BOOT_FAIL)
    sims = MqttBootloaders("127.0.0.1", broker.port, devices)
    await sims.start()
    opts = TransferOptions(chunk_size=4096, timeout_s=5, boot_timeout_s=10)
    async with MqttFirmwareLink("127.0.0.1", broker.port, queue_size=64) as link:

        async def update(device: str) -> TransferStatus:
            return await transfer(link.channel(device), 0, device, image, signed, trusted, opts)

        c = Campaign(spec, update)
        t0 = time.perf_counter()
        await c.start()
        elapsed = time.perf_counter() - t0
    await sims.stop()
    label = "15 % of wave 2 failing" if failing else "all healthy"
    print(f"  {label:24}: {c.state:8} after {elapsed:6.2f} s — {c.summary()}  {c.reason or ''}")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--image-kb", type=int, default=64)
    parser.add_argument("--devices", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        generate_keypair(tmp / "k.pem", tmp / "k.pub.pem")
        key, public = load_private_key(tmp / "k.pem"), load_public_key(tmp / "k.pub.pem")
        from drivers.firmware import key_id

        trusted = {key_id(public): public}
        image = image_of(args.image_kb * 1024)
        signed = sign_image(image, key, model="legacy_node", version="2.0.0")
        print(f"\nSerial at 115,200 baud (line rate 11,520 bytes/s), {args.image_kb} KB image")
        for chunk in (256, 512, 1024, 4096):
            elapsed, rate = await serial_rate(tmp, image, trusted, signed, chunk)
            print(
                f"  chunk {chunk:5}: {elapsed:6.2f} s, {rate:8,.0f} bytes/s = {rate / 11520:.0%} of the line"
            )
        broker = Mosquitto(tmp / "mosquitto", nodelay=True)
        broker.start()
        try:
            big = image_of(1024 * 1024)
            big_signed = sign_image(big, key, model="legacy_node", version="2.0.0")
            bare, rate = await mqtt_rates(broker, big, trusted, big_signed)
            print("\nMQTT (Mosquitto on loopback), 1 MB image, 4 KB chunks, QoS 1")
            print(f"  bare publish (4 KB, QoS 1, one at a time): {bare:12,.0f} bytes/s")
            print(f"  firmware transfer                        : {rate:12,.0f} bytes/s = {rate / bare:.0%}")
            small = image_of(16 * 1024)
            small_signed = sign_image(small, key, model="legacy_node", version="2.0.0")
            print(f"\nCampaign of {args.devices} devices over MQTT, 16 KB image, waves 1/10/100 %")
            await campaign(broker, args.devices, trusted, small_signed, small, failing=False)
            await campaign(broker, args.devices, trusted, small_signed, small, failing=True)
        finally:
            broker.stop()


if __name__ == "__main__":
    asyncio.run(main())

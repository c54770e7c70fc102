"""Firmware over a serial line: a socat pty pair, the simulated bootloader at 115200 baud."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from drivers.base import SerialPort
from drivers.firmware import SignedManifest
from firmware_bridge.serial_channel import SerialFirmwareChannel
from firmware_bridge.signing import sign_image
from firmware_bridge.transfer import TransferOptions, TransferStatus, transfer
from simulators.bootloader import BootFault, BootloaderModel, SerialBootloaders
from simulators.pty import PtyPair
from tests.firmware_bridge.conftest import Keys, image_of

OPTS = TransferOptions(chunk_size=256, timeout_s=0.5, retries=2, boot_timeout_s=5)


@dataclass
class Line:
    channel: SerialFirmwareChannel
    sim: SerialBootloaders
    device: BootloaderModel


@pytest.fixture
async def line(tmp_path: Path, keys: Keys) -> AsyncIterator[Line]:
    pty = PtyPair(tmp_path / "ttyFW")
    await pty.start()
    device = BootloaderModel(
        address=7, model="legacy_node", trusted={keys.key_id: keys.public}, version="1.2.0"
    )
    sim = SerialBootloaders(str(pty.device_end), [device], baudrate=115200)
    await sim.start()
    channel = SerialFirmwareChannel(SerialPort(port=str(pty.controller_end), baudrate=115200))
    yield Line(channel, sim, device)
    await channel.close()
    await sim.stop()
    await pty.stop()


def signed_for(
    keys: Keys, image: bytes, version: str = "1.3.0", model: str = "legacy_node"
) -> SignedManifest:
    return sign_image(image, keys.private, model=model, version=version)


async def run(line: Line, keys: Keys, image: bytes, signed: SignedManifest, **kw: object) -> TransferStatus:
    opts = TransferOptions(**{**OPTS.__dict__, **kw})
    return await transfer(line.channel, 7, "node-07", image, signed, {keys.key_id: keys.public}, opts)


async def test_an_image_is_sent_verified_by_the_device_and_booted(line: Line, keys: Keys) -> None:
    image = image_of(6000)
    states: list[str] = []
    status = await transfer(
        line.channel,
        7,
        "node-07",
        image,
        signed_for(keys, image),
        {keys.key_id: keys.public},
        OPTS,
        on_progress=lambda s: states.append(s.state) if not states or states[-1] != s.state else None,
    )
    assert status.state == "UPDATED", status.reason
    assert states == ["DOWNLOADING", "DOWNLOADED", "VERIFIED", "UPDATING", "UPDATED"]
    assert (status.version_before, status.version_after) == ("1.2.0", "1.3.0")
    assert status.chunks == 24
    assert line.device.active == "B"  # A/B: the new image went to the other slot
    assert line.device.slots["A"].version == "1.2.0"  # the old one stays, for a rollback


async def test_crc_errors_on_the_line_are_resent(line: Line, keys: Keys) -> None:
    line.device.faults.add(BootFault.CRC_ERRORS)
    image = image_of(3000)
    status = await run(line, keys, image, signed_for(keys, image))
    assert status.state == "UPDATED", status.reason
    assert status.resent >= 3
    assert line.device.slots[line.device.active].image == image


async def test_a_cut_transfer_resumes_from_the_last_acknowledged_offset(line: Line, keys: Keys) -> None:
    image = image_of(8000)
    signed = signed_for(keys, image)
    seen = 0

    def cut(status: TransferStatus) -> None:
        nonlocal seen
        seen += 1
        if status.offset >= 4096:
            line.device.faults.add(BootFault.SILENT)  # the cable is pulled

    first = await transfer(line.channel, 7, "node-07", image, signed, {keys.key_id: keys.public}, OPTS, cut)
    assert first.state == "FAILED"
    assert "stopped answering at offset 4096" in (first.reason or "")
    line.device.faults.clear()
    second = await run(line, keys, image, signed)
    assert second.state == "UPDATED", second.reason
    assert second.resumed_from == 4096
    assert second.chunks == (8000 - 4096 + 255) // 256


async def test_a_failed_boot_check_rolls_back(line: Line, keys: Keys) -> None:
    line.device.faults.add(BootFault.BOOT_FAIL)
    image = image_of(1000)
    status = await run(line, keys, image, signed_for(keys, image))
    assert status.state == "FAILED"
    assert status.reason == "the device rolled back to 1.2.0: boot_check_failed"
    assert line.device.version == "1.2.0"
    assert line.device.active == "A"


@pytest.mark.parametrize("case", ["tampered", "truncated", "wrong_model", "downgrade", "foreign_key"])
async def test_a_bad_image_is_refused_before_any_chunk_is_sent(
    line: Line, keys: Keys, other_keys: Keys, case: str
) -> None:
    image = image_of(2000)
    signed = signed_for(keys, image)
    if case == "tampered":
        image = image[:10] + b"\x00" + image[11:]
    elif case == "truncated":
        image = image[:1500]
    elif case == "wrong_model":
        signed = signed_for(keys, image, model="lamp_lcu")
    elif case == "downgrade":
        signed = signed_for(keys, image, version="1.1.0")
    else:
        signed = signed_for(other_keys, image)
    status = await run(line, keys, image, signed)
    assert status.state == "FAILED"
    expected = {"tampered": "hash_mismatch", "foreign_key": "unknown_key"}.get(case, case)
    assert f"refused before sending: {expected}" in (status.reason or "")
    assert line.sim.frames == 1  # HELLO only: not a byte of the image went out
    assert line.device.slots["B"].image == b""


async def test_the_device_itself_refuses_an_image_signed_with_a_key_it_does_not_trust(
    line: Line, keys: Keys, other_keys: Keys
) -> None:
    image = image_of(500)
    signed = signed_for(other_keys, image)
    trusted_by_controller = {keys.key_id: keys.public, other_keys.key_id: other_keys.public}
    status = await transfer(line.channel, 7, "node-07", image, signed, trusted_by_controller, OPTS)
    assert status.state == "FAILED"
    assert status.reason == "the device refused: unknown_key"

"""Rollout campaigns over real transfers (simulated bootloaders on a real Mosquitto)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from drivers.firmware import SignedManifest
from firmware_bridge.campaign import Campaign, CampaignSpec, Updater, split_waves
from firmware_bridge.mqtt_channel import MqttFirmwareLink
from firmware_bridge.signing import sign_image
from firmware_bridge.transfer import TransferOptions, TransferStatus, transfer
from simulators.bootloader import BootFault, BootloaderModel, MqttBootloaders
from tests.firmware_bridge.conftest import Keys, image_of
from tests.mosquitto import Mosquitto
from tests.waiting import until

OPTS = TransferOptions(chunk_size=4096, timeout_s=0.5, retries=1, boot_timeout_s=5)


@dataclass
class Fleet:
    devices: dict[str, BootloaderModel]
    link: MqttFirmwareLink
    keys: Keys

    def updater(self, image: bytes, version: str = "3.1.0") -> tuple[SignedManifest, Updater]:
        signed = sign_image(image, self.keys.private, model="legacy_node", version=version)
        trusted = {self.keys.key_id: self.keys.public}

        async def update(device: str) -> TransferStatus:
            return await transfer(self.link.channel(device), 0, device, image, signed, trusted, OPTS)

        return signed, update


@pytest.fixture
async def fleet(mosquitto: Mosquitto, keys: Keys) -> AsyncIterator[Fleet]:
    trusted = {keys.key_id: keys.public}
    devices = {
        f"node-{i:02d}": BootloaderModel(address=0, model="legacy_node", trusted=trusted, version="3.0.0")
        for i in range(20)
    }
    sims = MqttBootloaders("127.0.0.1", mosquitto.port, devices)
    await sims.start()
    async with MqttFirmwareLink("127.0.0.1", mosquitto.port) as link:
        yield Fleet(devices, link, keys)
    await sims.stop()


def spec(fleet: Fleet, **kw: object) -> CampaignSpec:
    return CampaignSpec(id="c1", version="3.1.0", targets=tuple(sorted(fleet.devices)), **kw)  # type: ignore[arg-type]


def test_waves_are_cumulative_percentages() -> None:
    waves = split_waves([f"d{i}" for i in range(1000)], [1, 10, 100])
    assert [len(w.devices) for w in waves] == [10, 90, 900]
    assert [len(w.devices) for w in split_waves(["a", "b", "c"], [1, 10, 100])] == [1, 1, 1]
    with pytest.raises(ValueError, match="increasing cumulative percentages"):
        CampaignSpec(id="x", version="1", targets=("a",), waves=(50, 20, 100))


async def test_a_wave_over_its_error_threshold_stops_the_campaign(fleet: Fleet) -> None:
    _, update = fleet.updater(image_of(10_000))
    for name in ("node-02", "node-03"):  # wave 2 (devices 2–9): 2 of 8 fail their boot check = 25 %
        fleet.devices[name].faults.add(BootFault.BOOT_FAIL)
    campaign = Campaign(spec(fleet, waves=(10, 50, 100), error_threshold_pct=20), update)
    await campaign.start()
    assert campaign.state == "stopped"
    assert campaign.reason == "wave 2: 25 % failed, over the error threshold of 20 %"
    assert campaign.summary() == {"UPDATED": 8, "FAILED": 2, "PENDING": 10}
    wave3 = campaign.waves[2].devices
    assert all(fleet.devices[d].version == "3.0.0" for d in wave3)  # never touched
    assert fleet.devices["node-02"].version == "3.0.0"  # rolled back by its bootloader


async def test_waves_wait_for_approval_and_failures_can_be_retried(fleet: Fleet) -> None:
    _, update = fleet.updater(image_of(5_000))
    fleet.devices["node-00"].faults.add(BootFault.SILENT)
    campaign = Campaign(
        spec(fleet, waves=(10, 100), approval=True, success_threshold_pct=90, error_threshold_pct=60), update
    )
    task = campaign.start()
    await until(lambda: campaign.state == "paused", what="paused under the success threshold")
    assert "only 50 % updated" in (campaign.reason or "")
    fleet.devices["node-00"].faults.clear()
    assert await campaign.retry_failed() == 1
    assert campaign.statuses["node-00"].state == "UPDATED"
    campaign.resume()
    await task
    assert campaign.state == "finished"
    assert {d.version for d in fleet.devices.values()} == {"3.1.0"}


async def test_approval_between_waves_and_cancel(fleet: Fleet) -> None:
    _, update = fleet.updater(image_of(5_000))
    campaign = Campaign(spec(fleet, waves=(10, 100), approval=True, concurrency=1), update)
    task = campaign.start()
    await until(lambda: campaign.state == "waiting_approval", what="waiting for approval")
    assert campaign.summary() == {"UPDATED": 2, "PENDING": 18}
    campaign.resume()
    await until(lambda: campaign.summary().get("UPDATED", 0) >= 4, what="wave 2 under way")
    campaign.cancel()
    await asyncio.wait_for(task, 10)
    assert campaign.state == "cancelled"
    updated = campaign.summary().get("UPDATED", 0)
    assert 4 <= updated < 20
    assert sum(d.version == "3.1.0" for d in fleet.devices.values()) in (updated, updated + 1)


async def test_a_shutdown_stops_transfers_that_let_a_cancellation_pass(fleet: Fleet) -> None:
    """Python 3.11's wait_for (a transfer's wait for each acknowledgement) returns the reply instead
    of raising when a cancellation arrives with it; the transfer then goes on. Here each transfer
    lets the first cancellation pass so, as that race would: the controller's shutdown (`halt`)
    must still end at once, the campaign paused, not wait for the transfers."""
    update, started = _lets_one_cancellation_pass(fleet)
    campaign = Campaign(spec(fleet, concurrency=4), update)
    campaign.start()
    await asyncio.wait_for(started.wait(), 10)
    await asyncio.wait_for(campaign.halt("the controller stopped: resume to go on"), 5)
    assert campaign.state == "paused"
    assert campaign.reason == "the controller stopped: resume to go on"


async def test_an_operator_s_cancel_stops_transfers_that_let_a_cancellation_pass(fleet: Fleet) -> None:
    """The same race under an operator's cancel: the transfers under way stop, none goes on to
    update its device after the operator said stop."""
    update, started = _lets_one_cancellation_pass(fleet)
    campaign = Campaign(spec(fleet, concurrency=4), update)
    task = campaign.start()
    await asyncio.wait_for(started.wait(), 10)
    campaign.cancel()
    await asyncio.wait_for(task, 5)
    assert campaign.state == "cancelled"
    assert campaign.summary().get("UPDATED", 0) == 0
    await asyncio.sleep(0.5)
    assert all(d.version == "3.0.0" for d in fleet.devices.values())


def _lets_one_cancellation_pass(fleet: Fleet) -> tuple[Updater, asyncio.Event]:
    """Real transfers that each let the first cancellation pass and go on, as Python 3.11's wait_for
    racing an acknowledgement would; and an event set when the first has begun."""
    _, update = fleet.updater(image_of(20_000))
    started = asyncio.Event()

    async def lets_one_pass(device: str) -> TransferStatus:
        started.set()
        try:
            return await update(device)
        except asyncio.CancelledError:
            pass  # the race: the transfer loop saw a reply, not the cancellation
        await asyncio.sleep(30)  # … and goes on with its next chunks
        return await update(device)

    return lets_one_pass, started

"""Firmware through the API: upload (refused when tampered), a campaign to MQTT devices, its status."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from api.app import create_app
from api.server import ApiServer
from controller.config import ControllerSettings, load_config
from controller.service import ControllerService
from drivers.firmware import key_id
from firmware_bridge.signing import generate_keypair, load_private_key, load_public_key, sign_image
from lamplighter.cli_support import API_KEY_ENV
from simulators.bootloader import BootloaderModel, MqttBootloaders
from tests.api.keys import api_client, auth_headers
from tests.controller.city import running_controller, write_mqtt_city
from tests.mosquitto import Mosquitto
from tests.waiting import fetched_until, json_of, until

KEYS = ("hk1", "hk2", "hk3")


def city(tmp_path: Path, broker: Mosquitto, public_key: Path) -> Path:
    extra = f"""
[firmware]
trusted_keys = ["{public_key.name}"]
images_dir = "{tmp_path}/firmware"
mqtt_host = "127.0.0.1"
mqtt_port = {broker.port}
timeout_s = 2
"""
    return write_mqtt_city(tmp_path, broker.port, [(f"env-{k}", k, "env_sensor") for k in KEYS], extra=extra)


@dataclass
class FirmwareFleet:
    private: Ed25519PrivateKey
    bootloaders: dict[str, BootloaderModel]
    settings: ControllerSettings


@pytest.fixture
async def fw(tmp_path: Path, mosquitto: Mosquitto) -> AsyncIterator[FirmwareFleet]:
    """A release key, three sensors' bootloaders on the broker, and the controller's config."""
    generate_keypair(tmp_path / "release.pem", tmp_path / "release.pub.pem")
    public = load_public_key(tmp_path / "release.pub.pem")
    trusted = {key_id(public): public}
    bootloaders = {
        k: BootloaderModel(address=0, model="env_sensor", trusted=trusted, version="2.0.0") for k in KEYS
    }
    sims = MqttBootloaders("127.0.0.1", mosquitto.port, bootloaders)
    await sims.start()
    settings = load_config(city(tmp_path, mosquitto, tmp_path / "release.pub.pem"))
    yield FirmwareFleet(load_private_key(tmp_path / "release.pem"), bootloaders, settings)
    await sims.stop()


async def test_upload_then_a_campaign_updates_the_group(tmp_path: Path, fw: FirmwareFleet) -> None:
    private, bootloaders, settings = fw.private, fw.bootloaders, fw.settings
    image = bytes(range(256)) * 200
    signed = sign_image(image, private, model="env_sensor", version="2.1.0")
    async with running_controller(settings) as ctl, api_client(ctl) as client:
        results = await _run(client, image, signed.model_dump_json().encode())
    tampered, uploaded, listed, created, duplicate, missing, final = results
    assert tampered.status_code == 422
    assert tampered.json()["error"]["details"] == [{"reason": "hash_mismatch"}]
    assert uploaded.status_code == 201, uploaded.text
    assert uploaded.json()["manifest"]["version"] == "2.1.0"
    assert [i["sha256"] for i in listed] == [signed.manifest.sha256]
    assert created.status_code == 201, created.text
    assert duplicate.status_code == 409
    assert missing.status_code == 404
    assert final["state"] == "finished", final
    assert final["summary"] == {"UPDATED": 3}
    assert {d["device_id"]: (d["version_before"], d["version_after"]) for d in final["devices"]} == {
        f"env-{k}": ("2.0.0", "2.1.0") for k in KEYS
    }
    assert {b.version for b in bootloaders.values()} == {"2.1.0"}
    assert (tmp_path / "firmware" / f"{signed.manifest.sha256}.bin").read_bytes() == image


async def _run(client: httpx.AsyncClient, image: bytes, manifest: bytes) -> tuple[Any, ...]:
    bad = bytearray(image)
    bad[5] ^= 0xFF
    tampered = await client.post("/api/v1/firmware", files={"image": bytes(bad), "manifest": manifest})
    uploaded = await client.post("/api/v1/firmware", files={"image": image, "manifest": manifest})
    listed = (await client.get("/api/v1/firmware")).json()
    body = {"id": "env-2.1", "image": uploaded.json()["sha256"], "group": "hanoi", "waves": [34, 100]}
    created = await client.post("/api/v1/campaigns", json=body)
    duplicate = await client.post("/api/v1/campaigns", json=body)
    missing = await client.post("/api/v1/campaigns", json={**body, "id": "x", "image": "0" * 64})
    final = await fetched_until(
        lambda: json_of(client.get("/api/v1/campaigns/env-2.1")),
        lambda c: c["state"] in ("finished", "stopped"),
        within_s=30,
        what="campaign env-2.1 ended",
    )
    return tampered, uploaded, listed, created, duplicate, missing, final


async def test_the_cli_uploads_and_runs_a_campaign_with_progress(tmp_path: Path, fw: FirmwareFleet) -> None:
    import sys

    private, settings = fw.private, fw.settings
    image = tmp_path / "env-2.2.0.bin"
    image.write_bytes(bytes(range(256)) * 100)
    signed = sign_image(image.read_bytes(), private, model="env_sensor", version="2.2.0")
    (tmp_path / "env-2.2.0.bin.manifest.json").write_text(signed.model_dump_json())

    env = dict(os.environ)

    async def cli(*args: str) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "lamplighter", "firmware", *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        return proc.returncode or 0, out.decode(), err.decode()

    async with running_controller(settings) as ctl:
        server = ApiServer(create_app(ControllerService(ctl)), "127.0.0.1", 0)
        await server.start()
        env[API_KEY_ENV] = (await auth_headers(ctl, "technician"))["X-API-Key"]
        try:
            uploaded = await cli("upload", str(image), "--api", server.url)
            started = await cli(
                "campaign", "start", "env-2.2", "--image", signed.manifest.sha256, "--group", "hanoi",
                "--waves", "34,100", "--api", server.url,
            )  # fmt: skip
            unknown = await cli("campaign", "status", "nope", "--api", server.url)
        finally:
            await server.stop()
    assert uploaded[0] == 0, uploaded[2]
    assert f"accepted: env_sensor 2.2.0 sha256 {signed.manifest.sha256}" in uploaded[1]
    assert started[0] == 0, started[2]
    assert "env-2.2: finished" in started[1]
    assert "{'UPDATED': 3}" in started[1]
    assert unknown[0] == 1
    assert "refused (404): no campaign 'nope'" in unknown[2]


async def test_a_campaign_survives_a_controller_restart_and_resumes(
    tmp_path: Path, fw: FirmwareFleet
) -> None:
    private, bootloaders, settings = fw.private, fw.bootloaders, fw.settings
    image = bytes(range(256)) * 50
    signed = sign_image(image, private, model="env_sensor", version="2.3.0")

    async def api(ctl: Any, method: str, path: str, **kw: Any) -> httpx.Response:
        async with api_client(ctl) as client:
            return await client.request(method, path, **kw)

    async with running_controller(settings) as ctl:
        sha = (
            await api(
                ctl,
                "POST",
                "/api/v1/firmware",
                files={"image": image, "manifest": signed.model_dump_json()},
            )
        ).json()["sha256"]
        body = {"id": "c", "image": sha, "group": "hanoi", "waves": [34, 100], "approval": True}
        assert (await api(ctl, "POST", "/api/v1/campaigns", json=body)).status_code == 201
        firmware = ctl.firmware
        assert firmware is not None
        await until(lambda: firmware.campaigns["c"].state == "waiting_approval", what="campaign c waits")
    async with running_controller(settings) as ctl:  # the same database: the campaign comes back
        restored = (await api(ctl, "GET", "/api/v1/campaigns/c")).json()
        await api(ctl, "POST", "/api/v1/campaigns/c/resume")
        final = await fetched_until(
            lambda: json_of(api(ctl, "GET", "/api/v1/campaigns/c")),
            lambda c: c["state"] == "finished",
            within_s=30,
            what="campaign c finished",
        )
    assert restored["state"] == "paused"
    assert restored["reason"] == "the controller stopped: resume to go on"
    assert restored["summary"] == {"UPDATED": 2, "PENDING": 1}
    assert final["state"] == "finished", final
    assert final["summary"] == {"UPDATED": 3}
    assert sorted(b.boots for b in bootloaders.values()) == [1, 1, 1]  # the first device was not sent again


async def test_in_a_cluster_each_instance_updates_only_its_own_devices(
    tmp_path: Path, fw: FirmwareFleet
) -> None:
    """A owns the broker link, B none: B refuses a campaign for A's devices and, restarted, does not
    take up A's campaign from the shared database."""
    from controller.config import ClusterSettings

    def instance(i: int, links: list[str]) -> ControllerSettings:
        cluster = ClusterSettings(instance=i, instances=2, links=tuple(links))
        telemetry = fw.settings.telemetry.model_copy(
            update={"url": f"sqlite+aiosqlite:///{tmp_path}/t{i}.db"}
        )
        return fw.settings.model_copy(update={"cluster": cluster, "telemetry": telemetry})

    image = bytes(range(256)) * 40
    signed = sign_image(image, fw.private, model="env_sensor", version="2.1.0")
    files = {"image": image, "manifest": signed.model_dump_json().encode()}
    body = {"id": "env-2.1", "image": signed.manifest.sha256, "waves": [100]}
    async with running_controller(instance(0, ["broker"])) as a, api_client(a, "technician") as api_a:
        async with running_controller(instance(1, [])) as b, api_client(b, "technician") as api_b:
            assert (await api_b.post("/api/v1/firmware", files=files)).status_code == 201
            refused = await api_b.post("/api/v1/campaigns", json={**body, "devices": ["env-hk1"]})
            assert refused.status_code == 409
            assert refused.json()["error"]["code"] == "other_instance"
            assert "env-hk1" in refused.json()["error"]["message"]
            assert (await api_a.post("/api/v1/firmware", files=files)).status_code == 201
            created = await api_a.post("/api/v1/campaigns", json={**body, "group": "hanoi"})
            assert created.status_code == 201, created.text
        async with running_controller(instance(1, [])) as b_again:
            assert b_again.firmware is not None
            assert b_again.firmware.campaigns == {}  # A's campaign stays A's

"""Firmware in the running controller: uploaded images (checked before they are kept) and campaigns.

Images are verified off the event loop against `[firmware] trusted_keys` and kept under
`images_dir/<sha256>.bin` with their signed manifest beside them, so they survive a restart.
Campaigns reach devices on MQTT links through one `MqttFirmwareLink` (docs/firmware.md).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from controller.config import EMBEDDED, ControllerSettings
from controller.fleet import Fleet
from controller.registry import DeviceRow
from drivers.firmware import SignedManifest, check_image, check_manifest, parse_signed_manifest
from firmware_bridge.campaign import Campaign, CampaignSpec
from firmware_bridge.mqtt_channel import MqttFirmwareLink
from firmware_bridge.signing import trusted_keys
from firmware_bridge.transfer import TransferOptions, TransferStatus, transfer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredImage:
    signed: SignedManifest
    path: Path

    @property
    def sha256(self) -> str:
        return self.signed.manifest.sha256


class FirmwareService:
    def __init__(self, settings: ControllerSettings, devices: dict[str, DeviceRow], fleet: Fleet) -> None:
        self.settings = settings
        self.fw = settings.firmware
        self.devices = devices
        self.fleet = fleet
        self.trusted: dict[str, Ed25519PublicKey] = {}
        self.images: dict[str, StoredImage] = {}
        self.campaigns: dict[str, Campaign] = {}
        self._link: MqttFirmwareLink | None = None
        self._lock = asyncio.Lock()
        self._connect_lock = asyncio.Lock()

    async def start(self) -> None:
        self.trusted = await asyncio.to_thread(trusted_keys, list(self.fw.trusted_keys))
        self.images = await asyncio.to_thread(self._scan)

    async def stop(self) -> None:
        for campaign in self.campaigns.values():
            campaign.cancel()
        await asyncio.gather(*(c.wait() for c in self.campaigns.values()), return_exceptions=True)
        if self._link is not None:
            await self._link.__aexit__(None, None, None)
            self._link = None

    # -- images -----------------------------------------------------------------------------------
    async def upload(self, image: bytes, manifest_json: bytes) -> StoredImage:
        """Check and keep an image; FirmwareRejected says why it was refused."""
        signed = parse_signed_manifest(manifest_json)

        def check_and_store() -> StoredImage:
            check_manifest(signed, self.trusted)
            check_image(image, signed.manifest)
            self.fw.images_dir.mkdir(parents=True, exist_ok=True)
            path = self.fw.images_dir / f"{signed.manifest.sha256}.bin"
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(image)
            tmp.replace(path)
            path.with_suffix(".manifest.json").write_text(signed.model_dump_json(), encoding="utf-8")
            return StoredImage(signed, path)

        stored = await asyncio.to_thread(check_and_store)
        self.images[stored.sha256] = stored
        log.info(
            "firmware %s %s accepted (%s)",
            stored.signed.manifest.model,
            stored.signed.manifest.version,
            stored.sha256[:12],
        )
        return stored

    def _scan(self) -> dict[str, StoredImage]:
        found: dict[str, StoredImage] = {}
        if not self.fw.images_dir.is_dir():
            return found
        for manifest in self.fw.images_dir.glob("*.manifest.json"):
            try:
                signed = parse_signed_manifest(manifest.read_bytes())
            except Exception as exc:  # a damaged file must not stop the controller
                log.warning("firmware: ignoring %s: %s", manifest, exc)
                continue
            image = manifest.with_name(f"{signed.manifest.sha256}.bin")
            if image.exists():
                found[signed.manifest.sha256] = StoredImage(signed, image)
        return found

    # -- campaigns --------------------------------------------------------------------------------
    def targets(
        self, model: str, group: str | None, devices: list[str] | None, version: str | None
    ) -> list[str]:
        """Devices reachable for firmware (MQTT links) of this model, by group, list and current version."""
        out = []
        for row in self.devices.values():
            if row.profile != model or self.settings.link(row.link_id).kind != "mqtt":
                continue
            if devices is not None and row.id not in devices:
                continue
            if group is not None and not (
                row.group_path == group or row.group_path.startswith(group.rstrip("/") + "/")
            ):
                continue
            if version is not None and self._current_version(row.id) != version:
                continue
            out.append(row.id)
        return sorted(out)

    def _current_version(self, device_id: str) -> str | None:
        doc = self.fleet[device_id].last_reading_doc() if device_id in self.fleet else None
        value = (doc or {}).get("values", {}).get("firmware_version")
        return str(value) if value is not None else None

    async def create_campaign(
        self, spec: CampaignSpec, image_sha: str, allow_downgrade: bool = False
    ) -> Campaign:
        async with self._lock:
            if spec.id in self.campaigns:
                raise ValueError(f"campaign {spec.id!r} exists")
            stored = self.images[image_sha]
            image = await asyncio.to_thread(stored.path.read_bytes)
            options = TransferOptions(
                chunk_size=self.fw.chunk_size, timeout_s=self.fw.timeout_s, allow_downgrade=allow_downgrade
            )

            async def update(device_id: str) -> TransferStatus:
                link = await self._mqtt()  # made again here if the broker connection dropped
                key = self.devices[device_id].address
                return await transfer(
                    link.channel(key), 0, device_id, image, stored.signed, self.trusted, options
                )

            campaign = Campaign(spec, update)
            self.campaigns[spec.id] = campaign
            campaign.start()
            return campaign

    async def _mqtt(self) -> MqttFirmwareLink:
        async with self._connect_lock:
            if self._link is not None and not self._link.alive:
                await self._link.__aexit__(None, None, None)
                self._link = None
            if self._link is None:
                self._link = await self._open_link()
            return self._link

    async def _open_link(self) -> MqttFirmwareLink:
        host, port = self.fw.mqtt_host, self.fw.mqtt_port
        if host == EMBEDDED:
            host, port = self.settings.embedded_broker.host, self.settings.embedded_broker.port
        link = MqttFirmwareLink(host, port, prefix=self.fw.topic_prefix)
        await link.__aenter__()  # MqttError: the devices of the campaign fail, saying why
        return link

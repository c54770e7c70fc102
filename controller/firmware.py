"""Firmware in the running controller: uploaded images (checked before they are kept) and campaigns.

Images are verified off the event loop against `[firmware] trusted_keys` and kept under
`images_dir/<sha256>.bin` with their signed manifest beside them, so they survive a restart.
Campaigns reach devices on MQTT links through one `MqttFirmwareLink` (docs/firmware.md). Each
campaign — its spec, state and every device's status — is saved in the registry database once a
second while it changes and at shutdown; after a restart a campaign that was under way comes back
paused ("resume to go on"), and resuming skips the devices already UPDATED.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import JSON, String, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Mapped, mapped_column

from controller.config import EMBEDDED, ControllerSettings
from controller.device import Device
from controller.fleet import Fleet
from controller.groups import in_group
from controller.registry import Base
from controller.supervisor import CriticalSection
from drivers.firmware import SignedManifest, check_image, check_manifest, parse_signed_manifest
from drivers.serial import SerialLineLink
from firmware_bridge.campaign import Campaign, CampaignSpec
from firmware_bridge.mqtt_channel import MqttFirmwareLink
from firmware_bridge.serial_channel import SerialFirmwareChannel
from firmware_bridge.signing import trusted_keys
from firmware_bridge.transfer import FirmwareChannel, TransferOptions, TransferStatus, transfer

log = logging.getLogger(__name__)
#: link kinds a campaign reaches devices on
REACHABLE = frozenset({"mqtt", "serial_line"})


class CampaignRow(Base):
    __tablename__ = "firmware_campaigns"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    doc: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[dt.datetime] = mapped_column()


@dataclass(frozen=True)
class StoredImage:
    signed: SignedManifest
    path: Path

    @property
    def sha256(self) -> str:
        return self.signed.manifest.sha256


class FirmwareService:
    def __init__(
        self,
        settings: ControllerSettings,
        devices: dict[str, Device],
        fleet: Fleet,
        engine: AsyncEngine,
        drivers: Mapping[str, object] | None = None,
    ) -> None:
        self.engine = engine
        self.drivers = dict(drivers or {})
        self._serial: dict[str, SerialFirmwareChannel] = {}
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
        self._saved: dict[str, tuple[Any, ...]] = {}
        self._saver: asyncio.Task[None] | None = None
        self._saves = CriticalSection()  # a save under way when the saver is cancelled finishes
        self._extra: dict[str, dict[str, Any]] = {}  # campaign id → image sha and options

    async def start(self) -> None:
        self.trusted = await asyncio.to_thread(trusted_keys, list(self.fw.trusted_keys))
        self.images = await asyncio.to_thread(self._scan)
        await self._load_campaigns()
        self._saver = asyncio.create_task(self._save_forever(), name="firmware-campaign-saver")

    async def stop(self) -> None:
        """Stop sending; campaigns under way are saved as they are (they come back paused)."""
        if self._saver is not None:
            self._saver.cancel()
            await asyncio.gather(self._saver, return_exceptions=True)
            await self._saves.join()
        for campaign in self.campaigns.values():
            await campaign.halt("the controller stopped: resume to go on")
        await self._save_changed(force=True)
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
            if row.profile != model or self.settings.link(row.link_id).kind not in REACHABLE:
                continue
            if devices is not None and row.id not in devices:
                continue
            if group is not None and not in_group(row.group_path, group):
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
            campaign = self._campaign_for(spec, self.images[image_sha], allow_downgrade)
            self.campaigns[spec.id] = campaign
            self._extra[spec.id] = {"image": image_sha, "allow_downgrade": allow_downgrade}
            campaign.start()
            await self._save_changed(force=True)
            return campaign

    def _campaign_for(self, spec: CampaignSpec, stored: StoredImage, allow_downgrade: bool) -> Campaign:
        options = TransferOptions(
            chunk_size=self.fw.chunk_size, timeout_s=self.fw.timeout_s, allow_downgrade=allow_downgrade
        )
        image: list[bytes] = []  # read once, off the event loop, when the first device needs it

        async def update(device_id: str) -> TransferStatus:
            if not image:
                image.append(await asyncio.to_thread(stored.path.read_bytes))
            channel, address = await self._channel(self.devices[device_id])
            return await transfer(channel, address, device_id, image[0], stored.signed, self.trusted, options)

        return Campaign(spec, update)

    # -- persistence ------------------------------------------------------------------------------
    async def _save_forever(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            try:
                await self._saves.run(self._save_changed())
            except Exception:
                log.exception("saving firmware campaigns failed; next try in 1 s")

    async def _save_changed(self, *, force: bool = False) -> None:
        rows = []
        for cid, c in self.campaigns.items():
            fingerprint = (c.state, c.reason, c.current, tuple(sorted(c.summary().items())), len(c.statuses))
            if force or self._saved.get(cid) != fingerprint:
                rows.append((cid, _campaign_doc(c, self._extra.get(cid, {})), fingerprint))
        if not rows:
            return
        now = dt.datetime.now(dt.UTC)
        async with self.engine.begin() as conn:
            await conn.execute(delete(CampaignRow).where(CampaignRow.id.in_([r[0] for r in rows])))
            await conn.execute(
                insert(CampaignRow), [{"id": cid, "doc": doc, "updated_at": now} for cid, doc, _ in rows]
            )
        for cid, _, fingerprint in rows:
            self._saved[cid] = fingerprint

    async def _load_campaigns(self) -> None:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(CampaignRow.id, CampaignRow.doc))).all()
        elsewhere: set[str] | None = None
        for cid, doc in rows:
            try:
                spec = CampaignSpec.model_validate(doc["spec"])
            except (KeyError, ValueError) as exc:
                log.warning("firmware campaign %s cannot be restored: %s", cid, exc)
                continue
            if not set(spec.targets) <= self.devices.keys():
                elsewhere = elsewhere if elsewhere is not None else self._elsewhere()  # once per start
                if set(spec.targets) & elsewhere:
                    continue  # [cluster]: another instance's campaign (each updates its own devices)
            try:
                stored = self.images[doc["image"]]
            except KeyError as exc:
                log.warning("firmware campaign %s cannot be restored: no image %s", cid, exc)
                continue
            campaign = self._campaign_for(spec, stored, bool(doc.get("allow_downgrade")))
            campaign.statuses = {d: _status(s) for d, s in doc.get("statuses", {}).items()}
            campaign.current = int(doc.get("current", 0))
            for wave in campaign.waves:
                if wave.index in doc.get("waves_done", []):
                    wave.state = "done"
            campaign.state = doc.get("state", "paused")
            campaign.reason = doc.get("reason")
            campaign.started_at = _when(doc.get("started_at"))
            campaign.finished_at = _when(doc.get("finished_at"))
            if campaign.state in ("running", "created", "waiting_approval"):
                campaign.state, campaign.reason = "paused", "the controller restarted: resume to go on"
            campaign._go.clear()
            self.campaigns[cid] = campaign
            self._extra[cid] = {"image": doc["image"], "allow_downgrade": bool(doc.get("allow_downgrade"))}
        if self.campaigns:
            log.info("firmware: %d campaigns restored", len(self.campaigns))

    def _elsewhere(self) -> set[str]:
        """Devices on links other controller instances serve ([cluster])."""
        return {d.id for d in self.settings.all_devices() if d.id not in self.devices}

    async def _channel(self, row: Device) -> tuple[FirmwareChannel, int]:
        """How frames reach this device: its serial line (borrowed between polls), or MQTT."""
        driver = self.drivers.get(row.link_id)
        if isinstance(driver, SerialLineLink):
            channel = self._serial.get(row.link_id)
            if channel is None:
                channel = self._serial[row.link_id] = SerialFirmwareChannel(line=driver)
            return channel, int(row.unit_id or 0)
        link = await self._mqtt()  # made again here if the broker connection dropped
        return link.channel(row.address), 0

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
        link = MqttFirmwareLink(
            host,
            port,
            prefix=self.fw.topic_prefix,
            username=self.fw.mqtt_username,
            password=self.fw.mqtt_password,
        )
        await link.__aenter__()  # MqttError: the devices of the campaign fail, saying why
        return link


def _campaign_doc(c: Campaign, extra: dict[str, Any]) -> dict[str, Any]:
    return {
        **extra,
        "spec": c.spec.model_dump(mode="json"),
        "state": c.state,
        "reason": c.reason,
        "current": c.current,
        "waves_done": [w.index for w in c.waves if w.state == "done"],
        "started_at": c.started_at.isoformat() if c.started_at else None,
        "finished_at": c.finished_at.isoformat() if c.finished_at else None,
        "statuses": {
            d: {
                k: (v.isoformat() if isinstance(v, dt.datetime) else v)
                for k, v in dataclasses.asdict(st).items()
            }
            for d, st in c.statuses.items()
        },
    }


def _status(doc: dict[str, Any]) -> TransferStatus:
    fields = {f.name for f in dataclasses.fields(TransferStatus)}
    values = {k: v for k, v in doc.items() if k in fields}
    for key in ("started_at", "finished_at"):
        values[key] = _when(values.get(key))
    if values.get("started_at") is None:
        values.pop("started_at", None)
    return TransferStatus(**values)


def _when(text: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text) if text else None

"""Firmware routes: upload signed images (checked before they are kept), run and steer campaigns."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Response, UploadFile
from pydantic import BaseModel, ConfigDict, Field

from api.access import Permission, allow
from api.deps import Service
from api.errors import ApiError, ErrorBody
from api.models import Page
from api.params import Limit, Offset
from controller.firmware import StoredImage
from controller.service import ControllerService
from drivers.firmware import FirmwareRejected, Manifest
from firmware_bridge.campaign import Campaign, CampaignSpec
from schedules.inputs import Flag, Number, Whole

router = APIRouter(prefix="/api/v1", tags=["firmware"], dependencies=[allow(Permission.READ)])
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorBody, "description": "not found"}}


class FirmwareOut(BaseModel):
    sha256: str
    manifest: Manifest


class CampaignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    image: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 of an uploaded image")
    group: str | None = Field(
        default=None, max_length=300, description="target this group and its sub-groups"
    )
    devices: list[Annotated[str, Field(max_length=64)]] | None = Field(
        default=None, max_length=100_000, description="or these devices"
    )
    current_version: str | None = Field(
        default=None, max_length=64, description="only devices running this version"
    )
    waves: tuple[Number, ...] = Field(default=(1, 10, 100), min_length=1, max_length=20)
    success_threshold_pct: Number = Field(default=95, ge=0, le=100)
    error_threshold_pct: Number = Field(default=10, ge=0, le=100)
    approval: Flag = False
    concurrency: Whole = Field(default=50, ge=1, le=10_000)
    allow_downgrade: Flag = False


class DeviceUpdateOut(BaseModel):
    device_id: str
    state: str
    offset: int
    size: int
    reason: str | None
    version_before: str | None
    version_after: str | None


class WaveOut(BaseModel):
    index: int
    state: str
    devices: int
    counts: dict[str, int]


class CampaignOut(BaseModel):
    id: str
    version: str
    state: str
    reason: str | None
    current_wave: int
    waves: list[WaveOut]
    summary: dict[str, int]
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    devices: list[DeviceUpdateOut]


@router.post(
    "/firmware",
    dependencies=[allow(Permission.DEVICES)],
    # Images are bigger than the API's body limit: api/gate.py lets [firmware] max_image_mb through.
    response_model=FirmwareOut,
    status_code=201,
    responses={422: {"model": ErrorBody, "description": "refused, with the reason"}},
    summary="Upload a signed image",
    description="Multipart form: `image` (the bytes) and `manifest` (the signed manifest JSON). "
    "Checked against the trusted keys before it is kept; refusals say why (`unsigned`, `unknown_key`, "
    "`bad_signature`, `truncated`, `hash_mismatch`, …).",
)
async def upload(
    service: Service,
    response: Response,
    image: Annotated[UploadFile, File()],
    manifest: Annotated[UploadFile, File()],
) -> FirmwareOut:
    firmware = service.firmware
    limit = int(firmware.fw.max_image_mb * 2**20)
    data = await image.read(limit + 1)
    if len(data) > limit:
        raise ApiError(413, "too_large", f"images are limited to {firmware.fw.max_image_mb:g} MB")
    try:
        stored = await firmware.upload(data, await manifest.read(1_000_000))
    except FirmwareRejected as exc:
        raise ApiError(422, "firmware_rejected", f"{exc.reason}: {exc}", [{"reason": exc.reason}]) from None
    response.headers["Location"] = f"/api/v1/firmware/{stored.sha256}"
    return _image_out(stored)


@router.get("/firmware", response_model=list[FirmwareOut], summary="Uploaded images")
async def images(service: Service) -> list[FirmwareOut]:
    return [_image_out(i) for i in service.firmware.images.values()]


@router.post(
    "/campaigns",
    dependencies=[allow(Permission.DEVICES)],
    response_model=CampaignOut,
    status_code=201,
    responses={404: {"model": ErrorBody}, 409: {"model": ErrorBody}, 422: {"model": ErrorBody}},
    summary="Start a rollout campaign",
)
async def create_campaign(service: Service, response: Response, body: CampaignIn) -> CampaignOut:
    firmware = service.firmware
    stored = firmware.images.get(body.image)
    if stored is None:
        raise ApiError(404, "not_found", f"no uploaded image {body.image}")
    if body.id in firmware.campaigns:
        raise ApiError(409, "exists", f"campaign {body.id!r} exists")
    elsewhere = service.served_elsewhere(body.devices or [])
    if elsewhere:  # [cluster]: each instance updates the devices of its own links
        raise ApiError(
            409,
            "other_instance",
            f"{len(elsewhere)} of these devices ({', '.join(elsewhere[:5])}) are on links another "
            "controller instance serves ([cluster]): upload the image and start their campaign there",
        )
    targets = firmware.targets(stored.signed.manifest.model, body.group, body.devices, body.current_version)
    if not targets:
        raise ApiError(
            422, "no_targets", f"no {stored.signed.manifest.model} device reachable for firmware matches"
        )
    try:
        spec = CampaignSpec(
            id=body.id,
            version=stored.signed.manifest.version,
            targets=tuple(targets),
            waves=body.waves,
            success_threshold_pct=body.success_threshold_pct,
            error_threshold_pct=body.error_threshold_pct,
            approval=body.approval,
            concurrency=body.concurrency,
        )
    except ValueError as exc:
        raise ApiError(422, "invalid_request", str(exc)) from None
    campaign = await firmware.create_campaign(spec, body.image, body.allow_downgrade)
    response.headers["Location"] = f"/api/v1/campaigns/{body.id}"
    return _campaign_out(campaign)


@router.get("/campaigns", response_model=Page[CampaignOut], summary="Campaigns, oldest first")
async def campaigns(service: Service, limit: Limit = 100, offset: Offset = 0) -> Page[CampaignOut]:
    every = list(service.firmware.campaigns.values())
    items = [_campaign_out(c) for c in every[offset : offset + limit]]
    return Page[CampaignOut](items=items, total=len(every), limit=limit, offset=offset)


@router.get(
    "/campaigns/{campaign_id}", response_model=CampaignOut, responses=_NOT_FOUND, summary="One campaign"
)
async def campaign(service: Service, campaign_id: str) -> CampaignOut:
    return _campaign_out(_find(service, campaign_id))


@router.post(
    "/campaigns/{campaign_id}/{action}",
    dependencies=[allow(Permission.DEVICES)],
    response_model=CampaignOut,
    responses=_NOT_FOUND,
    summary="pause, resume (or approve the next wave), cancel, retry failed",
)
async def steer(
    service: Service, campaign_id: str, action: Literal["pause", "resume", "cancel", "retry"]
) -> CampaignOut:
    c = _find(service, campaign_id)
    if action == "pause":
        c.pause()
    elif action == "resume":
        c.resume()
    elif action == "cancel":
        c.cancel()
    else:
        await c.retry_failed()
    return _campaign_out(c)


def _find(service: ControllerService, campaign_id: str) -> Campaign:
    c = service.firmware.campaigns.get(campaign_id)
    if c is None:
        raise ApiError(404, "not_found", f"no campaign {campaign_id!r}")
    return c


def _image_out(stored: StoredImage) -> FirmwareOut:
    return FirmwareOut(sha256=stored.sha256, manifest=stored.signed.manifest)


def _campaign_out(c: Campaign) -> CampaignOut:
    return CampaignOut(
        id=c.spec.id,
        version=c.spec.version,
        state=c.state,
        reason=c.reason,
        current_wave=c.current,
        waves=[
            WaveOut(index=w.index, state=w.state, devices=len(w.devices), counts=w.counts(c.statuses))
            for w in c.waves
        ],
        summary=c.summary(),
        started_at=c.started_at,
        finished_at=c.finished_at,
        devices=[
            DeviceUpdateOut(
                device_id=d,
                state=s.state,
                offset=s.offset,
                size=s.size,
                reason=s.reason,
                version_before=s.version_before,
                version_after=s.version_after,
            )
            for w in c.waves
            for d in w.devices
            if (s := c.statuses.get(d)) is not None
        ],
    )

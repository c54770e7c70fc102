"""The simulators' control API: a technician lists simulated lamps and injects or clears faults."""

from __future__ import annotations

from typing import Annotated

from fastapi import FastAPI, HTTPException, Query
from pydantic import BaseModel, ConfigDict

from simulators.city import SegmentSet
from simulators.lamp import Fault, LampModel
from simulators.mqtt_devices import MqttDeviceModel, MqttFault


class LampOut(BaseModel):
    link: str
    unit_id: int
    level_cmd: int
    on_cmd: bool
    power_w: float
    voltage_v: float
    temperature_c: float
    faults: list[Fault]


class FaultRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    link: str
    unit_id: int
    fault: Fault
    active: bool = True


class LinkFaultRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    fault: Fault
    active: bool = True


class LinkFaultOut(BaseModel):
    link: str
    fault: Fault
    active: bool
    lamps: int


class MqttDeviceOut(BaseModel):
    link: str
    key: str
    profile: str
    kind: str
    published: int
    faults: list[MqttFault]


class MqttFaultRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    link: str
    key: str
    fault: MqttFault
    active: bool = True


class SegmentOut(BaseModel):
    link: str
    lamps: int
    requests: int
    writes: int
    rejected_writes: int
    silent: int


def create_control_app(segments: SegmentSet) -> FastAPI:
    app = FastAPI(title="Lamplighter simulators", version="1")

    @app.get("/links", response_model=list[SegmentOut])
    async def links() -> list[SegmentOut]:
        return [
            SegmentOut(
                link=name,
                lamps=len(seg.lamps),
                requests=seg.stats.requests,
                writes=seg.stats.writes,
                rejected_writes=seg.stats.rejected_writes,
                silent=seg.stats.silent,
            )
            for name, seg in segments.segments.items()
        ]

    @app.get("/lamps", response_model=list[LampOut])
    async def lamps(link: Annotated[str | None, Query()] = None) -> list[LampOut]:
        return [
            _lamp_out(name, lamp)
            for name, seg in segments.segments.items()
            if link in (None, name)
            for lamp in seg.lamps.values()
        ]

    @app.post("/faults", response_model=LampOut)
    async def set_fault(req: FaultRequest) -> LampOut:
        lamp = _find(segments, req.link, req.unit_id)
        if req.active:
            lamp.faults.add(req.fault)
        else:
            lamp.faults.discard(req.fault)
        return _lamp_out(req.link, lamp)

    @app.post("/links/{link}/faults", response_model=LinkFaultOut)
    async def set_link_fault(link: str, req: LinkFaultRequest) -> LinkFaultOut:
        """Every lamp on the link at once: a feeder or a cabinet trips."""
        seg = segments.segments.get(link)
        if seg is None:
            raise HTTPException(404, f"no simulated link {link!r}")
        for lamp in seg.lamps.values():
            if req.active:
                lamp.faults.add(req.fault)
            else:
                lamp.faults.discard(req.fault)
        return LinkFaultOut(link=link, fault=req.fault, active=req.active, lamps=len(seg.lamps))

    @app.delete("/faults", response_model=list[LampOut])
    async def clear_faults(
        link: Annotated[str | None, Query()] = None, unit_id: Annotated[int | None, Query()] = None
    ) -> list[LampOut]:
        cleared = []
        for name, seg in segments.segments.items():
            if link not in (None, name):
                continue
            for lamp in seg.lamps.values():
                if unit_id in (None, lamp.unit_id) and lamp.faults:
                    lamp.faults.clear()
                    cleared.append(_lamp_out(name, lamp))
        return cleared

    @app.get("/mqtt-devices", response_model=list[MqttDeviceOut])
    async def mqtt_devices() -> list[MqttDeviceOut]:
        return [_mqtt_out(name, d) for name, fleet in segments.mqtt.items() for d in fleet.devices.values()]

    @app.post("/mqtt-faults", response_model=MqttDeviceOut)
    async def set_mqtt_fault(req: MqttFaultRequest) -> MqttDeviceOut:
        fleet = segments.mqtt.get(req.link)
        if fleet is None:
            raise HTTPException(404, f"no simulated MQTT link {req.link!r}")
        try:
            device = fleet.set_fault(req.key, req.fault, req.active)
        except LookupError as exc:
            raise HTTPException(404, str(exc)) from None
        return _mqtt_out(req.link, device)

    return app


def _mqtt_out(link: str, d: MqttDeviceModel) -> MqttDeviceOut:
    return MqttDeviceOut(
        link=link,
        key=d.spec.key,
        profile=d.spec.profile,
        kind=d.kind,
        published=d.published,
        faults=sorted(d.faults),
    )


def _find(segments: SegmentSet, link: str, unit_id: int) -> LampModel:
    try:
        return segments.find(link, unit_id)
    except LookupError as exc:
        raise HTTPException(404, str(exc)) from None


def _lamp_out(link: str, lamp: LampModel) -> LampOut:
    m = lamp.measurements()
    return LampOut(
        link=link,
        unit_id=lamp.unit_id,
        level_cmd=lamp.level_cmd,
        on_cmd=lamp.on_cmd,
        power_w=round(float(m["power_w"]), 2),
        voltage_v=round(float(m["voltage_v"]), 1),
        temperature_c=round(lamp.temperature_c, 1),
        faults=sorted(lamp.faults),
    )

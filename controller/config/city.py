"""The city in the configuration: sites, links (gateways, buses, brokers, radios) and devices."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator

from controller.config.sections import _GROUP, _ID, _Strict
from drivers.options import LinkTiming, ModbusOptions, MqttBroker, SerialOptions

BAUD_RATES = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)
_LINK_KINDS = ("modbus_tcp", "modbus_rtu", "serial_line", "mqtt", "ble", "ble_scan")


class Site(_Strict):
    id: Annotated[str, Field(pattern=_ID)]
    name: str = ""
    timezone: str = "Asia/Ho_Chi_Minh"
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r} (an IANA name such as Asia/Ho_Chi_Minh)") from None
        return v


class _LinkBase(_Strict):
    """What every link has; its options come from the driver's own option model (drivers/options.py)."""

    id: Annotated[str, Field(pattern=_ID)]
    site: str


class ModbusTcpLink(_LinkBase, ModbusOptions):
    kind: Literal["modbus_tcp"]
    host: str
    port: int = Field(default=502, ge=1, le=65535)


class _SerialLinkBase(_LinkBase):
    port: str = Field(min_length=1, description="serial device path, e.g. /dev/ttyUSB0")
    baudrate: int = 9600
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1

    @field_validator("baudrate")
    @classmethod
    def _standard_baud(cls, v: int) -> int:
        if v not in BAUD_RATES:
            raise ValueError(f"baud rate {v} is not one of {BAUD_RATES}")
        return v


class ModbusRtuLink(_SerialLinkBase, ModbusOptions):
    kind: Literal["modbus_rtu"]


class SerialLineLinkConfig(_SerialLinkBase, SerialOptions):
    """A serial line of legacy lamp nodes speaking the ASCII line protocol."""

    kind: Literal["serial_line"]


class MqttLinkConfig(_LinkBase, MqttBroker):
    """A broker connection; devices on it are found by the `key` in their topics. `host` may be
    "embedded": the controller's own broker."""

    kind: Literal["mqtt"]


class BleLinkConfig(_LinkBase, LinkTiming):
    """A Bluetooth LE radio; devices on it are found by their MAC address (`key`).

    `ble` connects to each sensor and reads its GATT characteristics; `ble_scan` listens to the
    readings sensors broadcast in advertisements.
    """

    kind: Literal["ble", "ble_scan"]
    min_interval_s: float = Field(
        default=10.0, gt=0, description="ble_scan: at most one reading per device per"
    )
    adapter: str | None = Field(default=None, description='e.g. "hci0"; default: the system default')
    radio: Literal["system", "simulated"] = Field(
        default="system", description="simulated: sensors served by simulators.ble_radio in-process"
    )


LinkConfig = Annotated[
    ModbusTcpLink | ModbusRtuLink | SerialLineLinkConfig | MqttLinkConfig | BleLinkConfig,
    Field(discriminator="kind"),
]
_PROTOCOL_OF_LINK = {
    "modbus_tcp": "modbus",
    "modbus_rtu": "modbus",
    "serial_line": "line",
    "mqtt": "mqtt",
    "ble": "ble",
    "ble_scan": "ble",
}


class DeviceConfig(_Strict):
    id: Annotated[str, Field(pattern=_ID)]
    link: str
    unit_id: int | None = Field(default=None, ge=1, le=247, description="Modbus devices")
    key: Annotated[str | None, Field(pattern=r"^[^/+#]{1,64}$", description="MQTT devices")] = None
    profile: str
    group: Annotated[str, Field(pattern=_GROUP)] = "ungrouped"
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    rated_power_w: float | None = Field(default=None, gt=0, le=5000)
    poll_interval_s: float = Field(default=10.0, ge=0)


#: a range's ends, checked as each device's position is (an end off the globe gave a traceback of
#: one of its devices instead of the range's file and line)
LatLon = tuple[Annotated[float, Field(ge=-90, le=90)], Annotated[float, Field(ge=-180, le=180)]]


class DeviceRange(_Strict):
    """Many similar devices on one link: ids `<id_prefix><unit id:03>`, poles evenly spaced."""

    id_prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,56}$")]
    link: str
    unit_ids: tuple[int, int] = Field(description="first and last unit id, inclusive")
    profile: str
    group: Annotated[str, Field(pattern=_GROUP)] = "ungrouped"
    street: str = Field(default="", max_length=100, description="the street's name, drawn on the map")
    start: LatLon = Field(description="latitude, longitude of the first device")
    end: LatLon = Field(description="latitude, longitude of the last device")
    rated_power_w: float | None = Field(default=None, gt=0, le=5000)
    poll_interval_s: float = Field(default=10.0, ge=0)

    @field_validator("unit_ids")
    @classmethod
    def _ordered(cls, v: tuple[int, int]) -> tuple[int, int]:
        if not 1 <= v[0] <= v[1] <= 247:
            raise ValueError("unit_ids must be [first, last] with 1 <= first <= last <= 247")
        return v

    def expand(self) -> Iterator[dict[str, Any]]:
        first, last = self.unit_ids
        span = max(1, last - first)
        for unit in range(first, last + 1):
            f = (unit - first) / span
            yield {
                "id": f"{self.id_prefix}{unit:03d}",
                "link": self.link,
                "unit_id": unit,
                "profile": self.profile,
                "group": self.group,
                "latitude": round(self.start[0] + f * (self.end[0] - self.start[0]), 7),
                "longitude": round(self.start[1] + f * (self.end[1] - self.start[1]), 7),
                "rated_power_w": self.rated_power_w,
                "poll_interval_s": self.poll_interval_s,
            }


def device_address(device: DeviceConfig, link: LinkConfig) -> int | str:
    """How a device is addressed on its link: Modbus unit id, or the key in its MQTT topics."""
    if isinstance(link, MqttLinkConfig | BleLinkConfig):
        return device.key or device.id
    assert device.unit_id is not None  # checked by load_config
    return device.unit_id


def link_address(link: LinkConfig) -> str:
    """Where a link is reached, as the registry shows it: host:port, a serial port at its speed, a
    BLE adapter."""
    if isinstance(link, BleLinkConfig):
        return f"{link.kind}:{link.adapter or 'default'}"
    if isinstance(link, ModbusTcpLink | MqttLinkConfig):
        return f"{link.host}:{link.port}"
    return f"{link.port}@{link.baudrate}"

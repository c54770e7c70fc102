"""The small set of errors every driver raises."""

from __future__ import annotations


class DriverError(Exception):
    """Base of every error a driver raises; `device_id` is set where one device is concerned."""

    kind = "driver_error"

    def __init__(self, message: str, *, device_id: str | None = None) -> None:
        super().__init__(message)
        self.device_id = device_id


class LinkUnavailable(DriverError):
    """The link (gateway, bus, broker) cannot be reached; no request was sent."""

    kind = "unreachable"


class DeviceTimeout(DriverError):
    """A request was sent but the device did not answer in time."""

    kind = "timeout"


class ProtocolError(DriverError):
    """The device answered, but with a protocol exception or a malformed frame."""

    kind = "exception"

    def __init__(self, message: str, *, device_id: str | None = None, code: int | None = None) -> None:
        super().__init__(message, device_id=device_id)
        self.code = code


class DecodeError(DriverError):
    """A value could not be decoded, or decoded outside its physical range."""

    kind = "decode"


class ProfileError(ValueError):
    """A device profile file is invalid; the message names the file and key."""

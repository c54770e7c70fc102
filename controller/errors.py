"""What the controller refuses, as types: the API turns each into one HTTP answer (api/errors.py)."""

from __future__ import annotations


class ServiceError(Exception):
    """A request the controller cannot carry out; the message says why, for the person who asked."""


class NotReady(ServiceError):
    """The controller is still starting (or stopping)."""


class UnknownDevice(ServiceError, KeyError):
    """No device with that id is configured."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else "no such device"


class NoLamps(ServiceError):
    """A group that holds no lamps."""


class NotOwned(ServiceError):
    """Another controller instance serves the device's link ([cluster]): ask that one."""


class NotCommandable(ServiceError):
    """The device's link carries no commands (an MQTT sensor, a BLE sensor)."""


class AlertsDisabled(ServiceError):
    """Fault detection is off (`[alerts] enabled = false`)."""


class AirDisabled(ServiceError):
    """The air quality index is off (`[air] enabled = false`)."""

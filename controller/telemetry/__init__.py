"""Telemetry history: the store interface, the embedded SQLite store and the InfluxDB store."""

from controller.config import TelemetrySettings
from controller.telemetry.influx import InfluxStore
from controller.telemetry.sqlite import SqliteTelemetryStore
from controller.telemetry.store import NON_NUMERIC, Aggregate, TelemetryPoint, TelemetryStore, known_fields

__all__ = [
    "NON_NUMERIC",
    "Aggregate",
    "InfluxStore",
    "SqliteTelemetryStore",
    "TelemetryPoint",
    "TelemetryStore",
    "create_store",
    "known_fields",
]


def create_store(settings: TelemetrySettings) -> TelemetryStore:
    """The store `[telemetry] backend` names."""
    if settings.backend == "influxdb":
        return InfluxStore(settings.influxdb)
    return SqliteTelemetryStore(settings.url)

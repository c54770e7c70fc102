"""Telemetry history: the store interface, the embedded SQLite store and the InfluxDB store."""

from controller.config import TelemetrySettings
from controller.telemetry.sqlite import SqliteTelemetryStore
from controller.telemetry.store import NON_NUMERIC, Aggregate, TelemetryPoint, TelemetryStore, known_fields

__all__ = [
    "NON_NUMERIC",
    "Aggregate",
    "SqliteTelemetryStore",
    "TelemetryPoint",
    "TelemetryStore",
    "create_store",
    "known_fields",
]


def create_store(settings: TelemetrySettings) -> TelemetryStore:
    """The store `[telemetry] backend` names."""
    if settings.backend == "influxdb":
        # imported here: influxdb-client costs every start ~0.1 s, and the default store is SQLite
        from controller.telemetry.influx import InfluxStore

        return InfluxStore(settings.influxdb)
    return SqliteTelemetryStore(settings.url)

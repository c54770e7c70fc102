"""Prometheus metrics of one controller instance (its own registry, so tests can run several)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class ControllerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.polls = Counter(
            "lamplighter_polls_total",
            "Device polls by link and result",
            ["link", "result"],
            registry=r,
        )
        self.poll_seconds = Histogram(
            "lamplighter_poll_duration_seconds",
            "Time to poll one device",
            ["link"],
            registry=r,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.readings_stored = Counter(
            "lamplighter_readings_stored_total",
            "Readings written to the telemetry store",
            registry=r,
        )
        self.store_errors = Counter(
            "lamplighter_store_errors_total", "Failed telemetry batch writes (retried)", registry=r
        )
        self.decode_rejections = Counter(
            "lamplighter_decode_rejections_total",
            "Register values rejected while decoding",
            registry=r,
        )
        self.queue_depth = Gauge(
            "lamplighter_reading_queue_depth", "Readings waiting to be ingested", registry=r
        )
        self.commands = Counter(
            "lamplighter_commands_total",
            "Commands by action and outcome",
            ["action", "status"],
            registry=r,
        )
        self.devices = Gauge("lamplighter_devices", "Devices by state", ["state"], registry=r)
        self.link_up = Gauge("lamplighter_link_up", "1 while the link is connected", ["link"], registry=r)
        self.task_restarts = Gauge(
            "lamplighter_task_restarts", "Restarts of supervised tasks", ["task"], registry=r
        )
        self.alerts = Counter(
            "lamplighter_alerts_total", "Alert changes by kind and change", ["kind", "change"], registry=r
        )
        self.alerts_open = Gauge("lamplighter_alerts_open", "Alerts not yet cleared", registry=r)
        self.alert_deliveries = Counter(
            "lamplighter_alert_deliveries_total",
            "Alert events by channel and outcome (sent, failed, dead_letter, dropped)",
            ["channel", "outcome"],
            registry=r,
        )
        self.api_refused = Counter(
            "lamplighter_api_refused_total",
            "Changing requests refused before anyone was identified (not in the audit log), by status",
            ["status"],
            registry=r,
        )
        self.telemetry_points = Gauge(
            "lamplighter_telemetry_points",
            "InfluxDB store: points written, refused, waiting in the buffer, dropped past its cap",
            ["state"],
            registry=r,
        )
        self.telemetry_buffer_bytes = Gauge(
            "lamplighter_telemetry_buffer_bytes", "InfluxDB store: size of the on-disk buffer", registry=r
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)

"""Prometheus metrics of one controller instance (its own registry, so tests can run several).

Conventions (checked by `promtool check metrics` in tests/controller/test_metrics.py): counters end
in `_total` and only grow; a gauge is one current level; one meaning per metric. Figures kept by
other parts (task restarts, the InfluxDB store's points) are read when Prometheus scrapes, by
`StateCollector`, as counters or gauges as they are. No `_created` series: they doubled every
counter and nothing reads them.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter as Tally
from collections.abc import Callable, Iterator, Mapping

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from controller.telemetry.store import TelemetryFigures

disable_created_metrics()  # type: ignore[no-untyped-call]  # prometheus_client leaves it unannotated


class StateCollector(Collector):
    """Reads, at each scrape, what other parts count: supervised task restarts and the store's points."""

    def __init__(
        self,
        restarts: Callable[[], Mapping[str, int]],
        telemetry: Callable[[], TelemetryFigures | None],
    ) -> None:
        self.restarts = restarts
        self.telemetry = telemetry

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        restarted = CounterMetricFamily(
            "lamplighter_task_restarts", "Restarts of supervised tasks after a crash", labels=["task"]
        )
        for task, n in sorted(self.restarts().items()):
            restarted.add_metric([task], n)
        yield restarted
        figures = self.telemetry()
        if figures is None:
            return
        for name, text, value in (
            ("written", "InfluxDB store: points written", figures.written_points),
            ("rejected", "InfluxDB store: points the server refused", figures.rejected_points),
            (
                "dropped",
                "InfluxDB store: buffered points dropped past the buffer's cap",
                figures.dropped_points,
            ),
        ):
            yield CounterMetricFamily(f"lamplighter_telemetry_points_{name}", text, value=value)
        yield GaugeMetricFamily(
            "lamplighter_telemetry_points_buffered",
            "InfluxDB store: points waiting in the on-disk buffer",
            value=figures.buffered_points,
        )
        yield GaugeMetricFamily(
            "lamplighter_telemetry_buffer_bytes",
            "InfluxDB store: size of the on-disk buffer",
            value=figures.buffer_bytes,
        )


#: upper bounds of lamplighter_poll_duration_seconds' buckets
POLL_BOUNDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


#: each bucket's `le` label, as prometheus_client's Histogram writes it ("0.001", "1.0", "+Inf")
_BUCKET_LABELS = [floatToGoString(b) for b in (*POLL_BOUNDS, float("inf"))]  # type: ignore[no-untyped-call]


class LinkPolls:
    """One link's polls, counted in plain numbers: every poll of every device passes here, and
    prometheus_client's Counter and Histogram (a lock and a Python bucket search each) were ~4 % of
    the controller's CPU per reading (py-spy, bench_polling). Read by `PollCollector` at a scrape."""

    __slots__ = ("buckets", "failed", "ok", "seconds")

    def __init__(self) -> None:
        self.ok = 0
        self.failed: Tally[str] = Tally()  # by the driver error's kind
        self.buckets = [0] * (len(POLL_BOUNDS) + 1)  # not cumulative; the last is past every bound
        self.seconds = 0.0

    def took(self, seconds: float) -> None:
        self.buckets[bisect_left(POLL_BOUNDS, seconds)] += 1
        self.seconds += seconds


class PollCollector(Collector):
    """`lamplighter_polls_total{link,result}` and `lamplighter_poll_duration_seconds{link}`, from
    the links' `LinkPolls` (kept after a link is removed, as prometheus_client's labels were)."""

    def __init__(self) -> None:
        self.links: dict[str, LinkPolls] = {}

    def link(self, link_id: str) -> LinkPolls:
        return self.links.setdefault(link_id, LinkPolls())

    def collect(self) -> Iterator[CounterMetricFamily | HistogramMetricFamily]:
        polls = CounterMetricFamily(
            "lamplighter_polls", "Device polls by link and result", labels=["link", "result"]
        )
        durations = HistogramMetricFamily(
            "lamplighter_poll_duration_seconds", "Time to poll one device", labels=["link"]
        )
        for link_id, figures in sorted(self.links.items()):
            polls.add_metric([link_id, "ok"], figures.ok)
            for kind, n in sorted(figures.failed.items()):
                polls.add_metric([link_id, kind], n)
            cumulative, buckets = 0, []
            for le, n in zip(_BUCKET_LABELS, figures.buckets, strict=True):
                cumulative += n
                buckets.append((le, cumulative))
            durations.add_metric([link_id], buckets, figures.seconds)
        yield polls
        yield durations


class ControllerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.polls = PollCollector()
        r.register(self.polls)
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
        self.alerts = Counter(
            "lamplighter_alerts_total", "Alert changes by kind and change", ["kind", "change"], registry=r
        )
        self.alerts_open = Gauge("lamplighter_alerts_open", "Alerts not yet cleared", registry=r)
        self.shard_leases = Gauge(
            "lamplighter_shard_leases",
            "Shards of links this instance holds a lease on ([cluster])",
            registry=r,
        )
        self.shard_watching = Gauge(
            "lamplighter_shard_watching",
            "1 when the links this instance serves are watched and scheduled; 0 while they are only "
            "polled, their history, alerts and schedules waiting for the database",
            registry=r,
        )
        self.shard_leases_lost = Counter(
            "lamplighter_shard_leases_lost",
            "Leases that ran out or were taken over while held: their links stopped being commanded",
            registry=r,
        )
        self.alert_deliveries = Counter(
            "lamplighter_alert_deliveries_total",
            "Alert events by channel and outcome (sent, failed, dead_letter, dropped)",
            ["channel", "outcome"],
            registry=r,
        )
        self.loop_lag = Histogram(
            "lamplighter_event_loop_lag_seconds",
            "How late the event loop ran a timer due every 50 ms (controller/loop_watch.py)",
            registry=r,
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.gc_pause = Histogram(
            "lamplighter_gc_pause_seconds",
            "Garbage collections by generation: the event loop waits for each",
            ["generation"],
            registry=r,
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )
        self.api_refused = Counter(
            "lamplighter_api_refused_total",
            "Changing requests refused before anyone was identified (not in the audit log), by status",
            ["status"],
            registry=r,
        )

    def watch(self, collector: StateCollector) -> None:
        self.registry.register(collector)

    def render(self) -> bytes:
        return generate_latest(self.registry)

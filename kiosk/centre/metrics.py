"""Prometheus metrics: points by status (read from the store when scraped), reports, latency."""

from __future__ import annotations

from typing import Any, Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily


class PointsCollector:
    """Counts points by status at scrape time, so the figure is never stale."""

    def __init__(self, summary: Callable[[], tuple[dict[str, int], int]]) -> None:
        self.summary = summary

    def collect(self) -> Iterator[Any]:
        """The gauges of one scrape."""
        counts, alerting = self.summary()
        g = GaugeMetricFamily("kiosk_centre_points", "Points by status (never, online, late, offline)", labels=["status"])
        for status, n in counts.items():
            g.add_metric([status], n)
        yield g
        yield GaugeMetricFamily("kiosk_centre_points_alerting", "Offline points raising an alert", value=alerting)


class Metrics:
    """One registry per app, so several centres (tests) live in one process."""

    def __init__(self, summary: Callable[[], tuple[dict[str, int], int]]) -> None:
        self.registry = CollectorRegistry()
        self.reports = Counter(
            "kiosk_centre_reports_received", "Reports received, by outcome (stored or duplicate)",
            ["outcome"], registry=self.registry,
        )
        self.refused = Counter(
            "kiosk_centre_batches_refused", "Heartbeat batches refused, by reason", ["reason"], registry=self.registry
        )
        self.latency = Histogram(
            "kiosk_centre_request_seconds", "Time to answer a request, by endpoint", ["endpoint"],
            registry=self.registry, buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.registry.register(PointsCollector(summary))

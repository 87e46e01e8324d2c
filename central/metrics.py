"""Prometheus metrics of one central app, in its own registry (never the global one)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]


class Metrics:
    """The counters central keeps; one instance per app, so tests never share numbers."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.refusals = Counter(
            "schulwart_central_refusals_total",
            "Requests refused, by route and reason.",
            ["route", "reason"],
            registry=self.registry,
        )
        self.reports = Counter(
            "schulwart_central_reports_total",
            "Accepted report and state envelopes, by payload kind and outcome.",
            ["kind", "outcome"],
            registry=self.registry,
        )
        self.events_stored = Counter(
            "schulwart_central_events_stored_total", "Events newly stored.", registry=self.registry
        )
        self.enrollments = Counter("schulwart_central_enrollments_total", "Agents enrolled.", registry=self.registry)
        self.conflicts = Counter(
            "schulwart_central_history_conflicts_total",
            "Batches refused because a held sequence number came with other content.",
            registry=self.registry,
        )
        self.ingest_seconds = Histogram(
            "schulwart_central_ingest_seconds",
            "Time to verify and store one report envelope.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
            registry=self.registry,
        )

    def render(self) -> bytes:
        """The Prometheus text exposition."""
        return generate_latest(self.registry)

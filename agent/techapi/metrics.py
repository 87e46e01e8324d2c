"""The agent's /metrics: read from the running agent at scrape time, on a registry made for that scrape.

Imported by the /metrics route at its first request, not at start: prometheus_client and what it
pulls in (wsgiref, http.server) cost about 1.2 MiB, and most agents are never scraped.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from agent.incidents.engine import IncidentEngine
from agent.live import Counters
from agent.store import Store
from agent.store.outbox import Outbox


class AgentCollector(Collector):
    """Outbox, incidents and devices as gauges, computed when Prometheus asks.

    Reads the agent's own ``outbox``, ``engine`` and ``store`` and its live ``counters``.
    """

    def __init__(self, *, outbox: Outbox, engine: IncidentEngine, store: Store, counters: Counters) -> None:
        self._outbox = outbox
        self._engine = engine
        self._store = store
        self._counters = counters

    def collect(self) -> Iterator[Metric]:
        """One gauge per number the status command shows."""
        stats = self._outbox.stats()
        for name, doc, value in (
            ("schulwart_agent_outbox_last_seq", "Highest sequence number handed out.", stats.last_seq),
            ("schulwart_agent_outbox_acked_seq", "Highest sequence central acknowledged.", stats.acked_seq),
            ("schulwart_agent_outbox_depth", "Events not yet acknowledged by central.", stats.depth),
            (
                "schulwart_agent_outbox_oldest_unsent_age_seconds",
                "Age of the oldest unacknowledged event.",
                stats.oldest_unsent_age_s or 0.0,
            ),
            ("schulwart_agent_open_incidents", "Open incidents.", len(self._engine.open_incidents())),
            (
                "schulwart_agent_devices",
                "Devices in the inventory.",
                self._store.query("SELECT count(*) FROM inventory")[0][0],
            ),
            ("schulwart_agent_dropped_events", "Observations lost to a full disk.", self._counters.dropped_events),
        ):
            yield GaugeMetricFamily(name, doc, value=float(value))
        failures = CounterMetricFamily(
            "schulwart_agent_auth_failures", "Refused technician API requests.", labels=["reason"]
        )
        for reason, count in sorted(self._counters.auth_failures.items()):
            failures.add_metric([reason], float(count))
        yield failures


def exposition(*, outbox: Outbox, engine: IncidentEngine, store: Store, counters: Counters) -> tuple[bytes, str]:
    """The Prometheus text exposition of the agent's gauges and counters, and its Content-Type."""
    registry = CollectorRegistry()
    registry.register(AgentCollector(outbox=outbox, engine=engine, store=store, counters=counters))
    return generate_latest(registry), CONTENT_TYPE_LATEST

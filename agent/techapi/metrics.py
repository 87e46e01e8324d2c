"""The agent's /metrics: read from the running agent at scrape time, on its own registry."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily, Metric
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


def agent_registry(
    *, outbox: Outbox, engine: IncidentEngine, store: Store, counters: Counters
) -> tuple[CollectorRegistry, Counter]:
    """A registry with the agent's gauges and the technician-auth failure counter (labelled by reason)."""
    registry = CollectorRegistry()
    registry.register(AgentCollector(outbox=outbox, engine=engine, store=store, counters=counters))
    failures = Counter(
        "schulwart_agent_auth_failures", "Refused technician API requests.", ["reason"], registry=registry
    )
    return registry, failures

"""The agent's /metrics: read from the running agent at scrape time, on its own registry."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from agent.runner import Agent


class AgentCollector(Collector):
    """Outbox, incidents and devices as gauges, computed when Prometheus asks."""

    def __init__(self, agent: Agent) -> None:
        self._agent = agent

    def collect(self) -> Iterator[Metric]:
        """One gauge per number the status command shows."""
        running = self._agent
        stats = running.outbox.stats()
        for name, doc, value in (
            ("schulwart_agent_outbox_last_seq", "Highest sequence number handed out.", stats.last_seq),
            ("schulwart_agent_outbox_acked_seq", "Highest sequence central acknowledged.", stats.acked_seq),
            ("schulwart_agent_outbox_depth", "Events not yet acknowledged by central.", stats.depth),
            (
                "schulwart_agent_outbox_oldest_unsent_age_seconds",
                "Age of the oldest unacknowledged event.",
                stats.oldest_unsent_age_s or 0.0,
            ),
            ("schulwart_agent_open_incidents", "Open incidents.", len(running.engine.open_incidents())),
            (
                "schulwart_agent_devices",
                "Devices in the inventory.",
                running.store.query("SELECT count(*) FROM inventory")[0][0],
            ),
            ("schulwart_agent_dropped_events", "Observations lost to a full disk.", running.counters.dropped_events),
        ):
            yield GaugeMetricFamily(name, doc, value=float(value))


def agent_registry(agent: Agent) -> tuple[CollectorRegistry, Counter]:
    """A registry with the agent's gauges and the technician-auth failure counter."""
    registry = CollectorRegistry()
    registry.register(AgentCollector(agent))
    failures = Counter(
        "schulwart_agent_auth_failures", "Refused technician API requests.", ["reason"], registry=registry
    )
    return registry, failures

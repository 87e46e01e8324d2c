"""The WLAN monitor: probes of APs, gateway, DNS, internet and central, plus a WLAN controller.

One signal per key and round; when a probe and the controller both speak about the same AP
(matched by MAC), the AP is down if either says so. The incident engine applies hysteresis.

A signal's subject is the id in its key (an AP's MAC, else the target's name), so that what
leaves the school names one thing by one pseudonym; the readable name is in the title and in
``details["name"]`` for the technician on site.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

import aiohttp

from agent.monitors.interface import MonitorReport, Severity, Signal
from agent.monitors.wlan.probes import ProbeResult, ProbeWindow, http_probe, tcp_probe
from base.agentconfig.wlan import ProbeTarget, WlanConfig

if TYPE_CHECKING:
    from agent.monitors.wlan.unifi import ApStatus, WlanController

log = logging.getLogger(__name__)

# What a failed probe of each kind of target means, and how bad it is.
_KIND_KEYS: dict[str, tuple[str, Severity, str]] = {
    "ap": ("ap-down", "warning", "Access point {name} not answering"),
    "gateway": ("gateway-unreachable", "critical", "Gateway {name} unreachable"),
    "dns": ("dns-unreachable", "critical", "DNS resolver {name} unreachable"),
    "internet": ("internet-unreachable", "critical", "Internet unreachable ({name})"),
    "central": ("central-unreachable", "warning", "Central service unreachable ({name})"),
    "other": ("probe-failed", "warning", "{name} not answering"),
}


class WlanMonitor:
    """Probes every target and asks the controller once per round."""

    name = "wlan"

    def __init__(self, config: WlanConfig, *, school: str = "school") -> None:
        self.interval_s = config.interval
        self._config = config
        self._targets = config.targets
        self._school = school
        self._windows = {t.name: ProbeWindow(config.window) for t in self._targets}
        self._controller: WlanController | None = None
        if config.controller is not None:
            # Loaded only here: a school without a controller never imports the adapter.
            from agent.monitors.wlan.unifi import build_controller

            self._controller = build_controller(config.controller)
        self._session: aiohttp.ClientSession | None = None
        self._controller_error: str | None = None
        self.rejected_replies = 0  # controller replies refused at the door (unusable JSON), counted

    async def start(self) -> None:
        """Open the HTTP session the probes share."""
        self._session = aiohttp.ClientSession()

    async def stop(self) -> None:
        """Close sessions."""
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._controller is not None:
            await self._controller.close()

    async def _probe(self, target: ProbeTarget) -> ProbeResult:
        timeout = self._config.probe_timeout
        if target.url:
            assert self._session is not None
            return await http_probe(self._session, target.url, timeout)
        assert target.host is not None and target.port is not None
        return await tcp_probe(target.host, target.port, timeout)

    async def _ask_controller(self) -> tuple[list[ApStatus] | None, str | None]:
        if self._controller is None:
            return None, None
        from agent.monitors.wlan.unifi import ControllerError  # loaded with the controller, in __init__

        try:
            return await self._controller.fetch_aps(), None
        except ControllerError as exc:
            if exc.reason == "not-json":
                self.rejected_replies += 1
            return None, f"{exc.reason}: {exc.message}"

    async def collect(self, now: datetime) -> MonitorReport:
        """One round: all probes and the controller concurrently."""
        if self._session is None:
            await self.start()
        targets = self._targets
        results, (aps, ctrl_error) = await asyncio.gather(
            asyncio.gather(*(self._probe(t) for t in targets)), self._ask_controller()
        )
        for target, result in zip(targets, results, strict=True):
            self._windows[target.name].add(result)
        merged: dict[str, Signal] = {}

        def put(signal: Signal) -> None:
            old = merged.get(signal.key)
            if old is None or (signal.bad and not old.bad):
                merged[signal.key] = signal

        for target in targets:
            for signal in self._probe_signals(target, now):
                put(signal)
        if self._controller is not None:
            put(self._controller_signal(ctrl_error, now))
        for ap in aps or []:
            for signal in self._ap_signals(ap, now):
                put(signal)
        return MonitorReport(section="wlan", snapshot=self._snapshot(aps, ctrl_error), signals=list(merged.values()))

    def _probe_signals(self, target: ProbeTarget, now: datetime) -> list[Signal]:
        window = self._windows[target.name]
        last = window.last
        prefix, severity, title = _KIND_KEYS[target.kind]
        failed = last is not None and not last.ok
        details = {"target": target.name, "name": target.name, **window.summary()}
        signals = [
            Signal(
                key=f"{prefix}:{target.key_id}",
                bad=failed,
                category="wlan",
                severity=severity,
                title=title.format(name=target.name) + (f" ({last.error})" if failed and last else ""),
                subject=target.key_id,
                at=now,
                details=details,
                code=f"wlan.{target.kind}_unreachable",
                params={"name": target.name, "error": last.error if failed and last else None},
            )
        ]
        median, _worst = window.latency_ms()
        degraded = not failed and len(window) >= 3 and (
            window.loss_pct() >= self._config.loss_degraded_pct
            or (median is not None and median > self._config.slow_ms)
        )
        signals.append(
            Signal(
                key=f"{prefix.split('-')[0]}-degraded:{target.key_id}",
                bad=degraded,
                category="wlan",
                severity="warning",
                title=f"{target.name}: {window.loss_pct():.0f}% loss, median {median or 0:.0f} ms",
                subject=target.key_id,
                at=now,
                details=details,
                code="wlan.degraded",
                params={"name": target.name, "loss_pct": round(window.loss_pct()), "median_ms": round(median or 0)},
            )
        )
        return signals

    def _controller_signal(self, error: str | None, now: datetime) -> Signal:
        assert self._controller is not None
        name = self._controller.name
        if error != self._controller_error:
            if error:
                log.warning("controller unreachable school=%s controller=%s error=%s", self._school, name, error)
            else:
                log.info("controller answers school=%s controller=%s", self._school, name)
            self._controller_error = error
        return Signal(
            key=f"controller-unreachable:{name}",
            bad=error is not None,
            category="wlan",
            severity="warning",
            # Only the reason in the title: the detail names the controller's URL, and titles leave the school.
            title=f"WLAN controller {name} unreachable ({error.split(':', 1)[0]})" if error
            else f"WLAN controller {name} answers",
            subject=name,
            at=now,
            details={"name": name},
            code="wlan.controller_unreachable",
            params={"name": name, "error": error.split(":", 1)[0] if error else None},
        )

    def _ap_signals(self, ap: ApStatus, now: datetime) -> list[Signal]:
        c = self._config
        down = not ap.connected
        too_many = ap.num_sta is not None and ap.num_sta > c.max_clients_per_ap
        unhappy = ap.satisfaction is not None and 0 <= ap.satisfaction < c.min_satisfaction
        degraded = not down and (too_many or unhappy)
        details = {
            "ap": ap.id, "name": ap.name, "state": ap.state_name, "num_sta": ap.num_sta,
            "satisfaction": ap.satisfaction,
        }
        reasons = []
        if too_many:
            reasons.append(f"{ap.num_sta} clients")
        if unhappy:
            reasons.append(f"satisfaction {ap.satisfaction}%")
        return [
            Signal(
                key=f"ap-down:{ap.id}",
                bad=down,
                category="wlan",
                severity="warning",
                title=f"Access point {ap.name} down (controller: {ap.state_name})" if down
                else f"Access point {ap.name} connected",
                subject=ap.id,
                at=now,
                details=details,
                code="wlan.ap_down",
                params={"name": ap.name, "state": ap.state_name},
            ),
            Signal(
                key=f"ap-degraded:{ap.id}",
                bad=degraded,
                category="wlan",
                severity="warning",
                title=f"Access point {ap.name} degraded ({', '.join(reasons)})" if degraded
                else f"Access point {ap.name} healthy",
                subject=ap.id,
                at=now,
                details=details,
                code="wlan.ap_degraded",
                params={
                    "name": ap.name,
                    "clients": ap.num_sta if too_many else None,
                    "satisfaction": ap.satisfaction if unhappy else None,
                },
            ),
        ]

    def _snapshot(self, aps: list[ApStatus] | None, ctrl_error: str | None) -> dict[str, Any]:
        snapshot: dict[str, Any] = {
            "probes": {
                t.name: {"id": t.key_id, "kind": t.kind, **self._windows[t.name].summary()} for t in self._targets
            },
        }
        if self._controller is not None:
            snapshot["controller"] = {
                "name": self._controller.name,
                "ok": ctrl_error is None,
                "error": ctrl_error,
                "skipped": dict(self._controller.skipped),
                "rejected_replies": self.rejected_replies,
            }
        if aps is not None:
            snapshot["aps"] = [
                {
                    "id": ap.id, "name": ap.name, "model": ap.model, "type": ap.type, "state": ap.state_name,
                    "num_sta": ap.num_sta, "satisfaction": ap.satisfaction, "uptime_s": ap.uptime_s,
                    "radios": [
                        {"band": r.band, "channel": r.channel, "num_sta": r.num_sta,
                         "satisfaction": r.satisfaction, "cu_total": r.channel_utilisation}
                        for r in ap.radios
                    ],
                }
                for ap in aps
            ]
            # The controller's client count is the best "how many tablets are on the WLAN" signal.
            snapshot["clients_total"] = sum(ap.num_sta or 0 for ap in aps)
        return snapshot

"""Run discovery alone and print what it finds as JSON lines: ``python -m agent.monitors.discovery --interface IP``.

A diagnostic for technicians (what does this server see on mDNS?) and the harness the flood test
and the benchmark run in a separate process, so that its memory is measured on its own.
Each line is one event: ``{"event": "seen", ...}`` when a device enters the inventory, and
``{"event": "status", ...}`` every interval with counters and the process's RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import time
from datetime import UTC, datetime
from typing import Any

import psutil

from agent.monitors.discovery.config import parse_discovery
from agent.monitors.discovery.monitor import DiscoveryMonitor


def _emit(record: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(record, default=str) + "\n")
    sys.stdout.flush()


async def _run(args: argparse.Namespace) -> None:
    config = parse_discovery({"discovery": {
        "interfaces": args.interface, "interval": args.interval, "max_devices": args.max_devices,
        "missing_after": "1h",
    }})
    monitor = DiscoveryMonitor(config, school=args.school)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    process = psutil.Process()
    known: set[str] = set()
    await monitor.start()
    _emit({"event": "ready", "t": time.time(), "rss_mib": process.memory_info().rss / 2**20})
    try:
        while not stop.is_set():
            for device in monitor.tracker.devices():
                if device.id not in known:
                    known.add(device.id)
                    if args.seen:
                        _emit({"event": "seen", "t": time.time(), "id": device.id, "class": device.device_class,
                               "name": device.name})
            report = await monitor.collect(datetime.now(UTC))
            snap = report.snapshot
            _emit({"event": "status", "t": time.time(), "rss_mib": round(process.memory_info().rss / 2**20, 2),
                   "devices": snap["devices"], "by_class": snap["by_class"], "mdns": snap["mdns"],
                   "inventory": snap["inventory"]})
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(args.interval):
                    await stop.wait()
    finally:
        await monitor.stop()


def main() -> None:
    """Parse the arguments and run until SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m agent.monitors.discovery", description=__doc__)
    parser.add_argument("--interface", action="append", default=[], help="IPv4 address to listen on (repeat)")
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--max-devices", type=int, default=2000)
    parser.add_argument("--school", default="diagnostic")
    parser.add_argument("--seen", action="store_true", help="print a line per newly seen device")
    asyncio.run(_run(parser.parse_args()))


if __name__ == "__main__":
    main()

"""Coverage-guided fuzzing (atheris, libFuzzer) of envelope verification, the payload parsers, mDNS and meter replies.

Not part of the test suite: run it by hand and record the figures (docs/RELIABILITY.md).

    .venv/bin/pip install -e '.[fuzz]'
    .venv/bin/python tests/fuzz/run_atheris.py --runs 350000      # every target, one process each

A target may raise only the errors its caller handles (the project's error tree, and the
meter's and controller's own errors); anything else is a crash, and libFuzzer stops with the
input that caused it. Each target starts from a corpus of real inputs, so mutation begins
past the first refusal.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TARGETS = ("envelope", "payloads", "mdns", "meters")


def _seeds(target: str) -> list[bytes]:
    from datetime import UTC, datetime

    from protocol.envelope import sign
    from protocol.keys import generate_private_key
    from protocol.schema import REPORT_TYPE, build_report, build_state, make_event

    now = datetime(2026, 11, 30, tzinfo=UTC)
    opened = {"id": "i1", "key": "k", "category": "wlan", "severity": "warning", "title": "AP down", "subject": None}
    events = [make_event(1, now, "health.snapshot", {"host": {"load": 1.5}}),
              make_event(2, now, "incident.opened", opened)]  # fmt: skip
    report = build_report("a-1", "s1", events, now)
    state = build_state("a-1", "s1", 2, now, [], {"host": {}}, [])
    if target == "envelope":
        return [sign(report, REPORT_TYPE, _KEY[0]), sign(state, REPORT_TYPE, generate_private_key())]
    if target == "payloads":
        return [report, state]
    if target == "mdns":
        from zeroconf import DNSOutgoing, DNSPointer, DNSService, DNSText, const

        out = DNSOutgoing(const._FLAGS_QR_RESPONSE | const._FLAGS_AA)
        name = "Lenas iPad._airplay._tcp.local."
        out.add_answer_at_time(DNSPointer("_airplay._tcp.local.", const._TYPE_PTR, const._CLASS_IN, 4500, name), 0)
        out.add_answer_at_time(DNSService(name, const._TYPE_SRV, const._CLASS_IN, 120, 0, 0, 7000, "ipad.local."), 0)
        out.add_answer_at_time(DNSText(name, const._TYPE_TXT, const._CLASS_IN, 4500, b"\x0cmodel=iPad9,1\x05ft=0x"), 0)
        return out.packets()
    replies = [
        {"id": 0, "apower": 42.5, "aenergy": {"total": 1234.5}, "output": True, "temperature": {"tC": 31.2}},
        {"switch:0": {"apower": 12.0, "voltage": 230.1, "output": True, "aenergy": {"total": 5.0}}},
        {"meters": [{"power": 5.5, "total": 100}], "relays": [{"ison": True}]},
        {"StatusSNS": {"ENERGY": {"Power": 120, "Total": 3.2, "Voltage": 229}}},
        {"data": [{"id": "ap1", "type": "uap", "name": "AP Flur", "state": 1, "num_sta": 4, "mac": "aa:bb:cc:0:0:1"}]},
    ]
    return [json.dumps(r).encode() for r in replies]


_KEY: list[Any] = []  # the envelope target's signing key, made inside the instrumented block


def _envelope_target() -> Any:
    from protocol.envelope import verify
    from protocol.errors import SchulwartError
    from protocol.keys import keyid
    from protocol.schema import REPORT_TYPE, STATE_TYPE

    keys = {keyid(_KEY[0].public_key()): _KEY[0].public_key()}

    def one(data: bytes) -> None:
        try:
            verify(data, keys, [REPORT_TYPE, STATE_TYPE])
        except SchulwartError:
            pass

    return one


def _payloads_target() -> Any:
    from protocol.errors import SchulwartError
    from protocol.schema import parse_bundle, parse_config_payload, parse_report, parse_state

    def one(data: bytes) -> None:
        for parse in (parse_report, parse_state, parse_config_payload, parse_bundle):
            try:
                parse(data)
            except SchulwartError:
                pass

    return one


def _mdns_target() -> Any:
    from zeroconf import DNSIncoming, DNSPointer, DNSService, DNSText, ServiceInfo

    from agent.monitors.discovery.observation import Observation, identify
    from agent.monitors.discovery.sanitize import MAX_HOST_CHARS, clean_properties, clean_text, instance_label

    def one(data: bytes) -> None:
        packet = DNSIncoming(data)  # the library's reader: a bad packet is marked invalid, never raised
        if not packet.valid:
            return
        host, props, label, stype = "", {}, "", ""
        for record in packet.answers():
            if isinstance(record, DNSPointer):
                stype, label = record.name, instance_label(record.alias, record.name)
            elif isinstance(record, DNSService):
                host = clean_text(record.server, MAX_HOST_CHARS).lower()
            elif isinstance(record, DNSText):
                # zeroconf decodes a TXT answer's bytes into properties the same way
                info = ServiceInfo("_x._tcp.local.", "x._x._tcp.local.", properties=record.text)
                props = clean_properties(info.properties)
        identify(Observation(stype, label, label, host, (), 0, props))

    return one


def _meters_target() -> Any:
    from agent.monitors.cabinets import meters
    from agent.monitors.wlan.unifi import ControllerError, parse_devices
    from protocol.encoding import loads_strict
    from protocol.errors import SchulwartError

    spec = meters.MeterSpec(kind="http-json", url="http://10.0.0.1/", power_path="data.0.power",
                            energy_path="data.0.energy", switch_path="data.0.on")  # fmt: skip
    parsers = (
        meters.parse_shelly_gen2,
        meters.parse_shelly_gen2_status,
        meters.parse_shelly_gen1,
        meters.parse_tasmota,
        lambda d: meters.parse_generic(d, spec),
        meters.describe_shelly,
        meters.login_refusal,
        parse_devices,
    )

    def one(data: bytes) -> None:
        try:  # the readers' own call: fetch_json in agent/monitors/wlan/probes.py
            doc = loads_strict(data, max_depth=64, allow_duplicate_keys=True)
        except SchulwartError:
            return
        for parse in parsers:
            try:
                parse(doc)
            except (meters.MeterError, ControllerError):
                pass

    return one


def fuzz(target: str, runs: int) -> None:
    """One target in this process, under libFuzzer; exits when done (libFuzzer's way)."""
    import atheris

    with atheris.instrument_imports(include=["protocol", "agent", "zeroconf"]):
        from protocol.keys import generate_private_key

        _KEY.append(generate_private_key())
        one = {"envelope": _envelope_target, "payloads": _payloads_target, "mdns": _mdns_target,
               "meters": _meters_target}[target]()  # fmt: skip
    corpus = Path(tempfile.mkdtemp(prefix=f"fuzz-{target}-"))
    for i, seed in enumerate(_seeds(target)):
        (corpus / f"seed{i}").write_bytes(seed)
    atheris.Setup([sys.argv[0], f"-runs={runs}", "-max_len=4096", "-print_final_stats=1", str(corpus)], one)
    atheris.Fuzz()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=350_000, help="cases per target")
    parser.add_argument("--target", choices=TARGETS, help="one target in this process (used by the driver)")
    args = parser.parse_args()
    if args.target:
        fuzz(args.target, args.runs)
        return 0
    total = 0
    print(f"{'target':<10} {'cases':>10} {'seconds':>8} {'coverage':>9}  result")
    for target in TARGETS:
        started = time.monotonic()
        done = subprocess.run([sys.executable, __file__, "--target", target, "--runs", str(args.runs)],
                              capture_output=True, text=True, check=False)  # fmt: skip
        runs = re.findall(r"stat::number_of_executed_units: (\d+)", done.stderr)
        cov = re.findall(r"cov: (\d+)", done.stderr)
        cases = int(runs[-1]) if runs else 0
        total += cases
        result = "ok" if done.returncode == 0 else f"CRASH (exit {done.returncode})"
        print(f"{target:<10} {cases:>10} {time.monotonic() - started:>8.0f} {cov[-1] if cov else '-':>9}  {result}")
        if done.returncode != 0:
            print(done.stderr[-4000:], file=sys.stderr)
            return 1
    print(f"{'total':<10} {total:>10}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Issue 14, "build besides": `schulwart-agent doctor` and `schulwart-central doctor`, as real processes.

The agent's doctor runs against a real central and a simulated school on loopback: every line
green and exit 0; with central stopped its central line is red and the exit code 1.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.agent.procs import AGENT, CENTRAL, run
from tests.simworld import sim_world


def _lines(out: str) -> dict[str, str]:
    """{check name: outcome word} of doctor's stdout."""
    found = {}
    for line in out.splitlines():
        word, name = line.split()[:2]
        found[name if name != "data" else " ".join(line.split()[1:3])] = word
    return found


@pytest.mark.timeout(120)
def test_agent_doctor_green_then_red_without_central(tmp_path: Path) -> None:
    with sim_world(tmp_path, "doc14") as world:
        argv = [AGENT, "doctor", "--data-dir", str(world["agent_dir"]), "--config", str(tmp_path / "agent.toml")]
        good = run(argv, check=False)
        assert good.returncode == 0, good.stdout + good.stderr
        lines = _lines(good.stdout)
        assert {lines[n] for n in ("central", "clock", "multicast", "disk", "controller")} == {"ok"}, good.stdout
        assert "FAIL" not in good.stdout and "2 AP(s)" in good.stdout and "reads" in good.stdout
        world["central_proc"].terminate()
        bad = run(argv, check=False)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert _lines(bad.stdout)["central"] == "FAIL"
    assert "cannot reach" in bad.stdout and "1 check failed: central" in bad.stderr


def test_central_doctor(tmp_path: Path) -> None:
    d = tmp_path / "c"
    run([CENTRAL, "school", "add", "--id", "gs", "--name", "GS", "--carrier", "K", "--data-dir", str(d)])
    good = run([CENTRAL, "doctor", "--data-dir", str(d)], check=False)
    assert good.returncode == 0, good.stdout + good.stderr
    assert {"database", "disk"} <= {ln.split()[1] for ln in good.stdout.splitlines() if ln.startswith("ok")}
    (d / "keys" / "token-issuer.pem").chmod(0o644)
    bad = run([CENTRAL, "doctor", "--data-dir", str(d)], check=False)
    assert bad.returncode == 1 and "chmod 600" in bad.stdout, bad.stdout


def test_the_servers_own_responder_does_not_make_multicast_green() -> None:
    """On the LAN interface only other hosts' answers count: the server's own avahi answers through the loop-back."""
    from zeroconf import IPVersion, ServiceInfo, Zeroconf

    from agent.config import parse_config
    from agent.doctor import check_multicast, mdns_query
    from agent.monitors.discovery.interfaces import default_route_interface

    lan = default_route_interface()
    if lan is None:
        pytest.skip("this host has no default route")
    address = lan.ipv4[0]
    zc = Zeroconf(interfaces=[address], ip_version=IPVersion.V4Only)
    try:
        zc.register_service(ServiceInfo("_doctor14._tcp.local.", "self._doctor14._tcp.local.", port=9,
                                        addresses=[socket.inet_aton(address)]))  # fmt: skip
        assert address in mdns_query(address, 1.5), "the server's own responder should answer (the premise)"
        on_lan = check_multicast(parse_config({"discovery": {"interfaces": [address]}}), timeout_s=1.5)
    finally:
        zc.close()
    assert on_lan.outcome == "fail" and "no mDNS answer" in on_lan.detail, on_lan

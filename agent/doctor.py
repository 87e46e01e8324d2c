"""`schulwart-agent doctor`: on the school server, one real check per thing the agent needs.

Each check does the real thing once — an mDNS query on the chosen interface, a request to
central, one reading of each meter, one request to the controller — and says in one line
whether it worked and, when not, what to do. The command exits 0 only when no check failed;
a check that does not apply here (no systemd, nothing configured) is skipped, not failed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import shutil
import socket
import ssl
import stat
import struct
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path

import aiohttp

from agent.config import AgentConfig
from agent.identity import load_identity
from agent.monitors.cabinets.meters import Meter
from agent.monitors.cabinets.reading import MeterError
from agent.monitors.discovery.interfaces import MDNS_GROUP, choose_interfaces, host_interfaces
from agent.monitors.wlan.unifi import ControllerError, build_controller
from agent.status import effective_central_url
from agent.store import DB_NAME, Store
from base.cli import Check
from base.clock import Clock

MDNS_PORT = 5353
SERVICES_META = "_services._dns-sd._udp.local."  # RFC 6763 §9: every responder answers it
MIN_FREE_BYTES = 200 * 1024 * 1024
MIN_FREE_FRACTION = 0.05
UNIT = "schulwart-agent.service"


def _ok(name: str, detail: str) -> Check:
    return Check(name, "ok", detail)


def _fail(name: str, detail: str) -> Check:
    return Check(name, "fail", detail)


def check_data_dir(data_dir: Path) -> list[Check]:
    """Owner (this user), mode (0700, files 0600) and free space of the data dir."""
    try:
        info = data_dir.stat()
    except OSError as exc:
        return [_fail("data dir", f"{data_dir}: {exc.strerror}; enroll first (schulwart-agent enroll)")]
    checks = []
    if info.st_uid != os.geteuid():
        checks.append(_fail("data dir owner", f"{data_dir} belongs to uid {info.st_uid}, not to this user "
                            f"(uid {os.geteuid()}): run as the agent's user (sudo -u schulwart …)"))  # fmt: skip
    else:
        checks.append(_ok("data dir owner", f"{data_dir} belongs to this user"))
    loose = [p.name for p in (data_dir, *data_dir.iterdir()) if p.lstat().st_mode & 0o077 and not p.is_symlink()]
    if loose:
        checks.append(_fail("data dir mode", f"readable by others: {', '.join(loose)}; fix: chmod -R go= {data_dir}"))
    else:
        checks.append(_ok("data dir mode", f"{stat.filemode(info.st_mode)}, every file owner-only"))
    usage = shutil.disk_usage(data_dir)
    free = f"{usage.free / 2**30:.1f} GiB free ({usage.free / usage.total:.0%})"
    if usage.free < MIN_FREE_BYTES or usage.free / usage.total < MIN_FREE_FRACTION:
        checks.append(_fail("disk", f"{free} on {data_dir}: make room (the outbox stops growing when the disk is "
                            "full)"))  # fmt: skip
    else:
        checks.append(_ok("disk", free))
    return checks


def _query_packet(name: str) -> bytes:
    """A DNS query (id 0, no flags) for the PTR records of ``name``: RFC 1035 §4.1, 12-byte header + question."""
    labels = b"".join(len(part).to_bytes(1, "big") + part for part in name.rstrip(".").encode("ascii").split(b"."))
    return struct.pack("!6H", 0, 0, 1, 0, 0, 0) + labels + b"\x00" + struct.pack("!2H", 12, 1)  # PTR, IN


def _is_answer(data: bytes) -> bool:
    """Whether a datagram is a DNS response (QR bit) with at least one answer record."""
    if len(data) < 12:
        return False
    flags, answers = struct.unpack_from("!H", data, 2)[0], struct.unpack_from("!H", data, 6)[0]
    return bool(flags & 0x8000) and answers > 0


def mdns_query(address: str | None, timeout_s: float) -> set[str]:
    """Send one mDNS query for every service type from ``address`` (None: the default route's).

    Returns the addresses of the hosts that answered within ``timeout_s`` seconds.

    A one-shot query from an ephemeral port (RFC 6762 §5.1): responders answer it by unicast, so
    the check does not need port 5353, which the running agent holds. Raises OSError when the
    query cannot be sent (no multicast route on that interface).
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        if address is not None:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(address))
            sock.bind((address, 0))
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)  # the school server may answer too
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)
        sock.sendto(_query_packet(SERVICES_META), (MDNS_GROUP, MDNS_PORT))
        responders: set[str] = set()
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                data, (host, _port) = sock.recvfrom(9000)
            except TimeoutError:
                break
            if _is_answer(data):
                responders.add(host)
        return responders
    finally:
        sock.close()


def check_multicast(config: AgentConfig, timeout_s: float = 3.0) -> Check:
    """A real mDNS query on the interface discovery listens on; fails when nobody answers."""
    if not config.discovery.enabled:
        return Check("multicast", "skip", "[discovery] enabled = false")
    choice = choose_interfaces(config.discovery.interfaces)
    where = ", ".join(choice.names) or "every interface"
    address = choice.addresses[0] if choice.addresses else None
    try:
        responders = mdns_query(address, timeout_s)
    except OSError as exc:
        return _fail("multicast", f"cannot send an mDNS query on {where}: {exc.strerror or exc}; check the "
                     "interface ([discovery] interfaces) and the firewall (udp/5353)")  # fmt: skip
    loopback = bool(address and ipaddress.ip_address(address).is_loopback)
    if not loopback:
        # The server's own responder (avahi) answers through the loop-back of multicast even when the
        # switch drops every packet: only other hosts prove that multicast works on the LAN.
        responders -= {ip for interface in host_interfaces() for ip in interface.ipv4}
    count = len(responders)
    if count == 0:
        return _fail("multicast", f"no mDNS answer on {where} ({address or 'default'}) within {timeout_s:g} s: "
                     "check [discovery] interfaces, the firewall (udp/5353) and IGMP snooping")  # fmt: skip
    others = "" if loopback else " besides this server"
    return _ok("multicast", f"{count} mDNS responder(s){others} answered on {where} ({choice.mode})")


@dataclass(frozen=True, slots=True)
class CentralAnswer:
    """What central's /healthz said: its version and how far our clock is from its ``Date`` (seconds)."""

    version: str | None
    offset_s: float | None
    elapsed_ms: float


async def ask_central(url: str, timeout_s: float, clock: Clock) -> CentralAnswer:
    """GET central's /healthz once; raises aiohttp.ClientError, ssl.SSLError or TimeoutError."""
    started = time.monotonic()
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as session,
        session.get(f"{url}/healthz") as resp,
    ):
        resp.raise_for_status()
        body = await resp.json(content_type=None)
        date = resp.headers.get("Date")
    elapsed = (time.monotonic() - started) * 1000
    offset = None
    if date:
        try:
            # Date has whole seconds: half the round trip plus up to one second of rounding is noise.
            offset = (clock.now() - parsedate_to_datetime(date)).total_seconds()
        except (TypeError, ValueError):
            offset = None
    version = body.get("version") if isinstance(body, dict) else None
    return CentralAnswer(version if isinstance(version, str) else None, offset, elapsed)


async def check_central(config: AgentConfig, store: Store, clock: Clock) -> list[Check]:
    """Reachability and TLS of the central in use, and the clock against central's ``Date``."""
    identity = load_identity(store)
    if identity is None:
        return [_fail("central", "not enrolled: schulwart-agent enroll --central URL --code CODE")]
    url, _source = effective_central_url(config, identity)
    try:
        answer = await ask_central(url, min(config.sync.request_timeout, 10.0), clock)
    except ssl.SSLCertVerificationError as exc:
        return [_fail("central", f"{url}: TLS certificate refused ({exc.verify_message}); install the CA or fix "
                      "the certificate")]  # fmt: skip
    except (ssl.SSLError, aiohttp.ClientSSLError) as exc:
        return [_fail("central", f"{url}: TLS failed ({exc}); check the URL's scheme and port")]
    except aiohttp.ClientResponseError as exc:
        return [_fail("central", f"{url}/healthz answered {exc.status}: is this central's URL ([sync] central_url)?")]
    except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
        return [_fail("central", f"cannot reach {url}: {exc or type(exc).__name__}; check the network, DNS and "
                      "proxy, and that central runs")]  # fmt: skip
    tls = "TLS ok" if url.startswith("https://") else "plain http"
    checks = [_ok("central", f"{url} answers ({tls}, central {answer.version or '?'}, {answer.elapsed_ms:.0f} ms)")]
    limit = config.host.clock_max_offset
    if answer.offset_s is None:
        checks.append(Check("clock", "skip", "central sent no Date header"))
    elif abs(answer.offset_s) > max(limit, 2.0):
        checks.append(_fail("clock", f"{answer.offset_s:+.0f} s off central's clock (limit {limit:g} s): enable "
                            "time sync (timedatectl set-ntp true)"))  # fmt: skip
    else:
        checks.append(_ok("clock", f"{answer.offset_s:+.1f} s from central's clock"))
    return checks


async def check_site(config: AgentConfig) -> list[Check]:
    """One real reading of each configured meter and one request to the WLAN controller."""
    checks = []
    cabinets = config.cabinets.cabinets
    if cabinets:
        async with aiohttp.ClientSession() as session:
            for cabinet in cabinets:
                name = f"meter {cabinet.id}"
                try:
                    reading = await Meter(cabinet.meter).read(session)
                except MeterError as exc:
                    checks.append(_fail(name, f"{cabinet.meter.url}: {exc}; check the meter's address, power and "
                                        "[cabinets] kind"))  # fmt: skip
                else:
                    checks.append(_ok(name, f"{cabinet.meter.url} reads {reading.power_w:.0f} W"))
    controller_config = config.wlan.controller
    if controller_config is not None:
        controller = build_controller(controller_config)
        try:
            aps = await controller.fetch_aps()
        except ControllerError as exc:
            checks.append(_fail("controller", f"{controller_config.url}: {exc}; check [wlan.controller] url, "
                                "username and password"))  # fmt: skip
        else:
            checks.append(_ok("controller", f"{controller_config.url} lists {len(aps)} AP(s)"))
        finally:
            await controller.close()
    return checks


def check_systemd(run: Callable[[Sequence[str]], tuple[int, str]] | None = None) -> Check:
    """The agent's systemd unit: active, or the command that starts it; skipped where systemd does not run."""
    if not Path("/run/systemd/system").is_dir() or shutil.which("systemctl") is None:
        return Check("systemd", "skip", "systemd does not run here")
    runner = run or _run
    code, out = runner(["systemctl", "is-active", UNIT])
    state = out.strip() or "unknown"
    if code == 0:
        return _ok("systemd", f"{UNIT} is {state}")
    return _fail("systemd", f"{UNIT} is {state}: sudo systemctl enable --now {UNIT} (journalctl -u {UNIT} says why)")


def _run(argv: Sequence[str]) -> tuple[int, str]:
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 1, str(exc)
    return done.returncode, done.stdout


async def run_checks(config: AgentConfig, data_dir: Path, clock: Clock) -> list[Check]:
    """Every check, in the order the lines are printed."""
    checks = check_data_dir(data_dir)
    if not (data_dir / DB_NAME).is_file():
        return checks
    store = Store.open(data_dir, migrate=False)
    try:
        checks += await check_central(config, store, clock)
    finally:
        store.close()
    checks.append(await asyncio.to_thread(check_multicast, config))
    checks += await check_site(config)
    checks.append(await asyncio.to_thread(check_systemd))
    return checks

"""Simulated devices on real mDNS: tablets, AirPlay receivers, printers and Shelly plugs, and a hostile flood.

Services carry the TXT records real devices send (docs/site-monitoring.md lists the sources) and
register with ``cooperating_responders=True``: no probing, so they are visible at once.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
from collections.abc import Sequence

from zeroconf import (  # type: ignore[attr-defined]  # exported at run time, not in the stubs' __all__
    DNSAddress,
    DNSOutgoing,
    DNSPointer,
    DNSService,
    DNSText,
    IPVersion,
    ServiceInfo,
)
from zeroconf.asyncio import AsyncZeroconf

log = logging.getLogger(__name__)

_MDNS_GROUP = ("224.0.0.251", 5353)
_FLAGS_RESPONSE = 0x8000 | 0x0400  # QR response, authoritative
_CLASS_IN = 1
_CLASS_UNIQUE = 0x8000
_TYPE_A, _TYPE_PTR, _TYPE_TXT, _TYPE_SRV = 1, 12, 16, 33

AIRPLAY_TYPE = "_airplay._tcp.local."
RAOP_TYPE = "_raop._tcp.local."


def _info(
    service_type: str, instance: str, host: str, ip: str, port: int, props: dict[str, str]
) -> ServiceInfo:
    return ServiceInfo(
        service_type,
        f"{instance}.{service_type}",
        port=port,
        properties=props,
        server=f"{host}.local.",
        parsed_addresses=[ip],
    )


def tablet_services(name: str, host: str, mac: str, ip: str, model: str = "iPad13,4") -> list[ServiceInfo]:
    """An iPad: network lockdown (``<mac>@<fe80::…>``) and Companion Link with its model."""
    tail = mac.replace(":", "")[-6:]
    link_local = f"fe80::{tail[:2]}ff:fe{tail[2:4]}:{tail[4:]}"
    return [
        _info("_apple-mobdev2._tcp.local.", f"{mac}@{link_local}", host, ip, 32498, {}),
        _info("_companion-link._tcp.local.", name, host, ip, 49152, {
            "rpMd": model, "rpVr": "510.3", "rpFl": "0x20000", "rpHA": mac.replace(":", "")[:12],
            "rpHN": mac.replace(":", "")[2:14], "rpAD": "5f2a3c", "rpHI": "9b01f0", "rpBA": mac.upper(),
        }),
    ]


def airplay_services(name: str, host: str, mac: str, ip: str, port: int) -> list[ServiceInfo]:
    """An Apple TV 4K: ``_airplay._tcp`` and ``_raop._tcp`` (``<12 hex>@<name>``), both on its AirPlay port."""
    device_id = mac.upper()
    return [
        _info(AIRPLAY_TYPE, name, host, ip, port, {
            "acl": "0", "btaddr": "90:DD:5D:8D:32:67", "deviceid": device_id, "fex": "1d9/St5/FbwI",
            "features": "0x4A7FDFD5,0xBC157FDE", "flags": "0x20644", "gid": "BB9F48D8-3F4C-4B8E-9B7C-2A1E0F6C1D11",
            "igl": "1", "gcgl": "1", "model": "AppleTV6,2", "protovers": "1.1",
            "pi": "70669416-1c2d-4b47-8f39-4b5a3f0b9a11", "psi": "7B159F3E-0000-4000-8000-000000000001",
            "pk": "26e30e" + "0" * 58 + "34ab", "srcvers": "566.25.43", "osvers": "15.0", "vv": "2",
        }),
        _info(RAOP_TYPE, f"{device_id.replace(':', '')}@{name}", host, ip, port, {
            "cn": "0,1,2,3", "da": "true", "et": "0,3,5", "ft": "0x4A7FDFD5,0xBC157FDE", "sf": "0x20644",
            "md": "0,1,2", "am": "AppleTV6,2", "pk": "26e30e" + "0" * 58 + "34ab", "tp": "UDP", "vn": "65537",
            "vs": "566.25.43", "ov": "15.0", "vv": "2", "sr": "44100", "ss": "16", "ch": "2", "txtvers": "1",
        }),
    ]


def mac_services(
    name: str, host: str, mac: str, ip: str, port: int, model: str = "MacBookAir10,1"
) -> list[ServiceInfo]:
    """A Mac (macOS 12+) as an AirPlay receiver: ``_airplay._tcp`` and ``_raop._tcp`` with its model."""
    device_id = mac.upper()
    features = "0x4A7FDFD5,0xBC17FFDE"
    return [
        _info(AIRPLAY_TYPE, name, host, ip, port, {
            "acl": "0", "deviceid": device_id, "features": features, "flags": "0x4", "gid": device_id,
            "igl": "1", "gcgl": "0", "model": model, "protovers": "1.1", "pi": "2b4d0e6c-8f5a-4f3d-a1c7-0d9e8b7a6c51",
            "psi": "0b4f3e2d-1c0a-4b9d-8e7f-6a5b4c3d2e1f", "pk": "b07727d6" + "0" * 56, "srcvers": "620.8.2",
            "osvers": "12.6", "vv": "2",
        }),
        _info(RAOP_TYPE, f"{device_id.replace(':', '')}@{name}", host, ip, port, {
            "cn": "0,1,2,3", "da": "true", "et": "0,3,5", "ft": features, "sf": "0x4", "md": "0,1,2",
            "am": model, "pk": "b07727d6" + "0" * 56, "tp": "UDP", "vn": "65537", "vs": "620.8.2", "ov": "12.6",
            "vv": "2",
        }),
    ]


def printer_services(name: str, host: str, ip: str, port: int, uuid: str, note: str) -> list[ServiceInfo]:
    """An AirPrint laser printer as ippsample registers it: LPD on port 0 first, then IPP."""
    model = "HP LaserJet Pro M404dn"
    return [
        _info("_printer._tcp.local.", name, host, ip, 0, {"txtvers": "1", "qtotal": "1", "rp": "ipp/print",
                                                          "ty": model, "note": note}),
        _info("_ipp._tcp.local.", name, host, ip, port, {
            "txtvers": "1", "qtotal": "1", "rp": "ipp/print", "ty": model, "product": f"({model})",
            "adminurl": f"http://{host}.local./", "note": note,
            "pdl": "application/pdf,image/urf,image/pwg-raster,application/PCLm", "kind": "document",
            "UUID": uuid, "Color": "F", "Duplex": "T", "URF": "W8,SRGB24,CP1,IS1-4,MT1-3,RS600,V1.4,DM1",
        }),
    ]


def shelly_services(device_id: str, host: str, ip: str, port: int, gen: int) -> list[ServiceInfo]:
    """A Shelly plug: ``_http._tcp`` named by its id (every generation), ``_shelly._tcp`` on Gen2+."""
    props = {"gen": str(gen), "id": device_id, "arch": "esp8266" if gen == 1 else "esp32"}
    services = [_info("_http._tcp.local.", device_id, host, ip, port, props)]
    if gen >= 2:
        services.append(_info("_shelly._tcp.local.", device_id, host, ip, port, {**props, "app": "PlusPlugS"}))
    return services


class Announcer:
    """One zeroconf instance on the sim's interface that registers and withdraws services."""

    def __init__(self, interface: str) -> None:
        self.interface = interface
        self._aiozc: AsyncZeroconf | None = None

    async def start(self) -> None:
        """Open zeroconf on the interface."""
        self._aiozc = AsyncZeroconf(interfaces=[self.interface], ip_version=IPVersion.V4Only)
        await self._aiozc.zeroconf.async_wait_for_start()

    async def register(self, infos: Sequence[ServiceInfo]) -> None:
        """Announce services (no probing: the sim owns its names)."""
        assert self._aiozc is not None
        tasks = [await self._aiozc.async_register_service(i, cooperating_responders=True) for i in infos]
        await asyncio.gather(*tasks)

    async def unregister(self, infos: Sequence[ServiceInfo]) -> None:
        """Say goodbye for services (TTL 0)."""
        assert self._aiozc is not None
        tasks = [await self._aiozc.async_unregister_service(i) for i in infos]
        await asyncio.gather(*tasks)

    async def stop(self) -> None:
        """Goodbye for everything, then close."""
        if self._aiozc is not None:
            await self._aiozc.async_unregister_all_services()
            await self._aiozc.async_close()
            self._aiozc = None


# -- the hostile flood ------------------------------------------------------------------------------

_FLOOD_TYPES = ("_airplay._tcp.local.", "_ipp._tcp.local.", "_http._tcp.local.", "_googlecast._tcp.local.",
                "_companion-link._tcp.local.")


def _hostile_label(rng: random.Random, index: int) -> str:
    """Instance names of odd characters and lengths (control chars, RTL marks, emoji), kept ≤ 63 bytes."""
    alphabet = "aZ9 -_.\u202e\u0000\u0007\ufeff\U0001f4a9ßü€\u200b\\\"'<>&%"
    body = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 14)))
    prefix = "shelly" if index % 7 == 0 else "evil"
    label = f"{prefix}{index}-{body}"
    while len(label.encode()) > 63:
        label = label[:-1]
    return label


def _hostile_txt(rng: random.Random, churn: int) -> bytes:
    """TXT of up to 24 strings of up to 255 random bytes (invalid UTF-8 included)."""
    parts = []
    for k in range(rng.randint(1, 24)):
        value = rng.randbytes(rng.randint(0, 240))
        entry = (f"k{k}x{churn}=".encode() + value)[:255]
        parts.append(bytes([len(entry)]) + entry)
    parts.append(b"\x0dmodel=AppleTV")
    return b"".join(parts)


def flood_packets(ip: str, count: int, seed: int = 0, churn: int = 0, one_host_share: float = 0.6) -> list[bytes]:
    """``count`` hostile announcements, most from one host name, packed into mDNS response packets."""
    rng = random.Random(seed)
    packed_ip = socket.inet_aton(ip)
    packets: list[bytes] = []
    out = DNSOutgoing(_FLAGS_RESPONSE, True)
    for index in range(count):
        service_type = _FLOOD_TYPES[index % len(_FLOOD_TYPES)]
        name = f"{_hostile_label(rng, index)}.{service_type}"
        host = "evil.local." if rng.random() < one_host_share else f"evil-{index}-{rng.randint(0, 1 << 30)}.local."
        ttl = 4500
        out.add_answer_at_time(DNSPointer(service_type, _TYPE_PTR, _CLASS_IN, ttl, name), 0)
        out.add_answer_at_time(
            DNSService(name, _TYPE_SRV, _CLASS_IN | _CLASS_UNIQUE, 120, 0, 0, rng.randint(1, 65535), host), 0
        )
        out.add_answer_at_time(DNSText(name, _TYPE_TXT, _CLASS_IN | _CLASS_UNIQUE, ttl, _hostile_txt(rng, churn)), 0)
        out.add_answer_at_time(DNSAddress(host, _TYPE_A, _CLASS_IN | _CLASS_UNIQUE, 120, packed_ip), 0)
        if index % 3 == 2:
            packets.extend(out.packets())
            out = DNSOutgoing(_FLAGS_RESPONSE, True)
    packets.extend(out.packets())
    return packets


async def send_flood(interface: str, count: int, *, per_second: float = 2000.0, seed: int = 0, churn: int = 0) -> int:
    """Multicast a flood of hostile announcements from the interface; returns the packets sent."""
    packets = await asyncio.to_thread(flood_packets, interface, count, seed, churn)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(interface))
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
    sock.setblocking(False)
    sent = 0
    services_per_packet = max(1.0, count / max(1, len(packets)))
    pause = services_per_packet / per_second
    try:
        for packet in packets:
            try:
                sock.sendto(packet, _MDNS_GROUP)
                sent += 1
            except BlockingIOError:
                await asyncio.sleep(0.01)
            except OSError as exc:
                log.warning("flood send failed interface=%s error=%s", interface, exc)
                break
            await asyncio.sleep(pause)
    finally:
        sock.close()
    log.info("flood sent interface=%s announcements=%d packets=%d", interface, count, sent)
    return sent

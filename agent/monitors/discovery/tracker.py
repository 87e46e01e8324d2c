"""The device tracker: merges mDNS observations into devices, bounded, with coalesced changes.

Pure logic: no sockets, no clock (every call gets its time). Real names stay here; the changes
it yields become the stored inventory (agent/store/inventory.py), and agent/privacy.py hashes
ids for what leaves the school.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from agent.monitors.discovery.classes import CLASS_TABLE, OTHER, ClassRule
from agent.monitors.discovery.observation import DeviceIdentity, Observation, identify
from agent.monitors.discovery.sanitize import MAX_ADDRESSES
from agent.monitors.interface import Device, DeviceChange

MAX_SERVICES_PER_DEVICE = 16

PRESENT = "present"
ABSENT = "absent"
MISSING = "missing"

ChangeKind = Literal["seen", "changed", "lost"]


@dataclass(slots=True)
class _Service:
    obs: Observation
    ident: DeviceIdentity
    live: bool = True


@dataclass(slots=True)
class _Entry:
    device_id: str
    first_seen: datetime
    last_seen: datetime
    services: dict[str, _Service] = field(default_factory=dict)
    state: str = PRESENT
    absent_since: datetime | None = None
    address: str = ""
    # The class of its best service, kept by _note after every change: a round filters and
    # counts by class without exporting every device.
    device_class: str = OTHER

    def top(self) -> _Service:
        return max(self.services.values(), key=lambda s: (s.ident.priority, s.live))

    def live(self) -> bool:
        # A plain loop: called for every device each discovery round (touch_live); any() over
        # a generator cost 0.9 µs a device, this 0.15 µs.
        for service in self.services.values():
            if service.live:
                return True
        return False


def _signature(device: Device) -> tuple[object, ...]:
    return (device.device_class, device.name, device.model, device.addresses, device.services, device.state)


class DeviceTracker:
    """Devices keyed by their best id; hard-capped; changes coalesced per device until taken."""

    def __init__(
        self, max_devices: int = 2000, table: Iterable[ClassRule] = CLASS_TABLE, max_per_address: int = 1024
    ) -> None:
        self._max_devices = max_devices
        self._max_per_address = max_per_address
        self._per_address: dict[str, int] = {}
        self._table = tuple(table)
        self._entries: dict[str, _Entry] = {}
        self._service_owner: dict[str, str] = {}
        self._host_alias: dict[str, str] = {}
        self._pending: dict[str, tuple[ChangeKind, Device]] = {}
        self.rejected_full = 0
        self.rejected_services = 0
        self.evicted = 0

    # -- observations -------------------------------------------------------------------

    def observe(self, obs: Observation, at: datetime) -> str | None:
        """Merge one resolved service; returns the device id, or None when the inventory refused it."""
        ident = identify(obs, self._table)
        host_key = obs.host.lower()
        device_id = ident.device_id
        if not ident.strong:
            device_id = self._host_alias.get(host_key, device_id)
        previous_owner = self._service_owner.get(obs.service_name)
        if previous_owner is not None and previous_owner != device_id:
            self._drop_service(obs.service_name, at)
        entry = self._entries.get(device_id)
        if entry is None:
            address = obs.addresses[0] if obs.addresses else ""
            # One address announcing a thousand different hosts is a flood, not a school.
            if self._per_address.get(address, 0) >= self._max_per_address or not self._make_room():
                self.rejected_full += 1
                return None
            entry = _Entry(device_id=device_id, first_seen=at, last_seen=at, address=address)
            self._entries[device_id] = entry
            self._per_address[address] = self._per_address.get(address, 0) + 1
            before = None
        else:
            before = self._export(entry)
        if obs.service_name not in entry.services and len(entry.services) >= MAX_SERVICES_PER_DEVICE:
            self.rejected_services += 1
            return device_id
        entry.services[obs.service_name] = _Service(obs=obs, ident=ident)
        self._service_owner[obs.service_name] = device_id
        entry.last_seen = at
        if entry.state != PRESENT:
            entry.state = PRESENT
            entry.absent_since = None
        if ident.strong and host_key:
            self._adopt_host(host_key, device_id)
        self._note(entry, before)
        return device_id

    def service_removed(self, service_name: str, at: datetime) -> None:
        """A service said goodbye (or expired): the device is absent once none of its services is live."""
        device_id = self._service_owner.get(service_name)
        entry = self._entries.get(device_id) if device_id else None
        if entry is None:
            return
        service = entry.services.get(service_name)
        if service is None or not service.live:
            return
        before = self._export(entry)
        service.live = False
        if not entry.live() and entry.state == PRESENT:
            entry.state = ABSENT
            entry.absent_since = at
        self._note(entry, before)

    def touch_live(self, at: datetime) -> None:
        """Devices with a live service are seen now (mDNS keeps their records fresh)."""
        for entry in self._entries.values():
            if entry.live():
                entry.last_seen = at

    def mark_unanswering(self, device_id: str, at: datetime) -> None:
        """A present device did not answer its liveness probe: absent from now on, although its
        mDNS records may live on for an hour (a device without power says no goodbye)."""
        entry = self._entries.get(device_id)
        if entry is None or entry.state != PRESENT:
            return
        before = self._export(entry)
        entry.state = ABSENT
        entry.absent_since = at
        self._note(entry, before)

    def is_live(self, device_id: str) -> bool:
        """Whether mDNS still holds a live service of this device."""
        entry = self._entries.get(device_id)
        return entry is not None and entry.live()

    def set_state(self, device_id: str, state: str) -> None:
        """Presence rules mark a device missing (confirmed by a probe), absent, or present again."""
        entry = self._entries.get(device_id)
        if entry is None or entry.state == state:
            return
        before = self._export(entry)
        entry.state = state
        if state == PRESENT:
            entry.absent_since = None
        self._note(entry, before)

    def forget(self, device_id: str) -> None:
        """Drop a device from the inventory (a 'lost' change)."""
        entry = self._entries.pop(device_id, None)
        if entry is None:
            return
        left = self._per_address.get(entry.address, 1) - 1
        if left > 0:
            self._per_address[entry.address] = left
        else:
            self._per_address.pop(entry.address, None)
        for name in entry.services:
            self._service_owner.pop(name, None)
        for host in [h for h, d in self._host_alias.items() if d == device_id]:
            del self._host_alias[host]
        pending = self._pending.pop(device_id, None)
        if pending is not None and pending[0] == "seen":
            return  # never reported: nothing to take back
        self._pending[device_id] = ("lost", self._export(entry))

    # -- reading --------------------------------------------------------------------------

    def take_changes(self) -> list[DeviceChange]:
        """Changes since the last call, one per device."""
        changes = [DeviceChange(change=kind, device=device) for kind, device in self._pending.values()]
        self._pending.clear()
        return changes

    def devices(self, classes: Collection[str] | None = None) -> list[Device]:
        """Every device as the agent knows it now, or only those of ``classes``."""
        return list(self.iter_devices(classes))

    def iter_devices(self, classes: Collection[str] | None = None) -> Iterator[Device]:
        """Like :meth:`devices`, made one at a time as the caller iterates (a rule that runs once
        a day then costs nothing on the other rounds)."""
        for entry in list(self._entries.values()):
            if classes is None or entry.device_class in classes:
                yield self._export(entry)

    def counts(self) -> dict[str, dict[str, int]]:
        """Devices per class and state, without exporting them."""
        counts: dict[str, dict[str, int]] = {}
        for entry in self._entries.values():
            per = counts.setdefault(entry.device_class, {})
            per[entry.state] = per.get(entry.state, 0) + 1
        return counts

    def forget_unseen_since(self, cutoff: datetime) -> int:
        """Forget every device last seen before ``cutoff`` (each a 'lost' change); returns how many."""
        stale = [e.device_id for e in self._entries.values() if e.last_seen < cutoff]
        for device_id in stale:
            self.forget(device_id)
        return len(stale)

    def get(self, device_id: str) -> Device | None:
        """One device, or None."""
        entry = self._entries.get(device_id)
        return self._export(entry) if entry else None

    def absent_since(self, device_id: str) -> datetime | None:
        """When the device's last live service went away (None while present)."""
        entry = self._entries.get(device_id)
        return entry.absent_since if entry else None

    def endpoints(self, device_id: str) -> list[tuple[str, int]]:
        """Address and port pairs an active probe can try (live or not), best service first."""
        entry = self._entries.get(device_id)
        if entry is None:
            return []
        pairs: list[tuple[str, int]] = []
        for service in sorted(entry.services.values(), key=lambda s: -s.ident.priority):
            if service.obs.port <= 0:
                continue  # LPD "defends" its name with port 0: nothing listens there
            pairs.extend((address, service.obs.port) for address in service.obs.addresses)
        return list(dict.fromkeys(pairs))

    def __len__(self) -> int:
        return len(self._entries)

    # -- internals ------------------------------------------------------------------------

    def _export(self, entry: _Entry) -> Device:
        top = entry.top()
        services = tuple(sorted({s.obs.service_type for s in entry.services.values()}))
        addresses: list[str] = []
        for service in entry.services.values():
            for address in service.obs.addresses:
                if address not in addresses and len(addresses) < MAX_ADDRESSES:
                    addresses.append(address)
        model = next(
            (s.ident.model for s in sorted(entry.services.values(), key=lambda s: -s.ident.priority) if s.ident.model),
            None,
        )
        return Device(
            id=entry.device_id,
            device_class=top.ident.device_class if top.ident.priority > 0 else OTHER,
            name=top.ident.name,
            model=model,
            addresses=tuple(sorted(addresses)),
            services=services,
            first_seen=entry.first_seen,
            last_seen=entry.last_seen,
            state=entry.state,
            properties=dict(top.obs.properties),
        )

    def _note(self, entry: _Entry, before: Device | None) -> None:
        after = self._export(entry)
        entry.device_class = after.device_class
        pending = self._pending.get(entry.device_id)
        if before is None or (pending is not None and pending[0] == "seen"):
            self._pending[entry.device_id] = ("seen", after)
        elif _signature(before) != _signature(after) or pending is not None:
            self._pending[entry.device_id] = ("changed", after)

    def _adopt_host(self, host_key: str, device_id: str) -> None:
        """A strong id for this host: fold a device known only by its host name into it."""
        self._host_alias[host_key] = device_id
        if len(self._host_alias) > 4 * self._max_devices:
            self._host_alias.pop(next(iter(self._host_alias)))
        weak_id = f"host:{host_key.rstrip('.').removesuffix('.local')}"
        weak = self._entries.get(weak_id)
        if weak is None or weak_id == device_id:
            return
        target = self._entries[device_id]
        before = self._export(target)
        self.forget(weak_id)
        for name, service in weak.services.items():
            if len(target.services) < MAX_SERVICES_PER_DEVICE:
                target.services.setdefault(name, service)
                self._service_owner[name] = device_id
        target.first_seen = min(target.first_seen, weak.first_seen)
        self._note(target, before)

    def _drop_service(self, service_name: str, at: datetime) -> None:
        owner = self._service_owner.pop(service_name, None)
        entry = self._entries.get(owner) if owner else None
        if entry is None:
            return
        before = self._export(entry)
        entry.services.pop(service_name, None)
        if not entry.services:
            self.forget(entry.device_id)
            return
        if not entry.live() and entry.state == PRESENT:
            entry.state = ABSENT
            entry.absent_since = at
        self._note(entry, before)

    def _make_room(self) -> bool:
        if len(self._entries) < self._max_devices:
            return True
        # Full: evict the absent device not seen for the longest time; live devices stay.
        absent = [e for e in self._entries.values() if not e.live()]
        if not absent:
            return False
        oldest = min(absent, key=lambda e: e.last_seen)
        self.forget(oldest.device_id)
        self.evicted += 1
        return True

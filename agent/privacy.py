"""What leaves the school: pseudonymous device ids, never raw names, hostnames or MACs.

A device's id at central is HMAC-SHA256(per-school secret, local device id). The secret
is made once (at enrollment, or the first run) and kept in the data dir with mode 0600;
a forced re-enrollment keeps it, so the ids central knows stay stable. With
``[privacy] share_names = true`` the real name, addresses and subject go along as well.

One thing, one pseudonym: an incident of a device category (``wlan``, ``cabinet``, ``device``)
has a key ``<kind>:<local id>`` and its subject is that local id (an AP's MAC, a cabinet's id,
a discovered device's id), the same id the snapshot lists it by; all three leave as
``device_id(local id)``, so central can join them. The subject's readable name, which the
monitors put in the title and in ``details["name"]``, leaves as that pseudonym too.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agent.monitors.interface import Device, DeviceChange
from base.secretfile import read_secret_file, write_secret_file
from protocol.events import DeviceChanged, DeviceLost, DeviceSeen

SECRET_FILE = "privacy-secret"  # noqa: S105 - a file name, not a secret
SECRET_BYTES = 32
# Incident subjects of these categories name devices; host/agent subjects are paths or the agent.
_DEVICE_CATEGORIES = frozenset({"wlan", "cabinet", "device"})
_DeviceEvent = DeviceSeen | DeviceChanged | DeviceLost
_DEVICE_EVENTS: dict[str, type[_DeviceEvent]] = {"seen": DeviceSeen, "changed": DeviceChanged, "lost": DeviceLost}
# A MAC address written with ':' or '-' anywhere in a title: never leaves raw, whatever put it there.
_MAC = re.compile(r"(?<![0-9A-Fa-f:-])(?:[0-9A-Fa-f]{2}([:-]))(?:[0-9A-Fa-f]{2}\1){4}[0-9A-Fa-f]{2}(?![0-9A-Fa-f:-])")


def load_or_create_secret(data_dir: Path) -> bytes:
    """The school's pseudonymisation secret, created on first use."""
    path = data_dir / SECRET_FILE
    if path.exists():
        secret = read_secret_file(path)
        if len(secret) >= 16:
            return secret
    secret = secrets.token_bytes(SECRET_BYTES)
    try:
        write_secret_file(path, secret, exclusive=not path.exists())
    except FileExistsError:
        return load_or_create_secret(data_dir)  # created by another process meanwhile
    return secret


class Privacy:
    """Turns local records into what may be sent to central."""

    def __init__(self, secret: bytes, *, share_names: bool = False) -> None:
        self._secret = secret
        self.share_names = share_names

    def device_id(self, local_id: str) -> str:
        """The keyed hash central knows this device by."""
        digest = hmac.new(self._secret, local_id.encode("utf-8"), hashlib.sha256).hexdigest()
        return f"d-{digest[:32]}"

    def device_payload(self, device: Device, payload: type[_DeviceEvent] = DeviceSeen) -> _DeviceEvent:
        """A device as it may leave the school, as the given ``device.*`` payload class."""
        shared = self.share_names
        return payload(
            id=self.device_id(device.id),
            device_class=device.device_class,
            model=device.model,
            state=device.state,
            name=device.name if shared else None,
            local_id=device.id if shared else None,
            addresses=tuple(device.addresses) if shared else None,
        )

    def device_event(self, change: DeviceChange) -> _DeviceEvent:
        """The ``device.seen`` / ``device.changed`` / ``device.lost`` event of an inventory change."""
        return self.device_payload(change.device, _DEVICE_EVENTS[change.change])

    def device(self, device: Device) -> dict[str, Any]:
        """A device as it may leave the school: device.* data, one item of the state payload's devices."""
        return self.device_payload(device).to_data()

    def subject(self, category: str, subject: str | None) -> str | None:
        """An incident subject: a device subject becomes its pseudonym."""
        if subject is None or self.share_names or category not in _DEVICE_CATEGORIES:
            return subject
        return self.device_id(subject)

    def key(self, category: str, key: str, subject: str | None) -> str:
        """An incident key ``<kind>:<local id>`` as ``<kind>:<pseudonym of the local id>``.

        The whole id part is replaced, whatever it is (a MAC, a name, a cabinet id), so no raw
        identifier can leave in a key; a monitor whose subject is that id gets the same pseudonym
        for key and subject. Keys without an id part (``tablets-not-seen``) stay as they are.
        """
        if self.share_names or category not in _DEVICE_CATEGORIES:
            return key
        kind, sep, ident = key.partition(":")
        if not sep or not ident:
            return key
        return f"{kind}:{self.device_id(ident)}"

    def title(self, category: str, title: str, subject: str | None, details: Mapping[str, Any]) -> str:
        """An incident title as it may leave: the subject's name (``details["name"]``) replaced by
        the subject's pseudonym wherever it stands as a whole word, and every MAC address by its own."""
        if self.share_names or category not in _DEVICE_CATEGORIES:
            return title
        name = details.get("name")
        if isinstance(name, str) and name.strip():
            pseudonym = self.device_id(subject) if subject else self.device_id(name)
            title = re.sub(rf"(?<!\w){re.escape(name)}(?!\w)", lambda _m: pseudonym, title)
        return _MAC.sub(lambda m: self.device_id(m.group(0).lower().replace("-", ":")), title)

    def params(
        self, category: str, params: Mapping[str, Any], subject: str | None, details: Mapping[str, Any]
    ) -> dict[str, Any]:
        """A title's parameters as they may leave: every text value treated as :meth:`title` treats
        the title (the subject's name and any MAC replaced by pseudonyms); numbers stay."""
        if self.share_names or category not in _DEVICE_CATEGORIES:
            return dict(params)
        return {
            key: self.title(category, value, subject, details) if isinstance(value, str) else value
            for key, value in params.items()
        }

    def details(self, details: Mapping[str, Any]) -> dict[str, Any]:
        """Free-form details: only numbers and booleans leave unless names may be shared."""
        if self.share_names:
            return dict(details)
        return {k: v for k, v in details.items() if isinstance(v, (int, float, bool))}

    def snapshot(self, sections: Mapping[str, Any]) -> dict[str, Any]:
        """Monitor sections as they may leave the school: APs, probe targets and cabinets listed by
        the pseudonyms of the ids their incidents use, without their names; the controller's name
        pseudonymised; the meter candidates (device ids and addresses, for the technician on
        site) left out."""
        out = {name: dict(values) if isinstance(values, Mapping) else values for name, values in sections.items()}
        if self.share_names:
            return out
        wlan = out.get("wlan")
        if isinstance(wlan, dict):
            if isinstance(wlan.get("aps"), list):
                wlan["aps"] = [
                    {**{k: v for k, v in ap.items() if k != "name"}, "id": self.device_id(str(ap["id"]))}
                    if isinstance(ap, Mapping) and ap.get("id") else ap
                    for ap in wlan["aps"]
                ]
            probes = wlan.get("probes")
            if isinstance(probes, Mapping):
                wlan["probes"] = {
                    self.device_id(str(v.get("id") or k) if isinstance(v, Mapping) else str(k)):
                    {pk: pv for pk, pv in v.items() if pk != "id"} if isinstance(v, Mapping) else v
                    for k, v in probes.items()
                }
            controller = wlan.get("controller")
            if isinstance(controller, Mapping) and controller.get("name"):
                wlan["controller"] = {**controller, "name": self.device_id(str(controller["name"]))}
        cabinets = out.get("cabinets")
        if isinstance(cabinets, dict) and isinstance(cabinets.get("cabinets"), Mapping):
            cabinets["cabinets"] = {
                self.device_id(str(cab_id)): {k: v for k, v in cab.items() if k != "name"}
                if isinstance(cab, Mapping) else cab
                for cab_id, cab in cabinets["cabinets"].items()
            }
        discovery = out.get("discovery")
        if isinstance(discovery, dict):
            discovery.pop("meter_candidates", None)
        return out

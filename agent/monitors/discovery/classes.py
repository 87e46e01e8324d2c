"""Which mDNS service types, TXT keys and instance names mean which device class: data, not code.

Built from what real devices announce (see docs/site-monitoring.md for the sources). To teach
the agent a new device, add a ``ClassRule`` row: the service type, optional TXT or instance-name
patterns (case-insensitive shell globs), the class, a priority, and which TXT keys carry the
device id, the model and the friendly name (TXT keys are case-insensitive: the observation
holds them in lower case). When a device announces several services, the
matching rule with the highest priority decides its class.

A class that must stay present (``airplay``) is given only on evidence that the device is fixed:
its model (Apple TV, HomePod, AirPort, shairport-sync) or a third-party receiver naming its
``manufacturer``. A service type alone never makes a receiver: macOS 12+ announces
``_airplay._tcp`` and ``_raop._tcp`` too (``model=MacBookAir10,1``), and a laptop, phone or tablet
that goes home is not a missing receiver (pyatv's and Home Assistant's matchers read the same keys).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

TABLET = "tablet"
AIRPLAY = "airplay"
PRINTER = "printer"
METER = "meter"
ACCESS_POINT = "ap"
CHROMECAST = "chromecast"
NAS = "nas"
OTHER = "other"

DEVICE_CLASSES: tuple[str, ...] = (TABLET, AIRPLAY, PRINTER, METER, ACCESS_POINT, CHROMECAST, NAS, OTHER)

# How an instance name carries a hardware id: "<mac>@<ipv6>" (apple-mobdev2) or
# "<12 hex>@<name>" (RAOP). Both put the id before the "@".
NAME_ID_BEFORE_AT = "before-at"


@dataclass(frozen=True, slots=True)
class ClassRule:
    """One row of the table: a service type (plus optional patterns) that identifies a class."""

    service_type: str
    device_class: str
    priority: int
    txt: Mapping[str, str] = field(default_factory=dict)
    name: str | None = None
    id_keys: tuple[str, ...] = ()
    id_from_name: str | None = None
    model_keys: tuple[str, ...] = ()
    name_keys: tuple[str, ...] = ()
    name_after_at: bool = False

    def matches(self, service_type: str, instance: str, props: Mapping[str, str]) -> bool:
        """True when the service type and every pattern of this rule match."""
        if service_type != self.service_type:
            return False
        if self.name is not None and not fnmatchcase(instance.lower(), self.name):
            return False
        for key, pattern in self.txt.items():
            value = props.get(key.lower())
            if value is None or not fnmatchcase(value.lower(), pattern):
                return False
        return True


def _t(name: str) -> str:
    return f"{name}.local."


_AIRPLAY_TXT_MODEL = ("model",)
_PRINTER_MODEL = ("ty", "product", "usb_MDL")
# Models of fixed AirPlay receivers (Apple TV, HomePod, AirPort Express, shairport-sync speakers).
FIXED_RECEIVER_MODELS = ("appletv*", "audioaccessory*", "airport*", "shairport*")
# Apple computers, phones and tablets that announce AirPlay/RAOP too: they come and go with people.
PORTABLE_MODELS = (("mac*", OTHER), ("imac*", OTHER), ("iphone*", OTHER), ("ipod*", OTHER), ("ipad*", TABLET))


def _airplay_rules() -> tuple[ClassRule, ...]:
    airplay = _t("_airplay._tcp")
    raop = _t("_raop._tcp")
    rules: list[ClassRule] = []
    for pattern in FIXED_RECEIVER_MODELS:
        rules.append(ClassRule(airplay, AIRPLAY, 90, txt={"model": pattern}, id_keys=("deviceid",),
                               model_keys=_AIRPLAY_TXT_MODEL))
        rules.append(ClassRule(raop, AIRPLAY, 75, txt={"am": pattern}, id_from_name=NAME_ID_BEFORE_AT,
                               model_keys=("am",), name_after_at=True))
    for pattern, device_class in PORTABLE_MODELS:  # above every receiver rule: never a fixed receiver
        rules.append(ClassRule(airplay, device_class, 95, txt={"model": pattern}, id_keys=("deviceid",),
                               model_keys=_AIRPLAY_TXT_MODEL))
        rules.append(ClassRule(raop, device_class, 95, txt={"am": pattern}, id_from_name=NAME_ID_BEFORE_AT,
                               model_keys=("am",), name_after_at=True))
    # Third-party receivers (TVs, speakers) name their maker; Apple's own devices do not.
    rules.append(ClassRule(airplay, AIRPLAY, 85, txt={"manufacturer": "?*"}, id_keys=("deviceid",),
                           model_keys=("model", "manufacturer")))
    # Anything else on these types is an AirPlay-capable "other": seen, but not watched.
    rules.append(ClassRule(airplay, OTHER, 50, id_keys=("deviceid",), model_keys=("model", "manufacturer")))
    rules.append(ClassRule(raop, OTHER, 45, id_from_name=NAME_ID_BEFORE_AT, model_keys=("am",),
                           name_after_at=True))
    return tuple(rules)


# Priorities: a TXT/name match beats a bare service type; a strong class beats "other".
CLASS_TABLE: tuple[ClassRule, ...] = (
    # iPads / iPhones (Apple documents none of these; best effort)
    ClassRule(_t("_apple-mobdev2._tcp"), TABLET, 60, id_from_name=NAME_ID_BEFORE_AT),
    ClassRule(_t("_remotepairing._tcp"), TABLET, 55),
    ClassRule(_t("_companion-link._tcp"), TABLET, 70, txt={"rpMd": "ipad*"}, model_keys=("rpMd",)),
    ClassRule(_t("_companion-link._tcp"), AIRPLAY, 70, txt={"rpMd": "appletv*"}, model_keys=("rpMd",)),
    ClassRule(_t("_companion-link._tcp"), AIRPLAY, 70, txt={"rpMd": "audioaccessory*"}, model_keys=("rpMd",)),
    ClassRule(_t("_companion-link._tcp"), OTHER, 10, model_keys=("rpMd",)),
    # Apple TV, HomePod, AirPlay-capable TVs and speakers; Macs, iPhones, iPads announcing AirPlay
    *_airplay_rules(),
    ClassRule(_t("_mediaremotetv._tcp"), AIRPLAY, 40),  # the Apple TV's remote protocol: Apple TVs only
    ClassRule(_t("_touch-able._tcp"), OTHER, 40),  # also Music/iTunes on a Mac
    ClassRule(_t("_sleep-proxy._udp"), OTHER, 30),  # also Macs and AirPort base stations
    ClassRule(_t("_airport._tcp"), ACCESS_POINT, 60),
    # Printers (IPP / AirPrint / LPD / RAW)
    ClassRule(_t("_ipp._tcp"), PRINTER, 85, id_keys=("UUID",), model_keys=_PRINTER_MODEL),
    ClassRule(_t("_ipps._tcp"), PRINTER, 85, id_keys=("UUID",), model_keys=_PRINTER_MODEL),
    ClassRule(_t("_printer._tcp"), PRINTER, 80, id_keys=("UUID",), model_keys=_PRINTER_MODEL),
    ClassRule(_t("_pdl-datastream._tcp"), PRINTER, 80, id_keys=("UUID",), model_keys=_PRINTER_MODEL),
    # Google Cast
    ClassRule(_t("_googlecast._tcp"), CHROMECAST, 85, id_keys=("id",), model_keys=("md",), name_keys=("fn",)),
    # Shelly (Gen2+ on _shelly._tcp; every generation on _http._tcp with a shelly* instance name)
    ClassRule(_t("_shelly._tcp"), METER, 90, id_keys=("id",), model_keys=("app", "model")),
    ClassRule(_t("_http._tcp"), METER, 85, name="shelly*", id_keys=("id",), model_keys=("app", "model")),
    ClassRule(_t("_esphomelib._tcp"), OTHER, 50, id_keys=("mac",), model_keys=("board", "platform"),
              name_keys=("friendly_name",)),
    # NAS / file servers
    ClassRule(_t("_http._tcp"), NAS, 70, txt={"vendor": "synology*"}, model_keys=("model",)),
    ClassRule(_t("_device-info._tcp"), NAS, 45, txt={"model": "macsamba"}, model_keys=("model",)),
    ClassRule(_t("_device-info._tcp"), NAS, 45, txt={"model": "timecapsule*"}, model_keys=("model",)),
    ClassRule(_t("_device-info._tcp"), NAS, 45, txt={"model": "rackmac*"}, model_keys=("model",)),
    ClassRule(_t("_device-info._tcp"), NAS, 45, txt={"model": "xserve*"}, model_keys=("model",)),
    ClassRule(_t("_device-info._tcp"), OTHER, 5, model_keys=("model",)),
    ClassRule(_t("_adisk._tcp"), NAS, 50),
    ClassRule(_t("_smb._tcp"), NAS, 20),
)


def browse_types(table: Iterable[ClassRule] = CLASS_TABLE, extra: Iterable[str] = ()) -> list[str]:
    """Every service type the table knows, plus extra ones from the config, sorted and unique."""
    return sorted({rule.service_type for rule in table} | {_normalise_type(t) for t in extra})


def _normalise_type(service_type: str) -> str:
    service_type = service_type.strip()
    if not service_type.endswith("."):
        service_type += "."
    if not service_type.endswith(".local."):
        service_type = service_type[: -1] + ".local."
    return service_type


def match_rule(
    service_type: str,
    instance: str,
    props: Mapping[str, str],
    table: Iterable[ClassRule] = CLASS_TABLE,
) -> ClassRule | None:
    """The highest-priority rule that matches one announced service, or None."""
    best: ClassRule | None = None
    for rule in table:
        if rule.matches(service_type, instance, props) and (best is None or rule.priority > best.priority):
            best = rule
    return best

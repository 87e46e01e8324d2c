"""Incident titles in the reader's language, from a stable ``code`` and its ``params``.

An incident carries its English ``title`` (for readers that know no codes) and may carry a
``code`` such as ``"cabinet.no_power"`` with ``params`` such as ``{"cabinet": "Schrank 1",
"power_w": 0.4}``. Agent (technician page) and central (dashboard) render the title from this
one catalogue, so both say the same thing in German and English.

Each code has, per language, a list of templates in ``str.format`` syntax; the first whose
placeholders are all present (and not null) in ``params`` is used, so an optional detail
("… (timeout)") needs no code of its own. Numbers are written the reader's way (``0,4`` in
German). An unknown code, an unknown language, or params that fit no template give the
fallback title: a reader never fails on what a newer agent sends. A code whose
``params["count"]`` is 1 uses ``CODE.one`` when the catalogue has it ("1 Tablet", "3 Tablets").
"""

from __future__ import annotations

import string
from collections.abc import Mapping

__all__ = ["LANGUAGES", "MESSAGES", "render_title"]

LANGUAGES = ("de", "en")

# code -> language -> templates, most specific first. German cabinet titles start with the
# cabinet's own name, which is often "Ladeschrank 3" already (no "Ladeschrank Ladeschrank 3").
MESSAGES: Mapping[str, Mapping[str, tuple[str, ...]]] = {
    "wlan.ap_down": {
        "de": ("Access Point {name} ausgefallen (Controller: {state})", "Access Point {name} ausgefallen"),
        "en": ("Access point {name} down (controller: {state})", "Access point {name} down"),
    },
    "wlan.ap_degraded": {
        "de": (
            "Access Point {name} überlastet ({clients} Geräte, Zufriedenheit {satisfaction} %)",
            "Access Point {name} überlastet ({clients} Geräte)",
            "Access Point {name} gestört (Zufriedenheit {satisfaction} %)",
            "Access Point {name} gestört",
        ),
        "en": (
            "Access point {name} degraded ({clients} clients, satisfaction {satisfaction}%)",
            "Access point {name} degraded ({clients} clients)",
            "Access point {name} degraded (satisfaction {satisfaction}%)",
            "Access point {name} degraded",
        ),
    },
    "wlan.other_unreachable": {
        "de": ("{name} antwortet nicht ({error})", "{name} antwortet nicht"),
        "en": ("{name} not answering ({error})", "{name} not answering"),
    },
    "wlan.ap_unreachable": {
        "de": ("Access Point {name} antwortet nicht ({error})", "Access Point {name} antwortet nicht"),
        "en": ("Access point {name} not answering ({error})", "Access point {name} not answering"),
    },
    "wlan.gateway_unreachable": {
        "de": ("Gateway {name} nicht erreichbar ({error})", "Gateway {name} nicht erreichbar"),
        "en": ("Gateway {name} unreachable ({error})", "Gateway {name} unreachable"),
    },
    "wlan.dns_unreachable": {
        "de": ("DNS-Server {name} nicht erreichbar ({error})", "DNS-Server {name} nicht erreichbar"),
        "en": ("DNS resolver {name} unreachable ({error})", "DNS resolver {name} unreachable"),
    },
    "wlan.internet_unreachable": {
        "de": ("Internet nicht erreichbar ({name}) ({error})", "Internet nicht erreichbar ({name})"),
        "en": ("Internet unreachable ({name}) ({error})", "Internet unreachable ({name})"),
    },
    "wlan.central_unreachable": {
        "de": ("Zentrale nicht erreichbar ({name}) ({error})", "Zentrale nicht erreichbar ({name})"),
        "en": ("Central service unreachable ({name}) ({error})", "Central service unreachable ({name})"),
    },
    "wlan.degraded": {
        "de": ("{name}: {loss_pct} % Verlust, Median {median_ms} ms",),
        "en": ("{name}: {loss_pct}% loss, median {median_ms} ms",),
    },
    "wlan.controller_unreachable": {
        "de": ("WLAN-Controller {name} nicht erreichbar ({error})", "WLAN-Controller {name} nicht erreichbar"),
        "en": ("WLAN controller {name} unreachable ({error})", "WLAN controller {name} unreachable"),
    },
    "cabinet.meter_unreachable": {
        "de": (
            "{cabinet}: Strommesser im Ladefenster nicht erreichbar ({reason})",
            "{cabinet}: Strommesser im Ladefenster nicht erreichbar",
        ),
        "en": (
            "Cabinet {cabinet}: power meter unreachable during the charging window ({reason})",
            "Cabinet {cabinet}: power meter unreachable during the charging window",
        ),
    },
    "cabinet.switched_off": {
        "de": ("{cabinet}: im Ladefenster ausgeschaltet",),
        "en": ("Cabinet {cabinet} switched off during its charging window",),
    },
    "cabinet.no_power": {
        "de": ("{cabinet}: kein Strom im Ladefenster ({power_w} W)",),
        "en": ("Cabinet {cabinet} has no power during its charging window ({power_w} W)",),
    },
    "cabinet.still_charging": {
        "de": ("{cabinet}: zieht nach dem Ladefenster noch {power_w} W",),
        "en": ("Cabinet {cabinet} still drawing {power_w} W after its charging window",),
    },
    "cabinet.over_temperature": {
        "de": ("{cabinet}: zu heiß ({temperature_c} °C)", "{cabinet}: zu heiß"),
        "en": ("Cabinet {cabinet} over temperature ({temperature_c} °C)", "Cabinet {cabinet} over temperature"),
    },
    "device.missing": {
        "de": (
            "{what} ({model}) fehlt (nicht mehr im mDNS, antwortet nicht)",
            "{what} fehlt (nicht mehr im mDNS, antwortet nicht)",
        ),
        "en": (
            "{what} ({model}) missing (gone from mDNS, not answering)",
            "{what} missing (gone from mDNS, not answering)",
        ),
    },
    "device.tablets_not_seen.one": {
        "de": ("1 Tablet seit mindestens {days} Tagen nicht gesehen (verloren, defekt oder nicht im Wagen)",),
        "en": ("1 tablet not seen for {days}+ days (lost, broken or not in the cart)",),
    },
    "device.tablets_not_seen": {
        "de": ("{count} Tablets seit mindestens {days} Tagen nicht gesehen (verloren, defekt oder nicht im Wagen)",),
        "en": ("{count} tablets not seen for {days}+ days (lost, broken or not in the cart)",),
    },
    "host.disk_full": {
        "de": ("Festplatte {path} über {limit} % voll",),
        "en": ("Disk {path} over {limit}% full",),
    },
    "host.memory": {
        "de": ("Arbeitsspeicher des Schulservers knapp",),
        "en": ("Memory pressure on the school server",),
    },
    "host.clock": {
        "de": ("Uhr des Schulservers weicht stark von der Zentrale ab",),
        "en": ("Server clock far off from central's",),
    },
    "agent.revoked": {
        "de": ("Agent gesperrt / Schlüssel von der Zentrale abgelehnt",),
        "en": ("Agent revoked / key rejected by central",),
    },
    "agent.history_fork": {
        "de": ("Verlauf der Zentrale passt nicht zum Postausgang (Agent wiederhergestellt oder geklont?)",),
        "en": ("Central's history of this agent disagrees with the outbox (restored or cloned agent?)",),
    },
    "agent.sync_refused": {
        "de": ("Die Zentrale lehnt die Berichte dieses Agenten ab",),
        "en": ("Central refuses this agent's reports",),
    },
    "central.silent": {
        "de": ("Agent meldet sich nicht: seit über {minutes} Min. kein Bericht",),
        "en": ("Agent silent: no report for more than {minutes} min",),
    },
    "central.history_fork": {
        "de": ("Verlauf des Agenten gespalten (aus einer Sicherung wiederhergestellt oder geklont?)",),
        "en": ("Agent history forked (restored from backup or cloned?)",),
    },
}

# Device classes named in titles ("what" of device.missing).
_WORDS: Mapping[str, Mapping[str, str]] = {
    "de": {"airplay": "AirPlay-Empfänger", "printer": "Drucker", "meter": "Strommesser", "tablet": "Tablet"},
    "en": {"airplay": "AirPlay receiver", "printer": "Printer", "meter": "Power meter", "tablet": "Tablet"},
}
_DEVICE = {"de": "Gerät", "en": "Device"}
_FORMATTER = string.Formatter()


def _value(value: object, lang: str) -> str | None:
    """A parameter as text in the reader's way; None for null or for a type a title cannot hold."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, float):
        text = f"{value:.1f}".removesuffix(".0")
        return text.replace(".", ",") if lang == "de" else text
    if isinstance(value, int | str):
        return str(value)[:200]
    return None


def _fields(template: str) -> list[str]:
    return [name for _, name, _, _ in _FORMATTER.parse(template) if name is not None]


def render_title(code: object, params: object, lang: str, fallback: str) -> str:
    """The title of ``code`` with ``params`` in ``lang`` (``"de"`` or ``"en"``); else ``fallback``.

    ``code`` and ``params`` are taken as received (any JSON value): a non-string code, a
    non-object params, an unknown code or language give ``fallback`` unchanged.
    """
    if not isinstance(code, str) or not isinstance(params, Mapping):
        return fallback
    if params.get("count") == 1 and f"{code}.one" in MESSAGES:
        code = f"{code}.one"
    templates = MESSAGES.get(code, {}).get(lang)
    if templates is None:
        return fallback
    values: dict[str, str] = {}
    for key, raw in params.items():
        text = _value(raw, lang)
        if isinstance(key, str) and text is not None:
            values[key] = text
    if code == "device.missing":
        values["what"] = _WORDS[lang].get(values.get("device_class", ""), _DEVICE[lang])
    for template in templates:
        if all(name in values for name in _fields(template)):
            return template.format(**values)
    return fallback

"""The dashboard's language and the human form of times, durations and values.

German first: a page is German unless the viewer chose English (``?lang=en``, remembered in
a cookie) or the browser asks for English before German (``Accept-Language``). Times are
shown in Europe/Berlin; durations as "seit 3 Std." / "46 Tage"; power as "412 W". Incident
titles come from ``protocol.messages``, the catalogue the agent's technician page uses too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from central.timestamps import from_iso
from protocol.errors import MalformedError
from protocol.messages import LANGUAGES, render_title

BERLIN = ZoneInfo("Europe/Berlin")
LANG_COOKIE = "schulwart_lang"
DASH = "\u2013"  # shown for a value that is not known

# UI words. Keys are English-ish ids; a missing English entry falls back to German.
TEXT: Mapping[str, Mapping[str, str]] = {
    "de": {
        "app": "Schulwart Zentrale",
        "overview": "Übersicht",
        "incidents": "Störungen",
        "logout": "Abmelden",
        "login": "Anmelden",
        "user": "Benutzername",
        "password": "Passwort",
        "login_failed": "Benutzername oder Passwort falsch.",
        "login_limited": "Zu viele Fehlversuche. Bitte in einigen Minuten erneut versuchen.",
        "csrf_failed": "Das Formular ist abgelaufen. Bitte die Seite neu laden und erneut absenden.",
        "school": "Schule",
        "carrier": "Schulträger",
        "status": "Status",
        "open_incidents": "Offene Störungen",
        "aps_down": "APs aus",
        "cabinets_down": "Ladeschränke ohne Strom",
        "tablets": "Tablets heute / üblich",
        "last_report": "Letzte Meldung",
        "version": "Agent-Version",
        "clock": "Uhr",
        "clock_off": "Uhr weicht ab",
        "config": "Konfiguration",
        "dead_letters": "Unzustellbare Meldungen",
        "dead_letters_hint": (
            "Alarmmeldungen, die nach allen Versuchen nicht zugestellt wurden. "
            "„Erneut senden“ stellt sie wieder in die Warteschlange."
        ),
        "no_dead_letters": "Keine unzustellbaren Meldungen.",
        "alert_not_dead": "Diese Meldung ist nicht (mehr) unzustellbar.",
        "channel": "Kanal",
        "kind": "Art",
        "attempts": "Versuche",
        "last_error": "Letzter Fehler",
        "retry": "Erneut senden",
        "config_behind": "zentral gilt",
        "config_overrides": "vor Ort abweichend",
        "all": "alle",
        "filter": "Filtern",
        "search": "Suche",
        "search_hint": "Name oder Kennung",
        "schools_shown": "Schulen angezeigt",
        "open_critical": "offene kritische Störungen",
        "refreshed": "Aktualisiert",
        "never": "nie",
        "status.ok": "in Ordnung",
        "status.degraded": "eingeschränkt",
        "status.broken": "gestört",
        "status.silent": "meldet sich nicht",
        "status.new": "neu",
        "severity.critical": "kritisch",
        "severity.warning": "Warnung",
        "severity.info": "Hinweis",
        "category.wlan": "WLAN",
        "category.cabinet": "Ladeschrank",
        "category.device": "Gerät",
        "category.host": "Schulserver",
        "category.agent": "Agent",
        "state.open": "offen",
        "state.resolved": "behoben",
        "state.all": "alle",
        "action.opened": "eröffnet",
        "action.updated": "geändert",
        "action.resolved": "behoben",
        "action.acknowledged": "übernommen",
        "action.note": "Notiz",
        "action.staff-ack": "übernommen (Zentrale)",
        "action.staff-note": "Notiz (Zentrale)",
        "acknowledge": "Übernehmen",
        "add_note": "Notiz speichern",
        "note_placeholder": "Notiz für Technik und Hotline",
        "acknowledged_by": "übernommen von",
        "on_site": "vor Ort",
        "central": "Zentrale",
        "opened": "seit",
        "resolved_at": "behoben",
        "no_incidents": "Keine Störungen.",
        "recent_incidents": "Störungen (offen und der letzten 7 Tage)",
        "aps": "Access Points",
        "clients": "Geräte",
        "cabinets": "Ladeschränke",
        "power_now": "Leistung jetzt",
        "in_window": "im Ladefenster",
        "outside_window": "außerhalb des Ladefensters",
        "night": "Nacht",
        "verdict": "Laden",
        "night.charged": "geladen",
        "night.no_power": "kein Strom im Ladefenster",
        "night.no_data": "keine Daten",
        "device_counts": "Geräte nach Klasse (Tageshöchstwert)",
        "class": "Klasse",
        "not_seen": "Tablets seit {days} Tagen nicht gesehen",
        "device_id": "Geräte-ID (pseudonym)",
        "model": "Modell",
        "last_seen": "zuletzt gesehen",
        "host": "Schulserver",
        "disk": "Festplatte",
        "memory": "Arbeitsspeicher frei",
        "load": "Last (1 Min.)",
        "uptime": "Laufzeit",
        "agent": "Agent",
        "sync_lag": "Ältestes ungesendetes Ereignis",
        "outbox_depth": "Warteschlange",
        "events": "Ereignisse",
        "no_data": "keine Daten",
        "since": "seit",
        "severity": "Schweregrad",
        "category": "Bereich",
        "state": "Zustand",
        "since_date": "geändert ab",
        "error": "Fehler",
        "not_found": "Diese Schule gibt es nicht, oder sie gehört nicht zu Ihrem Schulträger.",
        "incident_not_found": "Diese Störung gibt es nicht, oder sie gehört nicht zu Ihrem Schulträger.",
        "bad_input": "Ungültige Eingabe",
        "back": "Zurück zur Übersicht",
        "power_chart": "Leistung der letzten 7 Tage",
        "language": "English",
        "none": "keine",
        "skew": "Uhrabweichung",
    },
    "en": {
        "app": "Schulwart central",
        "overview": "Overview",
        "incidents": "Incidents",
        "logout": "Log out",
        "login": "Log in",
        "user": "User name",
        "password": "Password",
        "login_failed": "Wrong user name or password.",
        "login_limited": "Too many failed attempts. Please try again in a few minutes.",
        "csrf_failed": "The form has expired. Please reload the page and submit again.",
        "school": "School",
        "carrier": "Carrier",
        "status": "Status",
        "open_incidents": "Open incidents",
        "aps_down": "APs down",
        "cabinets_down": "Cabinets without power",
        "tablets": "Tablets today / usual",
        "last_report": "Last report",
        "version": "Agent version",
        "clock": "Clock",
        "clock_off": "clock off",
        "config": "Configuration",
        "dead_letters": "Dead letters",
        "dead_letters_hint": "Alert messages that failed after every attempt. Retry puts one back in the queue.",
        "no_dead_letters": "No dead letters.",
        "alert_not_dead": "This message is not (or no longer) in the dead-letter list.",
        "channel": "Channel",
        "kind": "Kind",
        "attempts": "Attempts",
        "last_error": "Last error",
        "retry": "Retry",
        "config_behind": "central has",
        "config_overrides": "set locally",
        "all": "all",
        "filter": "Filter",
        "search": "Search",
        "search_hint": "name or id",
        "schools_shown": "schools shown",
        "open_critical": "open critical incidents",
        "refreshed": "Refreshed",
        "never": "never",
        "status.ok": "ok",
        "status.degraded": "degraded",
        "status.broken": "broken",
        "status.silent": "silent",
        "status.new": "new",
        "severity.critical": "critical",
        "severity.warning": "warning",
        "severity.info": "info",
        "category.wlan": "WLAN",
        "category.cabinet": "Cabinet",
        "category.device": "Device",
        "category.host": "School server",
        "category.agent": "Agent",
        "state.open": "open",
        "state.resolved": "resolved",
        "state.all": "all",
        "action.opened": "opened",
        "action.updated": "updated",
        "action.resolved": "resolved",
        "action.acknowledged": "acknowledged",
        "action.note": "note",
        "action.staff-ack": "acknowledged (central)",
        "action.staff-note": "note (central)",
        "acknowledge": "Acknowledge",
        "add_note": "Save note",
        "note_placeholder": "Note for technicians and hotline",
        "acknowledged_by": "acknowledged by",
        "on_site": "on site",
        "central": "central",
        "opened": "since",
        "resolved_at": "resolved",
        "no_incidents": "No incidents.",
        "recent_incidents": "Incidents (open and of the last 7 days)",
        "aps": "Access points",
        "clients": "clients",
        "cabinets": "Charging cabinets",
        "power_now": "Power now",
        "in_window": "in charging window",
        "outside_window": "outside the charging window",
        "night": "Night",
        "verdict": "Charging",
        "night.charged": "charged",
        "night.no_power": "no power in the window",
        "night.no_data": "no data",
        "device_counts": "Devices by class (daily maximum)",
        "class": "Class",
        "not_seen": "Tablets not seen for {days} days",
        "device_id": "Device id (pseudonymous)",
        "model": "Model",
        "last_seen": "last seen",
        "host": "School server",
        "disk": "Disk",
        "memory": "Memory free",
        "load": "Load (1 min)",
        "uptime": "Uptime",
        "agent": "Agent",
        "sync_lag": "Oldest unsent event",
        "outbox_depth": "Queue",
        "events": "events",
        "no_data": "no data",
        "since": "since",
        "severity": "Severity",
        "category": "Category",
        "state": "State",
        "since_date": "changed since",
        "error": "Error",
        "not_found": "There is no such school, or it does not belong to your carrier.",
        "incident_not_found": "There is no such incident, or it does not belong to your carrier.",
        "bad_input": "Invalid input",
        "back": "Back to the overview",
        "power_chart": "Power of the last 7 days",
        "language": "Deutsch",
        "none": "none",
        "skew": "Clock skew",
    },
}


def choose_language(query_lang: str | None, cookie_lang: str | None, accept_language: str | None) -> str:
    """``de`` or ``en``: the query's choice, the cookie's, the first of them in Accept-Language; else ``de``."""
    for choice in (query_lang, cookie_lang):
        if choice in LANGUAGES:
            return str(choice)
    for part in (accept_language or "").split(",")[:20]:
        tag = part.split(";")[0].strip().lower()[:2]
        if tag in LANGUAGES:
            return tag
    return "de"


class Words:
    """The UI in one language: words, titles and the human form of values (jinja helpers)."""

    def __init__(self, lang: str, now: datetime) -> None:
        self.lang = lang
        self.now = now
        self._text = TEXT[lang]

    def __call__(self, key: str, **params: Any) -> str:
        """The UI word for ``key`` (the key itself when unknown), formatted with ``params``."""
        text = self._text.get(key) or TEXT["de"].get(key) or key
        return text.format(**params) if params else text

    def title(self, incident: Mapping[str, Any]) -> str:
        """An incident's title in this language from ``code``/``params``, else its stored title."""
        return render_title(incident.get("code"), incident.get("params"), self.lang, str(incident.get("title") or ""))

    def time(self, stored: str | None) -> str:
        """A stored UTC time as Berlin local time: "02.12.2026 14:05" (en: "2026-12-02 14:05")."""
        moment = _parse(stored)
        if moment is None:
            return DASH
        local = moment.astimezone(BERLIN)
        return local.strftime("%d.%m.%Y %H:%M") if self.lang == "de" else local.strftime("%Y-%m-%d %H:%M")

    def ago(self, stored: str | None) -> str:
        """How long ago something happened: "vor 3 Min." / "3 min ago"; "nie" for None."""
        moment = _parse(stored)
        if moment is None:
            return self("never")
        span = duration(self.now - moment, self.lang)
        return f"vor {span}" if self.lang == "de" else f"{span} ago"

    def since(self, stored: str | None) -> str:
        """How long something has lasted: "seit 3 Std." / "for 3 h"; DASH for None."""
        moment = _parse(stored)
        if moment is None:
            return DASH
        span = duration(self.now - moment, self.lang)
        return f"seit {span}" if self.lang == "de" else f"for {span}"

    def clock(self) -> str:
        """The time of day now in Berlin: "14:05:09"."""
        return self.now.astimezone(BERLIN).strftime("%H:%M:%S")

    # The values below come from agents' snapshots: a key may be missing (a jinja Undefined) or
    # hold another JSON type than expected; each shows as DASH then, never as an error page.

    def term(self, group: str, value: object) -> str:
        """A stored term (an AP state, a device class) in the reader's language; unknown ones as they are."""
        if not isinstance(value, str):
            return DASH
        return _TERMS.get(self.lang, {}).get(f"{group}.{value}", value)

    def span(self, seconds: object) -> str:
        """A duration in seconds in human form ("46 Tage", "3 Std."); DASH for anything but a finite number."""
        value = _finite(seconds)
        return DASH if value is None else duration(timedelta(seconds=max(0.0, value)), self.lang)

    def number(self, number: object, digits: int = 0, unit: str = "") -> str:
        """A number the reader's way (decimal comma in German), with a unit: "412 W", "0,4 W"."""
        value = _finite(number)
        if value is None:
            return DASH
        text = f"{value:,.{digits}f}"
        if text.lstrip("-").strip("0.,") == "":
            text = text.lstrip("-")  # a value that rounds to zero is shown as 0, never "-0"
        if self.lang == "de":
            text = text.replace(",", "\u2009").replace(".", ",")  # thin space groups thousands
        return f"{text} {unit}".strip()


# Terms the agents send as values: the controller's AP states and the mDNS device classes.
_TERMS: dict[str, dict[str, str]] = {
    "de": {
        "ap_state.connected": "verbunden",
        "ap_state.disconnected": "getrennt",
        "ap_state.pending": "wartet auf Übernahme",
        "ap_state.upgrading": "Update läuft",
        "ap_state.provisioning": "wird eingerichtet",
        "ap_state.heartbeat_missed": "Lebenszeichen fehlt",
        "ap_state.adopting": "wird übernommen",
        "ap_state.isolated": "isoliert",
        "device_class.tablet": "Tablets",
        "device_class.airplay": "AirPlay-Empfänger",
        "device_class.printer": "Drucker",
        "device_class.meter": "Strommesser",
        "device_class.chromecast": "Chromecast",
        "device_class.nas": "Netzwerkspeicher",
        "device_class.ap": "Access Points",
        "device_class.other": "Sonstige",
    },
    "en": {
        "device_class.tablet": "Tablets",
        "device_class.airplay": "AirPlay receivers",
        "device_class.printer": "Printers",
        "device_class.meter": "Power meters",
        "device_class.nas": "Network storage",
        "device_class.ap": "Access points",
        "device_class.other": "Other",
    },
}


def _finite(value: object) -> float | None:
    """A real, finite number (a bool, a string or a missing value is not), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _parse(stored: object) -> datetime | None:
    if not isinstance(stored, str) or not stored:
        return None
    try:
        return from_iso(stored)
    except MalformedError:
        return None


def duration(span: timedelta, lang: str) -> str:
    """``span`` in its largest sensible unit: "45 Sek.", "12 Min.", "3 Std.", "46 Tage" (en: "45 s" …)."""
    seconds = max(0, int(span.total_seconds()))
    de = lang == "de"
    if seconds < 60:
        return f"{seconds} Sek." if de else f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} Min." if de else f"{seconds // 60} min"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} Std." if de else f"{seconds // 3600} h"
    days = seconds // 86400
    return f"{days} Tage" if de else f"{days} days"

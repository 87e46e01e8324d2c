"""What an alert says: the facts of an incident, and the one function that words them.

``compose`` is the single place where messages get their text (German by default, English
available). An incident's title is rendered from its ``code`` and ``params`` through the shared
catalogue (``protocol/messages.py``) in the message's language; an incident without a code (an
older agent) keeps the English ``title`` it came with.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from protocol.messages import render_title

KINDS = ("opened", "acknowledged", "resolved", "digest")


@dataclass(frozen=True, slots=True)
class IncidentFacts:
    """An incident as a message describes it; times RFC 3339 UTC text (``opened_at`` may be None)."""

    school_id: str
    school_name: str
    carrier: str
    incident_id: str
    origin: str
    key: str | None
    category: str
    severity: str
    title: str
    subject: str | None
    opened_at: str | None
    acknowledged_by: str | None = None
    acknowledged_at: str | None = None
    resolved_at: str | None = None
    code: str | None = None
    params: Mapping[str, Any] | None = None

    def title_in(self, lang: str) -> str:
        """The title in ``lang`` from the incident's code and params (protocol.messages), else as it came."""
        return render_title(self.code, self.params, lang, self.title)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> IncidentFacts:
        """From an incident row of ``Transaction.alert_candidates`` (with carrier and school_name)."""
        return cls(
            school_id=str(row["school_id"]),
            school_name=str(row["school_name"]),
            carrier=str(row["carrier"]),
            incident_id=str(row["incident_id"]),
            origin=str(row["origin"]),
            key=row["key"],
            category=str(row["category"]),
            severity=str(row["severity"]),
            title=str(row["title"]),
            subject=row["subject"],
            opened_at=row["opened_at"],
            acknowledged_by=row["acknowledged_by"],
            acknowledged_at=row["acknowledged_at"],
            resolved_at=row["resolved_at"],
            code=row.get("code"),
            params=row.get("params"),
        )

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> IncidentFacts:
        """From ``to_json``'s output (as kept in the outbox); unknown keys are ignored."""
        values: dict[str, Any] = {name: data.get(name) for name in cls.__dataclass_fields__}
        return cls(**values)

    def to_json(self) -> dict[str, Any]:
        """A JSON object of every field."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Message:
    """A worded alert: a one-line ``subject`` and a plain-text ``text`` (lines joined with \\n)."""

    subject: str
    text: str
    language: str


_SEVERITY = {
    "de": {"critical": "KRITISCH", "warning": "Warnung", "info": "Hinweis"},
    "en": {"critical": "CRITICAL", "warning": "Warning", "info": "Info"},
}
_LABELS = {
    "de": {
        "school": "Schule", "carrier": "Schulträger", "severity": "Schwere", "category": "Bereich",
        "subject": "Betrifft", "since": "Seit", "acked": "Quittiert", "resolved": "Behoben",
        "link": "In Schulwart", "by": "von",
    },
    "en": {
        "school": "School", "carrier": "Carrier", "severity": "Severity", "category": "Category",
        "subject": "Subject", "since": "Since", "acked": "Acknowledged", "resolved": "Resolved",
        "link": "In Schulwart", "by": "by",
    },
}  # fmt: skip
_PREFIX = {
    "de": {"opened": "", "acknowledged": "Quittiert: ", "resolved": "Behoben: "},
    "en": {"opened": "", "acknowledged": "Acknowledged: ", "resolved": "Resolved: "},
}
_INTRO = {
    "de": {
        "opened": "Schulwart meldet eine neue Störung.",
        "acknowledged": "Die Störung wurde quittiert.",
        "resolved": "Die Störung ist behoben.",
    },
    "en": {
        "opened": "Schulwart reports a new incident.",
        "acknowledged": "The incident was acknowledged.",
        "resolved": "The incident is resolved.",
    },
}


def one_line(text: str, limit: int = 200) -> str:
    """Control characters (a newline in an agent's title) as spaces, cut to ``limit``: safe in a header."""
    clean = "".join(" " if ord(c) < 32 or 127 <= ord(c) < 160 or c in "\u2028\u2029" else c for c in text)
    return clean if len(clean) <= limit else clean[: limit - 1] + "…"


def _local(text: str | None, zone: ZoneInfo) -> str:
    if not text:
        return "-"
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text[:40]
    return moment.astimezone(zone).strftime("%d.%m.%Y %H:%M")


def school_link(public_url: str, school_id: str) -> str:
    """Where central shows the school (its read API until the dashboard has a page per school)."""
    return f"{public_url.rstrip('/')}/v1/schools/{quote(school_id, safe='')}"


def compose(
    kind: str,
    incidents: Sequence[IncidentFacts],
    *,
    language: str = "de",
    public_url: str,
    zone: ZoneInfo,
    cause: str = "",
) -> Message:
    """The subject and text of one alert (the single place that words them).

    ``kind`` is opened, acknowledged or resolved (``incidents`` holds that one incident) or digest
    (``incidents`` are the members, ``cause`` their common category and key family). ``language``
    ``de`` or ``en`` (anything else falls back to German); times are shown local in ``zone``.
    Raises ValueError for an unknown kind or an empty ``incidents``.
    """
    lang = language if language in _LABELS else "de"
    labels, severity_names = _LABELS[lang], _SEVERITY[lang]
    if not incidents or kind not in KINDS:
        raise ValueError(f"cannot word {kind!r} with {len(incidents)} incidents")
    if kind == "digest":
        schools = sorted({i.school_id for i in incidents})
        worst = max(incidents, key=lambda i: ("info", "warning", "critical").index(i.severity)).severity
        if lang == "de":
            subject = (
                f"[Schulwart] {severity_names[worst]}: {len(incidents)} Störungen ({cause}) an {len(schools)} Schulen"
            )
            intro = f"Eine gemeinsame Ursache? {len(incidents)} gleichartige Störungen ({cause}) in kurzer Zeit:"
        else:
            subject = (
                f"[Schulwart] {severity_names[worst]}: {len(incidents)} incidents ({cause}) at {len(schools)} schools"
            )
            intro = f"One cause? {len(incidents)} incidents of one kind ({cause}) within a short time:"
        subject = one_line(subject, 240)
        lines = [intro, ""]
        lines += [
            f"- {i.school_name} ({i.carrier}): {one_line(i.title_in(lang), 160)} "
            f"[{severity_names.get(i.severity, i.severity)}, "
            f"{labels['since'].lower()} {_local(i.opened_at, zone)}] {school_link(public_url, i.school_id)}"
            for i in incidents
        ]
        return Message(subject, "\n".join(lines) + "\n", lang)
    incident = incidents[0]
    severity = severity_names.get(incident.severity, incident.severity)
    title = one_line(incident.title_in(lang), 160)
    subject = one_line(f"[Schulwart] {_PREFIX[lang][kind]}{severity}: {incident.school_name} \u2013 {title}", 240)
    lines = [
        _INTRO[lang][kind],
        "",
        f"{labels['school']}: {incident.school_name} ({incident.school_id})",
        f"{labels['carrier']}: {incident.carrier}",
        f"{labels['severity']}: {severity}",
        f"{labels['category']}: {incident.category}",
    ]
    if incident.subject:
        lines.append(f"{labels['subject']}: {one_line(incident.subject, 160)}")
    lines.append(f"{labels['since']}: {_local(incident.opened_at, zone)}")
    if kind == "acknowledged":
        by = f" {labels['by']} {incident.acknowledged_by}" if incident.acknowledged_by else ""
        lines.append(one_line(f"{labels['acked']}: {_local(incident.acknowledged_at, zone)}{by}"))
    if kind == "resolved":
        lines.append(f"{labels['resolved']}: {_local(incident.resolved_at, zone)}")
    lines += ["", f"{labels['link']}: {school_link(public_url, incident.school_id)}"]
    return Message(subject, "\n".join(lines) + "\n", lang)

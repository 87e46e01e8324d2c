"""The staff dashboard's pages: overview (``/``), school detail, incidents, and the incident actions.

Every page needs a staff session (``central.web.auth``); a carrier user sees and acts only
on its carrier's schools, and another carrier's school is answered 404 exactly like one that
does not exist. Forms are POSTs with the session's CSRF token. Pages are rendered by jinja2
with autoescape, so names from agents and staff are text, never markup.
"""

from __future__ import annotations

import json
import logging
import math
from collections import defaultdict
from datetime import date, datetime, time, timedelta
from typing import Any
from urllib.parse import quote

from aiohttp import web

from central.agent_config import effective_for
from central.errors import NotFoundError
from central.storage.interface import IncidentQuery, SessionRow
from central.timestamps import iso
from central.web import charts, views
from central.web.appkeys import CLOCK, CONFIG, STORE
from central.web.auth import csrf_ok, require_session, safe_next, viewer
from central.web.i18n import BERLIN
from central.web.pages import error_page, page, page_context, read_form, render
from protocol.errors import MalformedError
from protocol.events import CATEGORIES, SEVERITIES

log = logging.getLogger(__name__)

MAX_NOTE = 2000
RECENT = timedelta(days=7)
USUAL_TABLETS = timedelta(days=14)  # "usual": tablets seen within this period
MAX_LISTED_INCIDENTS = 500


def _carrier_scope(session: SessionRow) -> str | None:
    return viewer(session).carrier


def _choice(value: str | None, allowed: tuple[str, ...] | frozenset[str], what: str) -> str | None:
    if value in (None, ""):
        return None
    if value not in allowed:
        raise MalformedError(f"{what} must be one of {', '.join(sorted(allowed))}", reason="bad_query")
    return value


# --------------------------------------------------------------------------- overview


@page
async def overview(request: web.Request) -> web.StreamResponse:
    """GET / : every school worst first, grouped by carrier; ``?fragment=1`` gives only the live part."""
    session = require_session(request)
    config, store, now = request.app[CONFIG], request.app[STORE], request.app[CLOCK].now()
    query = request.query
    scope = _carrier_scope(session)
    status = _choice(query.get("status"), views.STATUSES, "status")
    sort = _choice(query.get("sort"), views.SORT_COLUMNS, "sort") or "worst"
    descending = query.get("dir") == "desc"
    rows = await store.overview(scope, iso(views.local_midnight(now)), iso(now - USUAL_TABLETS))
    lines = views.school_lines(rows, now, config.silent_window, config.clock_skew_flag)
    carriers = sorted({line.carrier for line in lines}, key=str.casefold)
    carrier = query.get("carrier") or None
    shown = views.filter_lines(lines, carrier, status, query.get("q"))
    context = page_context(request, session)
    words = context["w"]
    # Formatted here, not by calls from the template: a call inside jinja costs several times more,
    # and the overview has one row per school (2,000 for a large carrier).
    cells = {
        s.id: ("/schools/" + quote(s.id, safe=""), words.ago(s.last_report_at), words.time(s.last_report_at))
        for s in shown
    }
    context.update(
        cells=cells,
        counts=views.status_counts(views.filter_lines(lines, carrier, None, None)),
        critical=sum(line.critical for line in lines if not carrier or line.carrier == carrier),
        carriers=carriers,
        statuses=views.STATUSES,
        carrier=carrier,
        status=status,
        q=query.get("q", "")[:100],
        sort=sort,
        descending=descending,
        shown=len(shown),
        total=len(lines),
        groups=views.group_by_carrier(shown) if sort == "worst" else None,
        lines=views.sort_lines(shown, sort, descending) if sort != "worst" else None,
        query_string=request.query_string,
        filter_query={k: v for k, v in (("carrier", carrier), ("status", status), ("q", query.get("q"))) if v},
    )
    template = "overview_live.html" if query.get("fragment") == "1" else "overview.html"
    return render(request, template, context)


# --------------------------------------------------------------------------- school


@page
async def school(request: web.Request) -> web.StreamResponse:
    """GET /schools/{id}: incidents with history, APs, cabinets (chart, nights), devices, host, agent."""
    session = require_session(request)
    config, store, now = request.app[CONFIG], request.app[STORE], request.app[CLOCK].now()
    school_id = request.match_info["school_id"]
    rows = [r for r in await store.overview(_carrier_scope(session), iso(views.local_midnight(now)),
                                            iso(now - USUAL_TABLETS)) if r.summary.school.id == school_id]  # fmt: skip
    if not rows:
        return error_page(request, session, 404, page_context(request, session)["w"]("not_found"))
    try:
        days = int(request.query.get("days", "14"))
    except ValueError:
        days = -1
    if not 1 <= days <= 365:
        raise MalformedError("days must be a whole number of days within 1..365", reason="bad_query")
    line = views.school_lines(rows, now, config.silent_window, config.clock_skew_flag)[0]
    agents = [a for a in await store.list_agents(school_id) if not a.revoked]
    snapshot: dict[str, Any] = {}
    snapshot_at = None
    for agent in agents:
        text, at = await store.agent_snapshot(agent.agent_id)
        if text is not None and at is not None and (snapshot_at is None or at > snapshot_at):
            snapshot, snapshot_at = json.loads(text), at
    incidents = await store.list_incidents(IncidentQuery(status=None, school_id=school_id, limit=MAX_LISTED_INCIDENTS))
    recent = iso(now - RECENT)
    incidents = [i for i in incidents if i["status"] == "open" or (i["updated_at"] or "") >= recent]
    incidents.sort(key=lambda i: (i["status"] != "open", {"critical": 0, "warning": 1}.get(i["severity"], 2)))
    log_by: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for entry in await store.incident_log(school_id):
        log_by[(entry["origin"], entry["agent_id"], entry["incident_id"])].append(entry)
    for incident in incidents:
        incident["timeline"] = views.timeline(incident, log_by[(incident["origin"], incident["agent_id"],
                                                                 incident["incident_id"])])  # fmt: skip
    samples = await store.samples(school_id, iso(now - RECENT))
    by_series: dict[str, list[Any]] = defaultdict(list)
    for sample in samples:
        by_series[sample.series].append(sample)
    context = page_context(request, session)
    lang = context["lang"]
    cabinets = []
    section = snapshot.get("cabinets")
    listed = section.get("cabinets") if isinstance(section, dict) else None
    known: dict[str, Any] = dict(listed) if isinstance(listed, dict) else {}
    for series in by_series:  # a cabinet with power history but absent from the newest snapshot
        if series.startswith("cabinet:"):
            known.setdefault(series.partition(":")[2], {})
    for cabinet_id, values in sorted(known.items()):
        if not isinstance(values, dict):
            continue
        points = by_series.get(f"cabinet:{cabinet_id}", [])
        label = str(values.get("name") or cabinet_id)
        cabinets.append(
            {
                "id": cabinet_id,
                "name": label,
                "room": values.get("room"),
                "power_w": values.get("power_w"),
                "in_window": values.get("in_window"),
                "ok": values.get("ok"),
                "chart": charts.power_chart(points, now, lang, label),
                "nights": views.cabinet_nights(points, now.astimezone(BERLIN).date()),
            }
        )
    wlan = snapshot.get("wlan")
    listed_aps = wlan.get("aps") if isinstance(wlan, dict) else None
    aps: list[Any] = listed_aps if isinstance(listed_aps, list) else []
    devices = await store.list_devices(school_id)
    cutoff = iso(now - timedelta(days=days))
    not_seen = sorted(
        (d for d in devices if d["class"] == "tablet" and (d["last_seen_at"] or "") < cutoff),
        key=lambda d: d["last_seen_at"] or "",
    )
    count_days, count_table = views.daily_counts(samples)
    outbox = _facts(snapshot.get("outbox"), oldest_unsent_age_s=("oldest_unsent_age_s",), depth=("depth",))
    host = _facts(
        snapshot.get("host"),
        disk_percent=("root", "percent"),
        disk_free_bytes=("root", "free_bytes"),
        memory_percent=("memory_available_percent",),
        load1=("load", 0),
        cpu_count=("cpu_count",),
        uptime_s=("uptime_s",),
    )
    school_row = await store.get_school(school_id)
    config_version = (await effective_for(store, config, school_row)).version if school_row else None
    context.update(
        school=line,
        agents=agents,
        config_version=config_version,
        snapshot_at=snapshot_at,
        incidents=incidents,
        cabinets=cabinets,
        aps=[ap for ap in aps if isinstance(ap, dict)],
        not_seen=not_seen[:500],
        not_seen_total=len(not_seen),
        days=days,
        count_days=count_days,
        count_table=count_table,
        outbox=outbox,
        host=host,
        skew_flag=config.clock_skew_flag.total_seconds(),
        next=request.path_qs,
        one_day=timedelta(days=1),
    )
    return render(request, "school.html", context)


# --------------------------------------------------------------------------- incidents


@page
async def incidents(request: web.Request) -> web.StreamResponse:
    """GET /incidents: incidents across schools, filtered by state, severity, category, carrier, school, since."""
    session = require_session(request)
    store, query = request.app[STORE], request.query
    state = _choice(query.get("state"), ("open", "resolved", "all"), "state") or "open"
    severity = _choice(query.get("severity"), SEVERITIES, "severity")
    category = _choice(query.get("category"), CATEGORIES, "category")
    since = query.get("since") or None
    since_stored = None
    if since is not None:
        try:
            day = date.fromisoformat(since)
        except ValueError:
            raise MalformedError("since must be a date (YYYY-MM-DD)", reason="bad_query") from None
        since_stored = iso(datetime.combine(day, time(0), tzinfo=BERLIN))
    scope = _carrier_scope(session)
    carrier = scope or query.get("carrier") or None
    school_id = query.get("school") or None
    rows = await store.list_incidents(
        IncidentQuery(
            status=None if state == "all" else state,
            school_id=school_id,
            carrier=carrier,
            severity=severity,
            since=since_stored,
            limit=MAX_LISTED_INCIDENTS,
            category=category,
        )
    )
    # The hotline reads the worst first; within a severity the newest change first (as stored).
    rows.sort(key=lambda r: {"critical": 0, "warning": 1}.get(r["severity"], 2))
    schools = await store.list_schools(scope)
    context = page_context(request, session)
    context.update(
        incidents=rows,
        names={s.id: s.name for s in schools},
        schools=sorted(schools, key=lambda s: s.name.casefold()),
        carriers=sorted({s.carrier for s in schools}, key=str.casefold),
        state=state,
        severity=severity,
        category=category,
        carrier=carrier,
        school_id=school_id,
        since=since or "",
        severities=("critical", "warning", "info"),
        categories=sorted(CATEGORIES),
        next=request.path_qs,
        scoped=scope is not None,
    )
    return render(request, "incidents.html", context)


@page
async def incident_action(request: web.Request) -> web.StreamResponse:
    """POST /incidents/action: acknowledge or add a note from central (CSRF-checked), then go back."""
    session = require_session(request)
    form = await read_form(request)
    words = page_context(request, session)["w"]
    if not csrf_ok(session.csrf, form.get("csrf")):
        return error_page(request, session, 403, words("csrf_failed"))
    school_id, origin, agent_id, incident_id = (
        str(form.get(name, ""))[:200] for name in ("school", "origin", "agent", "incident")
    )
    action = form.get("action")
    store, now = request.app[STORE], iso(request.app[CLOCK].now())
    row = await store.get_incident(school_id, origin, agent_id, incident_id)
    scope = _carrier_scope(session)
    if row is None or (scope is not None and row["carrier"] != scope):
        raise NotFoundError(words("incident_not_found"))
    by = session.user.name
    if action == "ack":
        await store.staff_acknowledge(school_id, origin, agent_id, incident_id, by, now)
    elif action == "note":
        text = str(form.get("text", "")).strip()
        if not text or len(text) > MAX_NOTE:
            raise MalformedError(f"{words('bad_input')}: 1..{MAX_NOTE}", reason="bad_form")
        await store.staff_note(school_id, origin, agent_id, incident_id, by, text, now)
    else:
        raise MalformedError(words("bad_input"), reason="bad_form")
    raise web.HTTPSeeOther(safe_next(str(form.get("next", "/incidents"))))


@page
async def dead_letters(request: web.Request) -> web.StreamResponse:
    """GET /alerts: the alert messages that failed for good (the dead-letter list), each with a retry button.

    For admins and staff only: a message may concern several carriers' schools (a digest).
    """
    session = require_session(request)
    context = page_context(request, session)
    if _carrier_scope(session) is not None:
        return error_page(request, session, 404, context["w"]("not_found"))
    context.update(deliveries=await request.app[STORE].list_alert_deliveries("dead"), next=request.path_qs)
    return render(request, "alerts.html", context)


@page
async def dead_letter_retry(request: web.Request) -> web.StreamResponse:
    """POST /alerts/retry: a dead message back in the queue (CSRF-checked); the alert worker sends it next."""
    session = require_session(request)
    form = await request.post()
    words = page_context(request, session)["w"]
    if not csrf_ok(session.csrf, form.get("csrf")):
        return error_page(request, session, 403, words("csrf_failed"))
    if _carrier_scope(session) is not None:
        return error_page(request, session, 404, words("not_found"))
    raw = str(form.get("id", ""))
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 18):
        raise MalformedError(words("bad_input"), reason="bad_form")
    requeued = await request.app[STORE].requeue_alert_delivery(int(raw), iso(request.app[CLOCK].now()))
    if requeued is None:
        raise NotFoundError(words("alert_not_dead"))
    log.info("alert message %s queued again by %s (channel %s, school %s)", requeued.id, session.user.name,
             requeued.channel, requeued.school_id or "-")  # fmt: skip
    raise web.HTTPSeeOther("/alerts")


def _facts(section: object, **paths: tuple[str | int, ...]) -> dict[str, float | None] | None:
    """Numbers picked out of an agent's snapshot section by path; a missing or non-number value is None.

    An agent of another version may leave a key out or send another JSON type: the page shows a
    dash for it instead of failing. None when the section itself is missing.
    """
    if not isinstance(section, dict):
        return None
    out: dict[str, float | None] = {}
    for name, path in paths.items():
        value: object = section
        for step in path:
            if isinstance(step, int):
                value = value[step] if isinstance(value, list) and len(value) > step else None
            else:
                value = value.get(step) if isinstance(value, dict) else None
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        out[name] = float(value) if ok else None  # type: ignore[arg-type]
    return out

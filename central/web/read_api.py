"""The read API for central staff: schools, one school's detail, incidents. Bearer-token auth."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from aiohttp import web

from central.agent_config import effective_for
from central.aggregate import device_summary, school_status
from central.enrollment import hash_secret
from central.errors import NotFoundError, UnauthorizedError
from central.storage.interface import AgentRow, ApiTokenRow, IncidentQuery, SchoolSummary
from central.timestamps import iso
from central.web.appkeys import CLOCK, CONFIG, STORE
from central.web.auth import viewer
from central.web.pages import current_session
from protocol.encoding import dumps
from protocol.errors import MalformedError
from protocol.schema import SEVERITIES, parse_time

_STATES = {"open": "open", "resolved": "resolved", "all": None}
MAX_LIMIT = 5000


def _json(body: object) -> web.Response:
    return web.Response(body=dumps(body), content_type="application/json")


async def authorize(request: web.Request) -> ApiTokenRow:
    """Who reads: a staff session (its carrier binding) or the bearer token's row; UnauthorizedError when neither."""
    session = current_session(request)
    if session is not None:
        return viewer(session)
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    # Tokens are printable ASCII; header bytes that are not UTF-8 arrive as surrogate escapes.
    if scheme.lower() != "bearer" or not token.strip() or len(token) > 256 or not token.isascii():
        raise UnauthorizedError("a bearer token is required (schulwart-central api-token create)")
    row = await request.app[STORE].find_api_token(hash_secret(token.strip()))
    if row is None:
        raise UnauthorizedError("unknown bearer token")
    return row


def _carrier_filter(token: ApiTokenRow, asked: str | None) -> tuple[str | None, bool]:
    """(carrier to filter by, whether anything can match) for this token and query."""
    if token.carrier is None:
        return asked, True
    return token.carrier, asked is None or asked == token.carrier


def _school_json(summary: SchoolSummary, now: datetime, request: web.Request) -> dict[str, Any]:
    config = request.app[CONFIG]
    return {
        "id": summary.school.id,
        "name": summary.school.name,
        "carrier": summary.school.carrier,
        "status": school_status(summary, now, config.silent_window),
        "open_incidents": summary.open_incidents,
        "open_by_severity": {
            "critical": summary.open_critical,
            "warning": summary.open_warning,
            "info": summary.open_info,
        },
        "last_report_at": summary.last_report_at or summary.history_last_report_at,
        "agent_count": summary.agents,
        "revoked_agent": _revoked_json(summary),
    }


def _revoked_json(summary: SchoolSummary) -> dict[str, Any] | None:
    """The school's newest revoked agent and, when no agent is left, how to enroll a replacement."""
    revoked = summary.last_revoked
    if revoked is None:
        return None
    school = summary.school.id
    return {
        "agent_id": revoked.agent_id,
        "revoked_at": revoked.at,
        "revoked_by": revoked.by,
        "replacement": None
        if summary.agents
        else (
            f"make a code with `schulwart-central enroll-code --school {school}`, then on the school server "
            "`schulwart-agent enroll --force --central URL --code CODE`"
        ),
    }


def incident_json(row: dict[str, Any]) -> dict[str, Any]:
    """An incident as the API shows it."""
    return {
        "id": row["incident_id"],
        "school_id": row["school_id"],
        "carrier": row.get("carrier"),
        "agent_id": row["agent_id"] or None,
        "origin": row["origin"],
        "key": row["key"],
        "category": row["category"],
        "severity": row["severity"],
        "title": row["title"],
        "code": row.get("code"),
        "params": row.get("params"),
        "subject": row["subject"],
        "state": row["status"],
        "opened_at": row["opened_at"],
        "resolved_at": row["resolved_at"],
        "acknowledged_by": row["acknowledged_by"],
        "acknowledged_at": row["acknowledged_at"],
        "notes": row["notes"],
        "updated_at": row["updated_at"],
    }


def _agent_json(agent: AgentRow, skew_flag_s: float) -> dict[str, Any]:
    return {
        "agent_id": agent.agent_id,
        "acked_seq": agent.acked_seq,
        "last_report_at": agent.last_report_at,
        "version": agent.version,
        "hostname": agent.hostname,
        "enrolled_at": agent.enrolled_at,
        "revoked": agent.revoked,
        "revoked_at": agent.revoked_at,
        "revoked_by": agent.revoked_by,
        "clock_skew_s": agent.clock_skew_s,
        "clock_skew_flagged": agent.clock_skew_s is not None and abs(agent.clock_skew_s) > skew_flag_s,
        # The central configuration version the agent runs (None before it said) and the dotted
        # keys its school's own file sets otherwise: a school that deviates shows it here.
        "config_version": agent.config_version,
        "config_overrides": list(agent.config_overrides),
    }


async def list_schools(request: web.Request) -> web.Response:
    """GET /v1/schools[?carrier=]: the health summary of every school the token may see."""
    token = await authorize(request)
    carrier, possible = _carrier_filter(token, request.query.get("carrier"))
    now = request.app[CLOCK].now()
    summaries = await request.app[STORE].school_summaries(carrier=carrier) if possible else []
    return _json({"schools": [_school_json(s, now, request) for s in summaries]})


async def school_detail(request: web.Request) -> web.Response:
    """GET /v1/schools/{id}: summary plus agents, devices, incidents, snapshot and clock skew."""
    token = await authorize(request)
    store, config = request.app[STORE], request.app[CONFIG]
    school_id = request.match_info["school_id"]
    found = await store.school_summaries(carrier=token.carrier, school_id=school_id)
    if not found:
        raise NotFoundError(f"no school {school_id[:64]!r}")
    now = request.app[CLOCK].now()
    body = _school_json(found[0], now, request)
    agents = await store.list_agents(school_id)
    skew_flag = config.clock_skew_flag.total_seconds()
    body["agents"] = [_agent_json(a, skew_flag) for a in agents]
    school_row = await store.get_school(school_id)
    if school_row is not None:
        effective = await effective_for(store, config, school_row)
        body["config"] = {
            "version": effective.version,
            "overrides": sorted({k for a in agents if not a.revoked for k in a.config_overrides}),
        }
    devices = await store.list_devices(school_id)
    body["devices"] = [
        {k: d[k] for k in ("device_id", "agent_id", "class", "state", "data", "last_seen_at", "updated_at")}
        for d in devices
    ]
    body["device_summary"] = device_summary(devices)
    incidents = await store.list_incidents(IncidentQuery(status=None, school_id=school_id, limit=500))
    incidents.sort(key=lambda r: r["status"] != "open")  # open first, each group newest change first
    body["incidents"] = [incident_json(r) for r in incidents]
    body["snapshot"] = await _newest_snapshot(request, agents)
    body["dropped_events"] = _dropped_events(body["snapshot"])
    skews = [a.clock_skew_s for a in agents if a.clock_skew_s is not None and not a.revoked]
    worst = max(skews, key=abs) if skews else None
    body["clock_skew"] = {
        "seconds": worst,
        "flagged": worst is not None and abs(worst) > skew_flag,
        "threshold_s": skew_flag,
    }
    return _json(body)


def _dropped_events(snapshot: dict[str, Any] | None) -> int:
    """Events the agent could not queue (full disk), as its newest snapshot or state says; 0 if unknown."""
    data = snapshot.get("data") if snapshot else None
    agent = data.get("agent") if isinstance(data, dict) else None
    value = agent.get("dropped_events") if isinstance(agent, dict) else None
    return value if type(value) is int and value >= 0 else 0


async def _newest_snapshot(request: web.Request, agents: list[AgentRow]) -> dict[str, Any] | None:
    best: dict[str, Any] | None = None
    for agent in agents:
        if agent.revoked:
            continue
        text, at = await request.app[STORE].agent_snapshot(agent.agent_id)
        if text is not None and at is not None and (best is None or at > best["at"]):
            best = {"agent_id": agent.agent_id, "at": at, "data": json.loads(text)}
    return best


def _incident_query(request: web.Request, token: ApiTokenRow) -> IncidentQuery | None:
    """The filters of the query string; None when the token's carrier rules out every match."""
    query = request.query
    state = query.get("state", "open")
    if state not in _STATES:
        raise MalformedError("state must be open, resolved or all", reason="bad_query")
    severity = query.get("severity")
    if severity is not None and severity not in SEVERITIES:
        raise MalformedError(f"severity must be one of {sorted(SEVERITIES)}", reason="bad_query")
    since = query.get("since")
    if since is not None:
        since = iso(parse_time(since, field_name="since"))
    raw_limit = query.get("limit", "1000")
    # ASCII digits only: isdigit() accepts "²" (int() refuses it) and Arabic-Indic digits (int() reads them).
    if not (raw_limit.isascii() and raw_limit.isdigit()) or len(raw_limit) > 6:
        raise MalformedError("limit must be an integer", reason="bad_query")
    limit = int(raw_limit)
    if not 1 <= limit <= MAX_LIMIT:
        raise MalformedError(f"limit must be within 1..{MAX_LIMIT}", reason="bad_query")
    carrier, possible = _carrier_filter(token, query.get("carrier"))
    if not possible:
        return None
    return IncidentQuery(
        status=_STATES[state],
        school_id=query.get("school"),
        carrier=carrier,
        severity=severity,
        since=since,
        limit=limit,
    )


async def list_incidents(request: web.Request) -> web.Response:
    """GET /v1/incidents?state=open|resolved|all&school=&carrier=&severity=&since=&limit=."""
    token = await authorize(request)
    query = _incident_query(request, token)
    rows = await request.app[STORE].list_incidents(query) if query is not None else []
    return _json({"incidents": [incident_json(r) for r in rows]})

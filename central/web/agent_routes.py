"""The routes agents call: enroll, send reports and state, fetch their signed configuration, rotate their key."""

from __future__ import annotations

from aiohttp import web

from central.agent_config import config_for_agent, etag_matches
from central.enrollment import MAX_ENROLL_BODY
from central.errors import NotFoundError
from central.rotation import MAX_ROTATION_BODY, rotate_key
from central.web.appkeys import CLOCK, CONFIG, ENROLLER, INGESTOR, KEYS, METRICS, STORE
from central.web.body import check_encoding, decode_content, read_capped
from protocol.encoding import dumps
from protocol.errors import IdentityError, RevokedKeyError, UnknownKeyError
from protocol.httpsig import parse_request_signature, verify_request
from protocol.keys import stored_public_key


def _json(body: object, status: int = 200) -> web.Response:
    return web.Response(body=dumps(body), status=status, content_type="application/json")


async def enroll(request: web.Request) -> web.Response:
    """POST /v1/enroll: a one-time code and a public key for an agent identity (201)."""
    check_encoding(request.headers.get("Content-Encoding"))
    raw = await read_capped(request, MAX_ENROLL_BODY)
    body = decode_content(raw, request.headers.get("Content-Encoding"), MAX_ENROLL_BODY)
    answer = await request.app[ENROLLER].enroll(body, request.remote or "unknown")
    return _json(answer, status=201)


async def reports(request: web.Request) -> web.Response:
    """POST /v1/reports: a signed report or state envelope, optionally gzip-encoded."""
    config = request.app[CONFIG]
    encoding = request.headers.get("Content-Encoding")
    check_encoding(encoding)
    raw = await read_capped(request, config.max_body_bytes)
    body = decode_content(raw, encoding, config.max_decoded_bytes)
    with request.app[METRICS].ingest_seconds.time():
        result = await request.app[INGESTOR].ingest(body)
    return _json(result.answer())


async def agent_key(request: web.Request) -> web.Response:
    """POST /v1/agents/{agent_id}/key: the agent's new key, announced in an envelope signed by the old one."""
    check_encoding(request.headers.get("Content-Encoding"))
    raw = await read_capped(request, MAX_ROTATION_BODY)
    body = decode_content(raw, request.headers.get("Content-Encoding"), MAX_ROTATION_BODY)
    answer = await rotate_key(request.app[STORE], request.match_info["agent_id"], body, request.app[CLOCK].now())
    return _json(answer)


async def agent_config(request: web.Request) -> web.Response:
    """GET /v1/agents/{agent_id}/config: the agent's settings, signed with the config key.

    Only for the agent itself: the request must carry an HTTP message signature (RFC 9421
    profile of ``protocol.httpsig``) made with the agent's enrolled key within the freshness
    window. ``If-None-Match`` with the current ETag gets ``304``.
    """
    app = request.app
    agent_id = request.match_info["agent_id"]
    signed = parse_request_signature(request.headers)
    agent = await app[STORE].agent_by_keyid(signed.keyid)
    if agent is None:
        raise UnknownKeyError("the request is signed with a key central does not know")
    if agent.agent_id != agent_id:
        raise IdentityError("the request is signed by another agent")
    if agent.revoked:
        raise RevokedKeyError(f"agent {agent_id} is revoked: enroll again")
    now = app[CLOCK].now()
    verify_request(request.method, request.rel_url.raw_path, signed, stored_public_key(agent.public_key),
                   now.timestamp())  # fmt: skip
    school = await app[STORE].get_school(agent.school_id)
    if school is None:  # the agents table references schools: only a hand-edited database gets here
        raise NotFoundError(f"no school {agent.school_id!r}")
    current = await config_for_agent(app[STORE], app[CONFIG], app[KEYS], agent_id, school, now)
    headers = {"ETag": current.etag, "Cache-Control": "no-store"}
    if etag_matches(request.headers.get("If-None-Match"), current.etag):
        return web.Response(status=304, headers=headers)
    return web.Response(
        body=current.envelope(app[KEYS].at(now).config_key), content_type="application/json", headers=headers
    )

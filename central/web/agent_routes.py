"""The routes agents call: enroll, send reports and state, fetch their signed configuration."""

from __future__ import annotations

from aiohttp import web

from central.enrollment import MAX_ENROLL_BODY
from central.errors import NotFoundError
from central.timestamps import iso
from central.web.appkeys import CLOCK, CONFIG, ENROLLER, INGESTOR, KEYS, METRICS, STORE
from central.web.body import check_encoding, decode_content, read_capped
from protocol.encoding import dumps
from protocol.envelope import sign_envelope
from protocol.errors import RevokedKeyError
from protocol.schema import CONFIG_TYPE, build_config_payload


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


async def agent_config(request: web.Request) -> web.Response:
    """GET /v1/agents/{agent_id}/config: the agent's settings, signed with the config key."""
    app = request.app
    agent_id = request.match_info["agent_id"]
    agent = await app[STORE].get_agent(agent_id)
    if agent is None:
        raise NotFoundError(f"no agent {agent_id[:64]!r}")
    if agent.revoked:
        raise RevokedKeyError(f"agent {agent_id} is revoked: enroll again")
    config = app[CONFIG]
    settings: dict[str, object] = {
        **config.sync.to_json(),
        "silent_window_s": int(config.silent_window.total_seconds()),
    }
    # Technician tokens revoked with `token revoke` (and not expired): the agent refuses them.
    settings["revoked_tokens"] = await app[STORE].revoked_token_ids(iso(app[CLOCK].now()))
    payload = build_config_payload(agent_id, config.config_version, app[CLOCK].now(), settings)
    return _json(sign_envelope(payload, CONFIG_TYPE, app[KEYS].config_key))

"""GET /v1/openapi.json: a hand-written OpenAPI 3.1 description of every route."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from protocol.encoding import dumps
from protocol.httpsig import SIGNATURE_INPUT_PATTERN, SIGNATURE_PATTERN

_ERROR = {"$ref": "#/components/schemas/Error"}
# What the server's readers accept, as patterns: base64 in either alphabet, padded or not (the
# server also wants it canonical: unused trailing bits zero, which is what the last character
# classes below say for 32 and 64 bytes), and RFC 3339 with an offset.
_B64 = "[A-Za-z0-9+/_-]"
_BASE64 = f"^({_B64}{{4}})*({_B64}[AQgw](==)?|{_B64}{{2}}[AEIMQUYcgkosw048]=?)?$"
_BASE64_32_BYTES = f"^{_B64}{{42}}[AEIMQUYcgkosw048]=?$"
_BASE64_64_BYTES = f"^{_B64}{{85}}[AQgw](==)?$"
_RFC3339 = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$"


def _refusal(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ERROR}}}


def _ok(description: str, schema: dict[str, Any] | None = None, media: str = "application/json") -> dict[str, Any]:
    return {"description": description, "content": {media: {"schema": schema or {"type": "object"}}}}


_AUTH: list[dict[str, list[str]]] = [{"bearer": []}]


def _page(
    summary: str, *, login: bool = True, path: str | None = None, refusals: dict[str, str] | None = None
) -> dict[str, Any]:
    """A dashboard page: HTML, a redirect to /login without a staff session, an HTML message on bad input.

    ``path`` names a path parameter; ``refusals`` adds statuses (code → description) the route may answer.
    """
    responses: dict[str, Any] = {"200": _ok("page", {"type": "string"}, "text/html")}
    if login:
        responses["302"] = {"description": "no staff session: to /login?next=…"}
    responses["400"] = {"description": "bad input: a page naming it (a form body that cannot be read: JSON)"}
    for status, description in (refusals or {}).items():
        responses[status] = {"description": description}
    operation: dict[str, Any] = {"summary": summary, "responses": responses}
    if path:
        operation["parameters"] = [{"name": path, "in": "path", "required": True, "schema": {"type": "string"}}]
    return operation
_READ_ERRORS = {"401": _refusal("missing or unknown bearer token")}

SPEC: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Schulwart central",
        "version": "1",
        "description": "Enrollment, signed ingest (DSSE, Ed25519), the read API and the staff dashboard's pages. "
        "Reads take a bearer token or a staff session. Every API refusal is "
        '`{"error": "<reason>"}`; sequence refusals add `expected_seq`.',
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {"error": {"type": "string"}, "expected_seq": {"type": "integer"}},
            },
            "Envelope": {
                "description": "DSSE envelope (https://github.com/secure-systems-lab/dsse): exactly these fields, "
                "one Ed25519 signature over PAE(payloadType, payload). Base64 is standard or URL-safe, "
                "padded or not, and canonical.",
                "type": "object",
                "required": ["payloadType", "payload", "signatures"],
                "additionalProperties": False,
                "properties": {
                    "payloadType": {"type": "string", "minLength": 1, "maxLength": 200},
                    "payload": {"type": "string", "minLength": 4, "pattern": _BASE64, "contentEncoding": "base64"},
                    "signatures": {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": 1,
                        "items": {
                            "type": "object",
                            "required": ["keyid", "sig"],
                            "additionalProperties": False,
                            "properties": {
                                "keyid": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                                "sig": {"type": "string", "pattern": _BASE64_64_BYTES},
                            },
                        },
                    },
                },
            },
            "Incident": {
                "type": "object",
                "properties": {
                    name: {"type": ["string", "null"]}
                    for name in (
                        "id",
                        "school_id",
                        "carrier",
                        "agent_id",
                        "origin",
                        "key",
                        "category",
                        "severity",
                        "title",
                        "subject",
                        "state",
                        "opened_at",
                        "resolved_at",
                        "acknowledged_by",
                        "acknowledged_at",
                        "updated_at",
                    )
                }
                | {"notes": {"type": "array", "items": {"type": "object"}}},
            },
            "School": {
                "type": "object",
                "required": ["id", "name", "carrier", "status", "open_incidents", "last_report_at"],
                "properties": {
                    "id": {"type": "string"},
                    "name": {"type": "string"},
                    "carrier": {"type": "string"},
                    "status": {"enum": ["ok", "degraded", "broken", "silent", "new"]},
                    "open_incidents": {"type": "integer"},
                    "open_by_severity": {"type": "object"},
                    "last_report_at": {"type": ["string", "null"]},
                    "agent_count": {"type": "integer"},
                },
            },
        },
    },
    "paths": {
        "/v1/enroll": {
            "post": {
                "summary": "Trade a one-time code and an Ed25519 public key for an agent identity.",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["code", "public_key", "hostname", "agent_version"],
                                "properties": {
                                    "code": {"type": "string", "minLength": 1, "maxLength": 128},
                                    "public_key": {
                                        "type": "string",
                                        "pattern": _BASE64_32_BYTES,
                                        "description": "base64 of the raw 32 bytes (RFC 8032 encoding)",
                                    },
                                    "hostname": {"type": "string", "minLength": 1, "maxLength": 255},
                                    "agent_version": {"type": "string", "minLength": 1, "maxLength": 64},
                                },
                            }
                        }
                    }
                },
                "responses": {
                    "201": _ok("enrolled: agent_id, school_id, carrier, central_public_key, token_public_key, sync"),
                    "400": _refusal(
                        "malformed request; or weak_key: public_key is 32 bytes but not a point of Ed25519 of large "
                        "order (RFC 8032 decoding; small-order points refused) — no schema can say which 32 bytes are"
                    ),
                    "403": _refusal("invalid_code: unknown, used or expired"),
                    "409": _refusal("key_enrolled: this public key is enrolled already"),
                    "429": _refusal("rate_limited: too many wrong codes from this address"),
                    "507": _refusal("store_full: the disk under central's database is full (nothing stored)"),
                },
            }
        },
        "/v1/reports": {
            "post": {
                "summary": "A signed report (events seq_from..seq_to) or state envelope; gzip allowed.",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Envelope"}}},
                },
                "responses": {
                    "200": _ok(
                        "stored or already held",
                        {
                            "type": "object",
                            "properties": {
                                "acked_through": {"type": "integer"},
                                "state": {"enum": ["applied", "stale"]},
                            },
                        },
                    ),
                    "400": _refusal("malformed envelope or payload, unsupported payloadType"),
                    "401": _refusal("unknown_key or bad_signature"),
                    "403": _refusal("revoked_key or identity_mismatch"),
                    "409": _refusal("sequence_gap or sequence_conflict, with expected_seq"),
                    "413": _refusal("too_large: body, decompressed body, event count or field"),
                    "415": _refusal("unsupported_encoding"),
                    "507": _refusal("store_full: the disk under central's database is full (nothing stored; retry)"),
                },
            }
        },
        "/v1/agents/{agent_id}/config": {
            "get": {
                "summary": "The agent's settings as an envelope signed with central's config key.",
                "description": "Only for the agent itself: an HTTP message signature (RFC 9421 profile, see "
                "docs/protocol.md) over method and path, made with the agent's enrolled key within ±300 s "
                "of central's time. If-None-Match with the current ETag gets 304.",
                "parameters": [
                    {"name": "agent_id", "in": "path", "required": True, "schema": {"type": "string"}},
                    {"name": "Signature-Input", "in": "header", "required": True,
                     "schema": {"type": "string", "pattern": f"^{SIGNATURE_INPUT_PATTERN}$"}},
                    {"name": "Signature", "in": "header", "required": True,
                     "schema": {"type": "string", "pattern": f"^{SIGNATURE_PATTERN}$"}},
                    {"name": "If-None-Match", "in": "header", "schema": {"type": "string"}},
                ],
                "responses": {
                    "200": _ok("config envelope", {"$ref": "#/components/schemas/Envelope"}),
                    "304": {"description": "the configuration named by If-None-Match is current"},
                    "400": _refusal("bad_request_signature: the signature headers do not follow the profile"),
                    "401": _refusal("unsigned_request, unknown_key, bad_signature or stale_signature"),
                    "403": _refusal("revoked_key or identity_mismatch (signed by another agent)"),
                    "404": _refusal("not_found"),
                },
            }
        },
        "/v1/agents/{agent_id}/key": {
            "post": {
                "summary": "The agent's new key, announced in an envelope signed by its current key (key rotation).",
                "parameters": [{"name": "agent_id", "in": "path", "required": True, "schema": {"type": "string"}}],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Envelope"}}},
                },
                "responses": {
                    "200": _ok("the key now in force", {
                        "type": "object", "required": ["agent_id", "keyid"],
                        "properties": {"agent_id": {"type": "string"}, "keyid": {"type": "string"}},
                    }),
                    "400": _refusal("malformed, bad_payload, weak_key or unsupported_type"),
                    "401": _refusal("unknown_key, bad_signature or bad_proof"),
                    "403": _refusal("revoked_key or identity_mismatch"),
                    "409": _refusal("key_enrolled: the new key is or was enrolled"),
                    "413": _refusal("too_large"),
                },
            }
        },
        "/v1/schools": {
            "get": {
                "summary": "Health summary per school (a carrier-bound token sees its carrier only).",
                "security": _AUTH,
                "parameters": [{"name": "carrier", "in": "query", "schema": {"type": "string"}}],
                "responses": {
                    "200": _ok(
                        "schools",
                        {
                            "type": "object",
                            "properties": {
                                "schools": {"type": "array", "items": {"$ref": "#/components/schemas/School"}}
                            },
                        },
                    ),
                    **_READ_ERRORS,
                },
            }
        },
        "/v1/schools/{school_id}": {
            "get": {
                "summary": "One school: summary, agents, devices, incidents, snapshot, clock skew.",
                "security": _AUTH,
                "parameters": [{"name": "school_id", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {"200": _ok("school detail"), "404": _refusal("not_found"), **_READ_ERRORS},
            }
        },
        "/v1/incidents": {
            "get": {
                "summary": "Incidents, newest change first.",
                "security": _AUTH,
                "parameters": [
                    {
                        "name": "state",
                        "in": "query",
                        "schema": {"enum": ["open", "resolved", "all"], "default": "open"},
                    },
                    {"name": "school", "in": "query", "schema": {"type": "string"}},
                    {"name": "carrier", "in": "query", "schema": {"type": "string"}},
                    {"name": "severity", "in": "query", "schema": {"enum": ["info", "warning", "critical"]}},
                    {
                        "name": "since",
                        "in": "query",
                        "description": "RFC 3339 with an offset; incidents changed at or after it",
                        "schema": {"type": "string", "format": "date-time", "pattern": _RFC3339},
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 5000, "default": 1000},
                    },
                ],
                "responses": {
                    "200": _ok(
                        "incidents",
                        {
                            "type": "object",
                            "properties": {
                                "incidents": {"type": "array", "items": {"$ref": "#/components/schemas/Incident"}}
                            },
                        },
                    ),
                    "400": _refusal("bad_query"),
                    **_READ_ERRORS,
                },
            }
        },
        "/v1/openapi.json": {"get": {"summary": "This document.", "responses": {"200": _ok("OpenAPI 3.1")}}},
        "/metrics": {
            "get": {
                "summary": "Prometheus text format.",
                "responses": {"200": _ok("metrics", {"type": "string"}, "text/plain")},
            }
        },
        "/healthz": {"get": {"summary": "Liveness.", "responses": {"200": _ok("ok")}}},
        "/": {"get": _page("Staff dashboard: every school worst first (?carrier=&status=&q=&sort=&dir=&fragment=1).")},
        "/schools/{school_id}": {
            "get": _page(
                "Staff dashboard: one school (?days= for tablets not seen).",
                path="school_id",
                refusals={"404": "no such school, or not in the viewer's carrier"},
            )
        },
        "/incidents": {"get": _page("Staff dashboard: incidents across schools (?state=&severity=&category=…).")},
        "/incidents/action": {
            "post": _page(
                "Acknowledge or annotate an incident (form with the session's CSRF).",
                refusals={"403": "CSRF token missing or wrong", "404": "no such incident"},
            )
        },
        "/alerts": {
            "get": _page(
                "Staff dashboard: the alert dead-letter list (admins and staff).",
                refusals={"404": "not for a carrier's staff"},
            )
        },
        "/alerts/retry": {
            "post": _page(
                "Put a dead alert message back in the queue (form: csrf, id).",
                refusals={
                    "303": "queued again: to /alerts",
                    "403": "CSRF token missing or wrong",
                    "404": "not for a carrier's staff, or no such dead message",
                },
            )
        },
        "/login": {
            "get": _page("The login form.", login=False),
            "post": _page(
                "Log in (form: csrf, name, password, next).",
                login=False,
                refusals={
                    "302": "logged in: to next",
                    "401": "wrong name or password",
                    "403": "the login form's CSRF cookie and field do not match",
                    "429": "too many failures from this address or for this name",
                },
            ),
        },
        "/logout": {"post": _page("End the session (form with the session's CSRF).", refusals={"403": "CSRF"})},
        "/static": {
            "get": _page(
                "The dashboard's stylesheet and script, under /static/.",
                login=False,
                refusals={"403": "the folder itself is not listed", "404": "no such file"},
            )
        },
    },
}


async def view(request: web.Request) -> web.Response:
    """GET /v1/openapi.json."""
    return web.Response(body=dumps(SPEC), content_type="application/json")

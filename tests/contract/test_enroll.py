"""docs/protocol.md "Enrollment": POST /v1/enroll."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .conftest import Central, Resp, assert_error, b64, b64url, fresh_source, http, only_line, raw_public

# Ed25519 points of small order (encodings from the literature on small-order keys, e.g. the
# "Taming the many EdDSAs" test set): identity, order-2, order-4, order-8 points, and
# non-canonical encodings of the identity.
SMALL_ORDER = [
    "0100000000000000000000000000000000000000000000000000000000000000",  # identity
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # order 2
    "0000000000000000000000000000000000000000000000000000000000000000",  # order 4
    "0000000000000000000000000000000000000000000000000000000000000080",  # order 4
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",  # order 8
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",  # order 8
    "0100000000000000000000000000000000000000000000000000000000000080",  # identity, x sign bit set
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # identity, non-canonical y = p+1
]


def _enroll(c: Central, code: str, pub: bytes, enc: Callable[[bytes], str] = b64, source: str | None = None) -> Resp:
    return http("POST", f"{c.url}/v1/enroll",
                {"code": code, "public_key": enc(pub), "hostname": "srv-1", "agent_version": "contract-0"},
                source=source)


def test_enroll_answer_fields(central_srv: Central, shared_school: str) -> None:
    key = Ed25519PrivateKey.generate()
    r = _enroll(central_srv, central_srv.code(shared_school), raw_public(key))
    assert r.status == 201, r.body
    doc = r.json()
    for f in ("agent_id", "school_id", "carrier", "central_public_key", "token_public_key"):
        assert f in doc, (f, doc)
    assert doc["school_id"] == shared_school and doc["carrier"] == "Kreis-A"
    assert isinstance(doc["agent_id"], str) and doc["agent_id"]
    cpk = base64.b64decode(doc["central_public_key"], validate=True)
    tpk = base64.b64decode(doc["token_public_key"], validate=True)
    assert len(cpk) == 32 and len(tpk) == 32
    assert cpk != tpk, "token issuer key must be a key of its own, apart from the config key"
    # the agent shows up in the read API, with the version it announced
    row = central_srv.agent_row(shared_school, doc["agent_id"])
    assert row["version"] == "contract-0" and row["acked_seq"] == 0


def test_enroll_accepts_urlsafe_public_key(central_srv: Central, shared_school: str) -> None:
    key = Ed25519PrivateKey.generate()
    pub = raw_public(key)
    while b"+" not in base64.b64encode(pub) and b"/" not in base64.b64encode(pub):  # make the alphabets differ
        key = Ed25519PrivateKey.generate()
        pub = raw_public(key)
    r = _enroll(central_srv, central_srv.code(shared_school), pub, enc=b64url)
    assert r.status == 201, r.body


def test_enroll_refuses_small_order_and_malformed_keys(central_srv: Central, shared_school: str) -> None:
    code = central_srv.code(shared_school)
    accepted = [h for h in SMALL_ORDER if _enroll(central_srv, code, bytes.fromhex(h)).status < 400]
    assert not accepted, f"small-order public keys enrolled: {accepted}"
    for h in SMALL_ORDER:
        assert_error(_enroll(central_srv, code, bytes.fromhex(h)))
    for pub in (b"", b"\x01" * 31, b"\x01" * 33):
        assert_error(_enroll(central_srv, code, pub))
    # the refusals did not burn the code
    assert _enroll(central_srv, code, raw_public(Ed25519PrivateKey.generate())).status == 201


def test_enroll_refuses_same_public_key_twice(central_srv: Central, shared_school: str) -> None:
    key = Ed25519PrivateKey.generate()
    assert _enroll(central_srv, central_srv.code(shared_school), raw_public(key)).status == 201
    assert_error(_enroll(central_srv, central_srv.code(shared_school), raw_public(key)))


def test_enroll_code_is_one_time(central_srv: Central, shared_school: str) -> None:
    code = central_srv.code(shared_school)
    src = fresh_source()  # wrong codes count against the source address
    assert _enroll(central_srv, code, raw_public(Ed25519PrivateKey.generate())).status == 201
    assert_error(_enroll(central_srv, code, raw_public(Ed25519PrivateKey.generate()), source=src))
    assert_error(_enroll(central_srv, "not-a-code", raw_public(Ed25519PrivateKey.generate()), source=src))


def test_enroll_code_expires(central_srv: Central, shared_school: str) -> None:
    code = only_line(central_srv.cli("enroll-code", "--school", shared_school, "--ttl", "1s"))
    time.sleep(1.3)
    assert_error(_enroll(central_srv, code, raw_public(Ed25519PrivateKey.generate()), source=fresh_source()))


def test_enroll_malformed_bodies_are_json_refusals(central_srv: Central) -> None:
    src = fresh_source()
    for body in (b"", b"not json", b"[]", b'{"code": 1}', b'{"code": "x", "code": "y", "public_key": "AA=="}'):
        assert_error(http("POST", f"{central_srv.url}/v1/enroll", body, source=src))


def test_non_strict_base64_public_key_refused(central_srv: Central, shared_school: str) -> None:
    code = central_srv.code(shared_school)
    pub = b64(raw_public(Ed25519PrivateKey.generate()))
    for text in (pub[:10] + "\n" + pub[10:], " " + pub, pub.rstrip("=") + "=.="):
        r = http("POST", f"{central_srv.url}/v1/enroll",
                 {"code": code, "public_key": text, "hostname": "h", "agent_version": "1"}, source=fresh_source())
        assert_error(r)


def test_wrong_codes_are_rate_limited_per_source(central_srv: Central, shared_school: str) -> None:
    guesser = fresh_source()
    statuses = [_enroll(central_srv, f"guess-{i}", raw_public(Ed25519PrivateKey.generate()), source=guesser).status
                for i in range(25)]
    assert statuses[-1] == 429 and set(statuses) <= {400, 401, 403, 404, 429}, statuses
    assert_error(_enroll(central_srv, "guess", raw_public(Ed25519PrivateKey.generate()), source=guesser), 429, 429)
    # the budget is per source: an honest agent elsewhere still enrolls
    r = _enroll(central_srv, central_srv.code(shared_school), raw_public(Ed25519PrivateKey.generate()),
                source=fresh_source())
    assert r.status == 201, r.body

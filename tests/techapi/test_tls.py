"""Optional TLS on the agent's local API: a school's own certificate, checked by the client."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agent.config import ApiSection
from agent.techapi.remote import fetch
from agent.techapi.server import start_server, tls_context
from base.errors import ConfigError


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "schulserver")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


async def test_api_speaks_https_with_the_configured_certificate(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    app = web.Application()

    async def status(_request: web.Request) -> web.Response:
        return web.json_response({"school": {"id": "gs-nord"}})

    app.router.add_get("/api/v1/status", status)
    context = tls_context(ApiSection(tls_cert=str(cert), tls_key=str(key)))
    assert context is not None
    runner, _host, port = await start_server(app, "127.0.0.1", 0, ssl_context=context)
    try:
        body = await fetch(f"https://127.0.0.1:{port}", "/api/v1/status", "t", cafile=cert)
        assert body["school"]["id"] == "gs-nord"
        with pytest.raises(ConfigError, match="cannot reach agent"):
            await fetch(f"https://127.0.0.1:{port}", "/api/v1/status", "t")  # not trusted without the CA
    finally:
        await runner.cleanup()


def test_tls_needs_both_files_and_readable_ones(tmp_path: Path) -> None:
    assert tls_context(ApiSection()) is None
    with pytest.raises(ConfigError, match="both"):
        tls_context(ApiSection(tls_cert="/x.pem"))
    with pytest.raises(ConfigError, match="cannot load TLS"):
        tls_context(ApiSection(tls_cert=str(tmp_path / "none.pem"), tls_key=str(tmp_path / "none.key")))

"""Issue 14, finding 4: a technician token revoked at central is refused by the agent once its config says so."""

from __future__ import annotations

from datetime import timedelta

from protocol.tokens import issue_technician_token
from tests.techapi.conftest import ISSUER, NOW


async def test_a_revoked_jti_is_refused_others_pass(client, view) -> None:
    revoked = issue_technician_token(ISSUER, "anna", "school:gs-nord", NOW, timedelta(hours=8), jti="j-revoked")
    other = issue_technician_token(ISSUER, "bert", "school:gs-nord", NOW, timedelta(hours=8), jti="j-other")
    assert (await client.get("/api/v1/status", headers={"Authorization": f"Bearer {revoked}"})).status == 200
    view.revoked = frozenset({"j-revoked"})
    refused = await client.get("/api/v1/status", headers={"Authorization": f"Bearer {revoked}"})
    assert refused.status == 401 and (await refused.json())["error"] == "token_revoked"
    assert (await client.get("/api/v1/status", headers={"Authorization": f"Bearer {other}"})).status == 200

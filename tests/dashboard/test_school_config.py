"""The school page says which central configuration each agent runs and which keys its school sets itself."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from central.storage.interface import Storage
from tests.dashboard.conftest import login

AT = "2024-05-06T08:00:00.000000Z"


async def test_the_school_page_shows_the_configuration_each_agent_runs(
    web: TestClient, store: Storage, clock: object
) -> None:
    from tests.central.conftest import enroll

    agent = await enroll(web, store, clock)  # type: ignore[arg-type]
    version = await store.add_config_layer("school:gs-nord", "[incidents]\nopen_after = 5\n",
                                           '{"incidents": {"open_after": 5}}', AT, "ops")  # fmt: skip
    async with store.transaction() as tx:
        await tx.set_agent_config_report(agent.agent_id, version, ["incidents.open_after"])  # one behind
    await login(web)
    html = await (await web.get("/schools/gs-nord")).text()
    facts = html[html.index('id="config"'):]
    facts = facts[: facts.index("</dd>")]
    assert f"v{version}" in facts and f"zentral gilt v{version + 1}" in facts  # config_version 1 + the layer
    assert "vor Ort abweichend: incidents.open_after" in facts

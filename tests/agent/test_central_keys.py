"""Central's own keys rotated with a grace period: agents learn the next key first, then trust only the new one.

Central runs in-process on 127.0.0.1 with a clock the test moves; the agent's sync client and its
technician-token check run against it over real sockets.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.config import parse_config
from agent.enroll import enroll
from agent.identity import load_agent_key, load_identity
from agent.store import Store
from agent.store.outbox import Outbox
from agent.sync.client import StateParts, SyncClient
from agent.sync.transport import AiohttpTransport
from agent.techapi.auth import Authenticator, AuthError
from agent.techapi.store_view import AgentView
from base.clock import FakeClock
from base.ratelimit import FailureLimiter
from central.config import load_config
from central.enrollment import create_code
from central.keystore import load_keystore, start_rotation
from central.storage import open_store
from central.web.app import create_app, start
from protocol.keys import keyid, public_key_b64
from protocol.tokens import issue_technician_token

pytestmark = pytest.mark.timeout(120)


async def _serve(data_dir: Path, clock: FakeClock) -> AsyncIterator[str]:
    config = load_config(None, data_dir)
    store = await open_store(config)
    app = create_app(config, store, load_keystore(data_dir, clock.now()), clock=clock, silence_monitor=False)
    runner, url = await start(app, "127.0.0.1", 0)
    try:
        yield url
    finally:
        await runner.cleanup()
        await store.close()


async def test_a_rotated_config_and_token_key_are_trusted_after_the_grace_period(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="agent.sync.client")
    clock = FakeClock(datetime.now(UTC).replace(microsecond=0))
    central_dir = tmp_path / "central"
    central_dir.mkdir(mode=0o700)
    config = load_config(None, central_dir)
    store = await open_store(config)
    await store.add_school("gs-nord", "GS Nord", "Kreis A", "2026-01-01T00:00:00.000000Z")
    old = load_keystore(central_dir, clock.now())
    code = await create_code(store, "gs-nord", timedelta(hours=1), clock.now(), old)
    await store.close()

    data_dir = tmp_path / "agent"
    served = _serve(central_dir, clock)
    url = await anext(served)
    await enroll(url, code, data_dir, clock)
    await served.aclose()
    agent_store = Store.open(data_dir)
    identity = load_identity(agent_store)
    assert identity is not None
    client = SyncClient(
        agent_store, Outbox(agent_store, clock), identity, load_agent_key(data_dir, identity),
        parse_config({}).sync, clock, transport=AiohttpTransport(url, clock, user_agent="t", timeout=5),
        state=lambda: StateParts((), None, ()),
    )  # fmt: skip
    view = AgentView(store=agent_store, engine=None, data_dir=data_dir, identity=identity,  # type: ignore[arg-type]
                     sections=dict, wake=lambda: None)  # fmt: skip
    auth = Authenticator(view, None, clock.now, FailureLimiter(clock.monotonic), lambda reason: None)

    # Both keys rotated with a day's grace; central restarts and announces the next keys.
    config_next = start_rotation(central_dir, "config", timedelta(days=1), clock.now())
    token_next = start_rotation(central_dir, "token", timedelta(days=1), clock.now())
    served = _serve(central_dir, clock)
    client._transport = AiohttpTransport(await anext(served), clock, user_agent="t", timeout=5)
    try:
        await client.fetch_config()
        held = agent_store.get_setting("central_config")
        assert held is not None
        assert held["settings"]["central_keys"] == {
            "config": [public_key_b64(old.config_key), public_key_b64(config_next.key)],
            "token": [public_key_b64(old.token_key), public_key_b64(token_next.key)],
        }
        old_token = issue_technician_token(old.token_key, "anna", "school:gs-nord", clock.now(), timedelta(hours=8))
        next_token = issue_technician_token(token_next.key, "bert", "school:gs-nord", clock.now(), timedelta(hours=8))
        assert auth.check(f"Bearer {old_token}", "t1").name == "anna"
        assert auth.check(f"Bearer {next_token}", "t1").name == "bert"  # the next key, during the grace period

        # The switch: central now signs with the next config key; the agent trusts it, and only it.
        clock.advance(timedelta(days=1, minutes=16))
        client.clock_offset = None
        old_token = issue_technician_token(old.token_key, "anna", "school:gs-nord", clock.now(), timedelta(hours=8))
        await client.fetch_config()
        held = agent_store.get_setting("central_config")
        assert held["version"] >= 1 and "config refused" not in caplog.text
        announced = held["settings"]["central_keys"]
        assert len(announced["config"]) == 1 and len(announced["token"]) == 2  # new token key + the old one for 12 h
        assert auth.check(f"Bearer {old_token}", "t2").name == "anna"  # issued just before: still good
        clock.advance(timedelta(hours=12, minutes=16))
        # aiohttp dates its answers by the real clock while this test moves central's: no offset to learn.
        client.clock_offset = None
        await client.fetch_config()
        assert len(agent_store.get_setting("central_config")["settings"]["central_keys"]["token"]) == 1
        late = issue_technician_token(old.token_key, "anna", "school:gs-nord", clock.now(), timedelta(hours=8))
        with pytest.raises(AuthError) as caught:
            auth.check(f"Bearer {late}", "t3")
        assert caught.value.reason == "token_signature"
        fresh = issue_technician_token(token_next.key, "bert", "school:gs-nord", clock.now(), timedelta(hours=8))
        assert auth.check(f"Bearer {fresh}", "t3").name == "bert"
        assert keyid(config_next.key) != keyid(old.config_key)
    finally:
        await client._transport.aclose()
        await served.aclose()
        agent_store.close()

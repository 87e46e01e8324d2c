"""The technician page's DOM in real headless Chromium: markup in any field becomes text, never an element.

The Content-Security-Policy stops an injected script from running, so "no dialog fired" would
pass even if the page wrote device data with ``innerHTML``. This test looks at the DOM itself:
every field that comes from outside (a device's name, an incident's title and subject, a
technician's note, an AP's name) carries markup with a class of its own, and no element with
that class may exist, while the text shows up verbatim. The page is served by the real route
layer over a real socket, from a real SQLite store filled through the engine and inventory.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from agent.incidents.engine import IncidentEngine
from agent.monitors.interface import Device, DeviceChange, Signal
from agent.privacy import Privacy
from agent.store import Store
from agent.store.inventory import Inventory
from agent.store.outbox import Outbox
from agent.techapi.auth import Authenticator
from agent.techapi.routes import setup_technician_api
from agent.techapi.store_view import AgentView
from base.clock import SystemClock
from base.ratelimit import FailureLimiter
from tests.browser import browser_page

pytestmark = pytest.mark.timeout(120)

ADMIN = "admin-token-0123456789abcdef0123"
FIELDS = ("device", "title", "subject", "note", "ap")


def hostile(field: str) -> str:
    """Markup that would create a ``b.xss-<field>`` element (and an image) if parsed as HTML."""
    return f'<b class="xss-{field}">{field}</b><img class="xss-{field}" src=x onerror="document.title=\'{field}\'">'


async def _serve(data_dir: Path) -> tuple[web.AppRunner, Store, int]:
    store = Store.open(data_dir)
    clock = SystemClock()
    outbox = Outbox(store, clock)
    privacy = Privacy(b"k" * 32)
    engine = IncidentEngine(store, outbox, privacy, clock, open_after=1, resolve_after=1, school="s1")
    now = clock.now()
    engine.observe([Signal("ap-down:ap-1", True, "wlan", "critical", hostile("title"), hostile("subject"), now)])
    (incident,) = engine.open_incidents()
    engine.add_note(incident.id, "A. Weber", hostile("note"))
    device = Device("aa:bb:cc:00:00:09", "airplay", hostile("device"), "AppleTV", ("10.0.0.9",), (), now, now)
    Inventory(store, outbox, privacy).apply([DeviceChange("seen", device)])
    sections = {"wlan": {"aps": [{"id": "ap-1", "name": hostile("ap"), "state": "down"}]}}
    view = AgentView(
        store=store, engine=engine, data_dir=data_dir, identity=None, sections=lambda: sections, wake=lambda: None
    )
    app = web.Application()
    auth = Authenticator(view, ADMIN, clock.now, FailureLimiter(lambda: 0.0))
    setup_technician_api(app, view, auth, CollectorRegistry())
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, store, port


async def _stop(runner: web.AppRunner, store: Store) -> None:
    await runner.cleanup()
    store.close()  # in the thread that opened it


@pytest.fixture
def page_url(tmp_path: Path) -> Iterator[str]:
    """The page served from its own thread's event loop (Playwright's sync API owns this one)."""
    loop = asyncio.new_event_loop()
    started: list[tuple[web.AppRunner, Store, int]] = []
    ready = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        started.append(loop.run_until_complete(_serve(tmp_path)))
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(20), "the page server did not start"
    runner, store, port = started[0]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(_stop(runner, store), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def test_no_element_is_created_from_any_outside_text(page_url: str, tmp_path: Path) -> None:
    with browser_page(tmp_path) as page:
        page.goto(page_url + "/")
        page.fill("#token-input", ADMIN)
        page.click("#login button[type=submit]")
        page.wait_for_selector("#incidents li.incident", timeout=20000)
        page.locator("#devices td", has_text=hostile("device")).first.wait_for(timeout=20000)
        page.locator("#aps td", has_text=hostile("ap")).first.wait_for(timeout=20000)
        for field in FIELDS:
            assert page.locator(f".xss-{field}").count() == 0, f"an element was made from the {field}"
        text = page.evaluate("document.body.textContent")
        for field in FIELDS:
            assert hostile(field) in text, f"the {field} is not shown as text"
        assert page.locator("img").count() == 0
        assert page.title() not in FIELDS

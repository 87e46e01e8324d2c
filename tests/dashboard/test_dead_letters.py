"""The dead-letter list in the dashboard: staff see messages that failed for good and put one back in the queue."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from central.storage.sqlite import SqliteStore
from tests.dashboard.conftest import csrf_of, login

AT = "2024-05-06T08:00:00.000000Z"


async def _dead(store: SqliteStore, thread: str) -> int:
    async with store.transaction() as tx:
        delivery = await tx.add_alert_delivery("hotline-hook", thread, "opened", "gs-nord", "{}", AT, AT)
    await store.alert_failed(delivery, 3, "dead", AT, "HTTP 500 from https://hooks.example/alert")
    return delivery


async def test_staff_see_dead_letters_and_retry_one(web: TestClient, store: SqliteStore) -> None:
    dead = await _dead(store, "t-1")
    await login(web)
    page = await web.get("/alerts")
    html = await page.text()
    assert page.status == 200 and f'data-delivery-id="{dead}"' in html and "HTTP 500 from" in html
    refused = await web.post("/alerts/retry", data={"id": str(dead), "csrf": "wrong"}, allow_redirects=False)
    assert refused.status == 403
    assert [d.id for d in await store.list_alert_deliveries("dead")] == [dead]
    done = await web.post("/alerts/retry", data={"id": str(dead), "csrf": csrf_of(html)}, allow_redirects=False)
    assert done.status == 303 and done.headers["Location"] == "/alerts"
    (pending,) = await store.list_alert_deliveries("pending")
    assert (pending.id, pending.attempts) == (dead, 0)  # back in the queue, from zero attempts
    assert await store.list_alert_deliveries("dead") == []
    assert 'id="no-dead-letters"' in await (await web.get("/alerts")).text()
    again = await web.post("/alerts/retry", data={"id": str(dead), "csrf": csrf_of(html)}, allow_redirects=False)
    assert again.status == 404  # not dead any more: nothing to retry
    for bad in ("", "x", "-1", "²", "9" * 40):
        refused = await web.post("/alerts/retry", data={"id": bad, "csrf": csrf_of(html)}, allow_redirects=False)
        assert refused.status == 400, bad


async def test_a_carrier_user_has_no_dead_letter_list(web: TestClient, store: SqliteStore) -> None:
    dead = await _dead(store, "t-2")
    await login(web, "musterstadt")
    page = await web.get("/")
    html = await page.text()
    assert 'href="/alerts"' not in html
    assert (await web.get("/alerts")).status == 404
    refused = await web.post("/alerts/retry", data={"id": str(dead), "csrf": csrf_of(html)}, allow_redirects=False)
    assert refused.status == 404
    assert [d.id for d in await store.list_alert_deliveries("dead")] == [dead]


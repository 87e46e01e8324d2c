"""Alert routing end to end: signed reports in over real HTTP, mail/webhook/Zammad out over real sockets.

The clock is a FakeClock: backoff, quiet hours, holidays and digest windows are crossed by moving
it, never by waiting. Each pass is ``AlertService.run_once`` (what `serve` runs every interval).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import io
import json
import sys
import tomllib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from base.config import parse_document
from base.errors import ConfigError
from central import cli
from central.alerts.config import AlertsSection
from central.alerts.service import AlertService, open_alerts
from central.config import CentralFile
from central.storage.interface import Storage
from protocol.schema import make_event
from tests.central.alert_servers import FakeZammad, SmtpSink, WebhookSink
from tests.central.conftest import FakeAgent, FakeClock, db_section, enroll, incident

HOOK_SECRET = "hook-secret-3f9a"
ZAMMAD_TOKEN = "zammad-token-77c1"
SMTP_PASSWORD = "mail-pass-0b2e"
ALL_CHANNELS = '["hotline-mail", "ops", "helpdesk"]'


@pytest.fixture
async def smtp() -> AsyncIterator[SmtpSink]:
    sink = SmtpSink(username="schulwart", password=SMTP_PASSWORD)
    await sink.start()
    yield sink
    await sink.stop()


@pytest.fixture
async def hook() -> AsyncIterator[WebhookSink]:
    sink = WebhookSink()
    await sink.start()
    yield sink
    await sink.stop()


@pytest.fixture
async def zammad() -> AsyncIterator[FakeZammad]:
    desk = FakeZammad(ZAMMAD_TOKEN)
    await desk.start()
    yield desk
    await desk.stop()


def write_config(
    tmp_path: Path, smtp: SmtpSink, hook: WebhookSink, zammad: FakeZammad, *, extra: str = "",
    channels: str = ALL_CHANNELS, rule: str = "", database: str | None = None,
) -> Path:
    """central.toml with the three channels (secrets in files beside it) and one rule."""
    (tmp_path / "smtp.pass").write_text(SMTP_PASSWORD + "\n")
    (tmp_path / "hook.secret").write_text(HOOK_SECRET + "\n")
    (tmp_path / "zammad.token").write_text(ZAMMAD_TOKEN + "\n")
    path = tmp_path / "central.toml"
    path.write_text(f"""
{db_section(database) if database else ""}
[alerts]
public_url = "https://central.kreis.example"
max_attempts = 3
{extra}

[[alerts.email]]
name = "hotline-mail"
host = "127.0.0.1"
port = {smtp.port}
security = "none"
username = "schulwart"
password_file = "smtp.pass"
sender = "schulwart@kreis.example"
to = ["hotline@kreis.example"]

[[alerts.webhook]]
name = "ops"
url = "{hook.url}/hook"
secret_file = "hook.secret"

[[alerts.zammad]]
name = "helpdesk"
url = "{zammad.url}"
token_file = "zammad.token"
group = "Schul-IT"
customer = "hotline@kreis.example"

[[alerts.rule]]
channels = {channels}
min_severity = "warning"
{rule}
""")
    return path


def load_alerts(path: Path) -> AlertsSection:
    return parse_document(CentralFile, tomllib.loads(path.read_text()), source=str(path)).alerts


async def post(client: TestClient, agent: FakeAgent, *events: dict[str, Any]) -> None:
    resp = await client.post("/v1/reports", data=agent.sign_events(list(events)))
    assert resp.status == 200, await resp.text()


def opened(seq: int, at: datetime, incident_id: str, severity: str = "critical", **extra: Any) -> dict[str, Any]:
    return make_event(seq, at, "incident.opened", incident(incident_id, severity, **extra))


def valid_signature(call: Any) -> bool:
    expected = "sha256=" + hmac.new(HOOK_SECRET.encode(), call.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(call.headers.get("X-Schulwart-Signature", ""), expected)


def _run_cli(args: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    argv = sys.argv
    sys.argv = ["schulwart-central", *args]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out), pytest.raises(SystemExit) as done:
            cli.main()
    finally:
        sys.argv = argv
    return int(done.value.code or 0), out.getvalue()


async def central(*args: str) -> tuple[int, str]:
    """The console script's main() with these arguments, in a thread (the test's servers run in this loop)."""
    return await asyncio.to_thread(_run_cli, list(args))


@pytest.fixture
async def service_for(
    tmp_path: Path, store: Storage, clock: FakeClock
) -> AsyncIterator[Any]:
    """A factory: the AlertService of a config file; closed at the end of the test."""
    stack: list[Any] = []

    async def make(path: Path) -> AlertService:
        context = open_alerts(store, load_alerts(path), clock, config_dir=path.parent)
        stack.append(context)
        return await context.__aenter__()

    yield make
    for context in reversed(stack):
        await context.__aexit__(None, None, None)


async def test_an_incident_reaches_mail_webhook_and_zammad_once_and_its_end_updates_each(
    tmp_path: Path, client: TestClient, agent: FakeAgent, clock: FakeClock, smtp: SmtpSink, hook: WebhookSink,
    zammad: FakeZammad, service_for: Any,
) -> None:
    service = await service_for(write_config(tmp_path, smtp, hook, zammad))
    t = clock.now()
    await post(client, agent, opened(1, t, "i1", title="Ladeschrank 2.14 ohne Strom", subject="cab-2.14"))
    for _ in range(3):  # repeated passes say nothing new
        await service.run_once()

    assert len(smtp.messages) == 1 and smtp.logins == ["schulwart"]
    mail = smtp.messages[0]
    assert mail["Subject"] == "[Schulwart] KRITISCH: GS Nord \u2013 Ladeschrank 2.14 ohne Strom"
    assert mail["To"] == "hotline@kreis.example"
    text = mail.get_content()
    assert "Schulträger: Musterstadt" in text and "Seit: 06.05.2024 10:00" in text  # 08:00 UTC, Berlin summer time
    assert "https://central.kreis.example/v1/schools/gs-nord" in text

    assert len(hook.calls) == 1 and valid_signature(hook.calls[0])
    body = json.loads(hook.calls[0].body)
    assert body["event"] == "incident.opened" and body["incident"]["school_id"] == "gs-nord"
    assert body["incident"]["severity"] == "critical" and body["language"] == "de"

    assert list(zammad.tickets) == [1]
    ticket = zammad.tickets[1]
    assert ticket["group"] == "Schul-IT" and ticket["priority"] == "3 high" and ticket["state"] == "new"
    assert "Ladeschrank 2.14 ohne Strom" in ticket["title"]

    clock.advance(60)
    await post(client, agent, make_event(2, clock.now(), "incident.acknowledged", {"id": "i1", "by": "A. Weber"}))
    await service.run_once()
    clock.advance(60)
    await post(client, agent, make_event(3, clock.now(), "incident.resolved", {"id": "i1"}))
    await service.run_once()
    await service.run_once()

    assert [m["Subject"].split(":")[0] for m in smtp.messages] == [
        "[Schulwart] KRITISCH", "[Schulwart] Quittiert", "[Schulwart] Behoben"
    ]
    first_id = smtp.messages[0]["Message-ID"]
    assert all(m["In-Reply-To"] == first_id for m in smtp.messages[1:])
    assert "A. Weber" in smtp.messages[1].get_content()
    assert [json.loads(c.body)["event"] for c in hook.calls] == [
        "incident.opened", "incident.acknowledged", "incident.resolved"
    ]
    assert all(valid_signature(c) for c in hook.calls)
    assert list(zammad.tickets) == [1] and zammad.tickets[1]["state"] == "closed"
    assert [a["subject"].split(":")[0] for a in zammad.tickets[1]["articles"]] == [
        "[Schulwart] KRITISCH", "[Schulwart] Quittiert", "[Schulwart] Behoben"
    ]
    assert ("PUT", "/api/v1/tickets/1") in zammad.requests


async def test_a_webhook_that_fails_three_times_is_dead_until_retry_from_the_cli(
    tmp_path: Path, client: TestClient, agent: FakeAgent, clock: FakeClock, store: Storage, smtp: SmtpSink,
    hook: WebhookSink, zammad: FakeZammad, service_for: Any, database: str,
) -> None:
    path = write_config(tmp_path, smtp, hook, zammad, channels='["ops"]', database=database)
    service = await service_for(path)
    hook.failures = 3
    await post(client, agent, opened(1, clock.now(), "i1"))
    first = await service.run_once()
    assert first.delivered.failed and not first.delivered.sent
    for _ in range(2):
        # Backoff is at most retry_cap (30 min): before that nothing is due, after it the next try.
        assert not (await service.run_once()).delivered.failed
        clock.advance(timedelta(minutes=30))
        await service.run_once()
    assert len(hook.calls) == 3
    dead = await store.list_alert_deliveries("dead")
    assert [(d.channel, d.kind, d.attempts) for d in dead] == [("ops", "opened", 3)]
    assert "500" in (dead[0].last_error or "")
    clock.advance(timedelta(days=1))
    await service.run_once()
    assert len(hook.calls) == 3  # dead stays dead

    common = ["--data-dir", str(tmp_path), "--config", str(path)]
    code, output = await central("alerts", "list", *common)
    assert code == 0 and f"{dead[0].id}" in output and "ops" in output and "webhook answered 500" in output
    code, output = await central("alerts", "retry", str(dead[0].id), *common)
    assert code == 0 and f"alert message {dead[0].id} sent" in output
    assert len(hook.calls) == 4 and valid_signature(hook.calls[3])
    assert json.loads(hook.calls[3].body)["delivery_id"] == dead[0].id
    assert await store.list_alert_deliveries("dead") == []
    code, output = await central("alerts", "retry", str(dead[0].id), *common)
    assert code == 2 and "no dead alert message" in output


async def test_a_4xx_answer_goes_to_the_dead_letter_list_at_once(
    tmp_path: Path, client: TestClient, agent: FakeAgent, clock: FakeClock, store: Storage, smtp: SmtpSink,
    hook: WebhookSink, zammad: FakeZammad, service_for: Any,
) -> None:
    path = write_config(tmp_path, smtp, hook, zammad, channels='["helpdesk"]')
    (tmp_path / "zammad.token").write_text("a-wrong-token\n")
    service = await service_for(path)
    await post(client, agent, opened(1, clock.now(), "i1"))
    result = await service.run_once()
    assert result.delivered.dead and not zammad.tickets
    [dead] = await store.list_alert_deliveries("dead")
    assert dead.attempts == 1 and "401" in (dead.last_error or "") and "a-wrong-token" not in (dead.last_error or "")


HOLIDAY_ICS = """BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//Test//Schulferien//DE\r
BEGIN:VEVENT\r
UID:pfingsten-2024@test\r
DTSTART;VALUE=DATE:20240506\r
DTEND;VALUE=DATE:20240508\r
SUMMARY:Bewegliche Ferientage\r
END:VEVENT\r
END:VCALENDAR\r
"""


@pytest.mark.parametrize("mode", ["silence", "defer"])
async def test_nothing_is_sent_inside_a_holiday_from_the_ics_file(
    mode: str, tmp_path: Path, client: TestClient, agent: FakeAgent, clock: FakeClock, smtp: SmtpSink,
    hook: WebhookSink, zammad: FakeZammad, service_for: Any,
) -> None:
    (tmp_path / "ferien.ics").write_text(HOLIDAY_ICS)
    extra = f'holidays_ics = "ferien.ics"\nholiday_mode = "{mode}"'
    service = await service_for(write_config(tmp_path, smtp, hook, zammad, extra=extra))
    await post(client, agent, opened(1, clock.now(), "i1", "critical"))  # Monday 6 May 2024, a holiday
    for hours in (0, 6, 30):  # the evening of the 7th is still inside
        clock.set(datetime(2024, 5, 6, 8, 0, tzinfo=UTC) + timedelta(hours=hours))
        await service.run_once()
        assert (smtp.messages, hook.calls, zammad.tickets) == ([], [], {})
    clock.set(datetime(2024, 5, 7, 22, 0, 1, tzinfo=UTC))  # 00:00:01 on the 8th in Berlin: school again
    await service.run_once()
    if mode == "silence":
        assert (smtp.messages, hook.calls, zammad.tickets) == ([], [], {})
    else:
        assert len(smtp.messages) == 1 and len(hook.calls) == 1 and len(zammad.tickets) == 1


async def test_a_flood_of_one_cause_across_many_schools_is_one_digest(
    tmp_path: Path, client: TestClient, store: Storage, clock: FakeClock, smtp: SmtpSink, hook: WebhookSink,
    zammad: FakeZammad, service_for: Any,
) -> None:
    service = await service_for(write_config(tmp_path, smtp, hook, zammad, extra="digest_threshold = 3"))
    schools = [f"gs-{n}" for n in range(8)]
    for school in schools:
        await store.add_school(school, f"Grundschule {school}", "Musterstadt", "2024-05-01T00:00:00.000000Z")
        agent = await enroll(client, store, clock, school)
        # The same cause everywhere: the carrier's uplink is down, every school's WLAN probe fails.
        await post(client, agent, opened(1, clock.now(), f"i-{school}", key="wlan-probe-failed:gateway"))
    result = await service.run_once()
    assert dict(result.planned.queued) == {"digest": 3}  # one per channel
    assert (smtp.messages, hook.calls, zammad.tickets) == ([], [], {})  # the digest gathers first
    clock.advance(timedelta(minutes=2))
    await service.run_once()
    await service.run_once()
    assert len(smtp.messages) == 1 and len(hook.calls) == 1 and len(zammad.tickets) == 1
    body = json.loads(hook.calls[0].body)
    assert body["event"] == "incident.digest" and valid_signature(hook.calls[0])
    assert sorted(i["school_id"] for i in body["incidents"]) == schools
    assert smtp.messages[0]["Subject"] == "[Schulwart] KRITISCH: 8 Störungen (wlan/wlan-probe-failed) an 8 Schulen"
    text = smtp.messages[0].get_content()
    assert all(f"Grundschule {school}" in text for school in schools)


async def test_quiet_hours_defer_warnings_but_not_critical_ones_and_a_quick_fix_is_never_sent(
    tmp_path: Path, client: TestClient, agent: FakeAgent, clock: FakeClock, smtp: SmtpSink, hook: WebhookSink,
    zammad: FakeZammad, service_for: Any,
) -> None:
    extra = 'quiet_start = "20:00"\nquiet_end = "07:00"'
    service = await service_for(write_config(tmp_path, smtp, hook, zammad, extra=extra, channels='["ops"]'))
    clock.set(datetime(2024, 5, 6, 20, 0, tzinfo=UTC))  # 22:00 in Berlin
    t = clock.now()
    await post(client, agent, opened(1, t, "crit", "critical"), opened(2, t, "warn", "warning"),
               opened(3, t, "blip", "warning"))  # fmt: skip
    await service.run_once()
    assert [json.loads(c.body)["incident"]["incident_id"] for c in hook.calls] == ["crit"]
    clock.set(datetime(2024, 5, 7, 3, 0, tzinfo=UTC))  # 05:00: still quiet; the blip ends
    await post(client, agent, make_event(4, clock.now(), "incident.resolved", {"id": "blip"}))
    await service.run_once()
    assert len(hook.calls) == 1
    clock.set(datetime(2024, 5, 7, 5, 0, tzinfo=UTC))  # 07:00 in Berlin
    await service.run_once()
    assert [json.loads(c.body)["incident"]["incident_id"] for c in hook.calls] == ["crit", "warn"]


async def test_rules_route_by_carrier_school_category_and_severity(
    tmp_path: Path, client: TestClient, store: Storage, clock: FakeClock, smtp: SmtpSink, hook: WebhookSink,
    zammad: FakeZammad, service_for: Any,
) -> None:
    rule = """
[[alerts.rule]]
channels = ["hotline-mail"]
carriers = ["Anderdorf"]
categories = ["cabinet"]
min_severity = "info"
"""
    service = await service_for(write_config(tmp_path, smtp, hook, zammad, channels='["ops"]', rule=rule))
    ost, nord = await enroll(client, store, clock, "gs-ost"), await enroll(client, store, clock, "gs-nord")
    t = clock.now()
    await post(client, ost, opened(1, t, "cab", "info", category="cabinet"), opened(2, t, "wlan", "info"))
    await post(client, nord, opened(1, t, "cab-n", "info", category="cabinet"), opened(2, t, "w", "warning"))
    await service.run_once()
    assert [m["Subject"] for m in smtp.messages] == ["[Schulwart] Hinweis: GS Ost \u2013 Problem cab"]
    assert [json.loads(c.body)["incident"]["incident_id"] for c in hook.calls] == ["w"]


async def test_english_on_request_and_a_test_message_from_the_cli(
    tmp_path: Path, store: Storage, smtp: SmtpSink, hook: WebhookSink, zammad: FakeZammad, database: str,
) -> None:
    path = write_config(tmp_path, smtp, hook, zammad, extra='language = "en"', database=database)
    common = ["--data-dir", str(tmp_path), "--config", str(path)]
    code, output = await central("alerts", "test", "ops", *common)
    assert code == 0 and "test message sent through ops" in output
    assert len(hook.calls) == 1 and valid_signature(hook.calls[0])
    body = json.loads(hook.calls[0].body)
    assert body["event"] == "incident.test" and body["subject"].startswith("[Schulwart] Info:")
    code, output = await central("alerts", "test", "hotline-mail", *common)
    assert code == 0 and smtp.messages[0]["Subject"].endswith("Test message from Schulwart")
    code, output = await central("alerts", "test", "nope", *common)
    assert code == 2 and "no alert channel named 'nope'" in output
    hook.failures, hook.fail_status = 1, 503
    code, output = await central("alerts", "test", "ops", *common)
    assert code == 1 and "503" in output
    code, output = await central("alerts", "list", *common)
    assert code == 0 and "no dead alert messages" in output
    assert SMTP_PASSWORD not in output and HOOK_SECRET not in output


def test_config_refusals_are_one_line_naming_the_key(tmp_path: Path) -> None:
    def refuse(text: str) -> str:
        with pytest.raises(ConfigError) as info:
            parse_document(CentralFile, tomllib.loads(text), source="c.toml")
        assert "\n" in text and "\n" not in info.value.message
        return info.value.message

    hook = '[[alerts.webhook]]\nname = "ops"\nurl = "https://x.example/h"\nsecret_file = "s"\n'
    assert "unknown key(s) in [alerts.webhook #1]: secret" in refuse(
        '[[alerts.webhook]]\nname = "ops"\nurl = "https://x.example/h"\nsecret = "plain"\n'
    )
    assert "rule #1 names unknown channel(s) mail" in refuse(hook + '[[alerts.rule]]\nchannels = ["mail"]\n')
    assert "categories has unknown categories printer" in refuse(
        hook + '[[alerts.rule]]\nchannels = ["ops"]\ncategories = ["printer"]\n'
    )
    assert "[alerts] quiet_start and quiet_end come together" in refuse('[alerts]\nquiet_start = "20:00"\n')
    assert "must start with http" in refuse('[[alerts.zammad]]\nname = "z"\nurl = "ftp://z"\ntoken_file = "t"\n'
                                            'group = "g"\ncustomer = "c"\n')  # fmt: skip


async def test_an_unreadable_secret_file_is_named_and_its_content_never_shown(
    tmp_path: Path, store: Storage, clock: FakeClock, smtp: SmtpSink, hook: WebhookSink, zammad: FakeZammad,
) -> None:
    path = write_config(tmp_path, smtp, hook, zammad)
    (tmp_path / "hook.secret").unlink()
    with pytest.raises(ConfigError, match=r"cannot read webhook secret file .*hook\.secret"):
        async with open_alerts(store, load_alerts(path), clock, config_dir=tmp_path):
            pass


async def test_a_follow_up_never_overtakes_a_first_message_that_is_still_being_retried(
    tmp_path: Path, client: TestClient, agent: FakeAgent, clock: FakeClock, smtp: SmtpSink, hook: WebhookSink,
    zammad: FakeZammad, service_for: Any,
) -> None:
    service = await service_for(write_config(tmp_path, smtp, hook, zammad, channels='["ops"]'))
    hook.failures = 1
    await post(client, agent, opened(1, clock.now(), "i1"))
    await service.run_once()  # the opening fails once and waits for its retry
    await post(client, agent, make_event(2, clock.now(), "incident.resolved", {"id": "i1"}))
    await service.run_once()
    assert [json.loads(c.body)["event"] for c in hook.calls] == ["incident.opened"]
    clock.advance(timedelta(minutes=30))
    await service.run_once()
    assert [json.loads(c.body)["event"] for c in hook.calls] == [
        "incident.opened", "incident.opened", "incident.resolved"
    ]


def test_serve_with_an_unreadable_secret_file_stops_with_one_line_naming_it(tmp_path: Path) -> None:
    code, _ = _run_cli(["school", "add", "--id", "gs-nord", "--name", "GS Nord", "--carrier", "M",
                        "--data-dir", str(tmp_path)])  # fmt: skip
    assert code == 0
    config = tmp_path / "central.toml"
    config.write_text('[[alerts.webhook]]\nname = "ops"\nurl = "http://127.0.0.1:9/h"\nsecret_file = "gone.secret"\n'
                      '[[alerts.rule]]\nchannels = ["ops"]\n')  # fmt: skip
    code, output = _run_cli(["serve", "--port", "0", "--data-dir", str(tmp_path), "--config", str(config)])
    lines = output.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in output
    assert lines[0].startswith("schulwart-central: error: cannot read webhook secret file")
    assert "gone.secret" in lines[0]


async def test_the_app_runs_alert_routing_in_the_background(
    aiohttp_client: Any, tmp_path: Path, store: Storage, clock: FakeClock, smtp: SmtpSink, hook: WebhookSink,
    zammad: FakeZammad, service_for: Any,
) -> None:
    from central.config import CentralConfig
    from central.keystore import load_keystore
    from central.web.app import create_app
    from tests.central.conftest import CentralTestServer

    service = await service_for(write_config(tmp_path, smtp, hook, zammad, extra="interval = 0.02",
                                             channels='["ops"]'))  # fmt: skip
    config = CentralConfig(data_dir=tmp_path)
    app = create_app(config, store, load_keystore(tmp_path), clock=clock, silence_monitor=False, alerts=service)
    client = await aiohttp_client(CentralTestServer(app))
    agent = await enroll(client, store, clock)
    await post(client, agent, opened(1, clock.now(), "i1"))
    for _ in range(250):  # the loop runs every 20 ms; this only bounds how long a broken one is waited for
        if hook.calls:
            break
        await asyncio.sleep(0.02)
    assert [json.loads(c.body)["event"] for c in hook.calls] == ["incident.opened"]

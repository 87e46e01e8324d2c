"""Privacy of what leaves the school; the config's defaults and its refusals."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.config import AgentConfig, load_config, parse_config, parse_listen
from agent.monitors.interface import Device
from agent.privacy import SECRET_FILE, Privacy, load_or_create_secret
from base.errors import ConfigError

NOW = datetime(2025, 3, 1, tzinfo=UTC)
LENA = Device(
    id="aa:bb:cc:dd:ee:ff",
    device_class="ipad",
    name="Lenas iPad",
    model="iPad9,1",
    addresses=("10.0.0.5",),
    services=("_airplay._tcp",),
    first_seen=NOW,
    last_seen=NOW,
)


def test_device_view_hides_names_macs_and_addresses() -> None:
    privacy = Privacy(b"s" * 32)
    view = privacy.device(LENA)
    text = json.dumps(view)
    assert "Lena" not in text and "aa:bb" not in text and "10.0.0.5" not in text
    assert view == {"id": privacy.device_id(LENA.id), "class": "ipad", "model": "iPad9,1", "state": "present"}
    assert privacy.device_id(LENA.id) == Privacy(b"s" * 32).device_id(LENA.id)  # stable
    assert privacy.device_id(LENA.id) != Privacy(b"t" * 32).device_id(LENA.id)  # keyed per school


def test_share_names_sends_them() -> None:
    view = Privacy(b"s" * 32, share_names=True).device(LENA)
    assert view["name"] == "Lenas iPad" and view["addresses"] == ["10.0.0.5"]


def test_secret_is_made_once_with_mode_0600(data_dir: Path) -> None:
    first = load_or_create_secret(data_dir)
    assert load_or_create_secret(data_dir) == first and len(first) == 32
    assert stat.S_IMODE((data_dir / SECRET_FILE).stat().st_mode) == 0o600


def test_defaults_work_without_a_file() -> None:
    config = load_config(None)
    assert config == AgentConfig()
    assert config.outbox_max_bytes == 200 * 1024 * 1024
    assert config.agent.snapshot_interval == 300
    assert config.incidents.open_after == 3
    assert config.api.listen == "0.0.0.0:8401"
    assert config.privacy.share_names is False


def test_full_file(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(
        """
[agent]
snapshot_interval = "10m"
outbox_max_mb = 50
[sync]
report_interval = 15
max_bytes_per_s = 0
[host]
disk_max_percent = 85.5
[incidents]
open_after = 2
[privacy]
share_names = true
[discovery]
interval = "10s"
"""
    )
    config = load_config(path)
    assert config.agent.snapshot_interval == 600
    assert config.sync.report_interval == 15
    assert config.sync.max_bytes_per_s == 0
    assert config.host.disk_max_percent == 85.5
    assert config.discovery.interval == 10
    path.write_text('[discovery]\nanything = "no longer passed on raw"\n')
    with pytest.raises(ConfigError, match=r"agent\.toml: unknown key\(s\) in \[discovery\]: anything"):
        load_config(path)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"agnet": {}}, "unknown section"),
        ({"agent": {"snapshot_intervall": 5}}, "unknown key(s) in [agent]: snapshot_intervall"),
        ({"agent": {"outbox_max_mb": "big"}}, "[agent] outbox_max_mb must be an integer"),
        ({"agent": {"outbox_max_mb": 0}}, "outside"),
        ({"agent": {"snapshot_interval": "soon"}}, "not a duration"),
        ({"agent": {"snapshot_interval": True}}, "must be seconds"),
        ({"privacy": {"share_names": "yes"}}, "true or false"),
        ({"api": {"listen": "nohost"}}, "HOST:PORT"),
        ({"sync": []}, "must be a table"),
        ({"incidents": {"open_after": 1.5}}, "integer"),
    ],
)
def test_refusals(doc: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(doc)
    assert message in info.value.message


def test_broken_toml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[agent\n")
    with pytest.raises(ConfigError, match=r"bad\.toml"):
        load_config(path)


def test_parse_listen() -> None:
    assert parse_listen("127.0.0.1:0") == ("127.0.0.1", 0)
    assert parse_listen("[::1]:8401") == ("::1", 8401)
    with pytest.raises(ConfigError):
        parse_listen("127.0.0.1:99999")


def test_snapshot_sections_leave_the_school_without_macs_or_addresses() -> None:
    privacy = Privacy(b"s" * 32)
    sections = {
        "wlan": {
            "aps": [{"id": "80:2a:a8:00:01:02", "name": "AP Turnhalle", "state": "connected"}],
            "clients_total": 3,
        },
        "discovery": {
            "devices": 4,
            "meter_candidates": [{"id": "shellyplus1pm-441793d69718", "url": "http://10.0.0.9:80"}],
        },
        "cabinets": {"cabinets": {"schrank-3": {"name": "Schrank 3", "power_w": 120.0}}},
    }
    out = privacy.snapshot(sections)
    text = repr(out)
    assert "80:2a:a8" not in text and "441793d69718" not in text and "10.0.0.9" not in text
    assert out["wlan"]["aps"][0]["id"] == privacy.device_id("80:2a:a8:00:01:02")
    assert "AP Turnhalle" not in text and "Schrank 3" not in text  # names stay at school (issue #12)
    assert out["cabinets"] == {"cabinets": {privacy.device_id("schrank-3"): {"power_w": 120.0}}}
    assert "meter_candidates" in sections["discovery"], "the local sections must stay whole for the technician"
    shared = Privacy(b"s" * 32, share_names=True).snapshot(sections)
    assert shared["wlan"]["aps"][0]["id"] == "80:2a:a8:00:01:02"

"""DeviceTracker merging, caps and changes; the per-host rate limiter; presence rules with an injected clock."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from agent.monitors.discovery.hostlimit import HostRateLimiter
from agent.monitors.discovery.observation import Observation
from agent.monitors.discovery.presence import NotSeenList, due_for_probe, missing_signal
from agent.monitors.discovery.tracker import ABSENT, MAX_SERVICES_PER_DEVICE, MISSING, PRESENT, DeviceTracker

T0 = datetime(2025, 3, 3, 8, 0, tzinfo=UTC)


def mobdev(mac: str, host: str, address: str = "10.0.0.9") -> Observation:
    t = "_apple-mobdev2._tcp.local."
    name = f"{mac}@fe80::1"
    return Observation(t, f"{name}.{t}", name, host, (address,), 32498, {})


def companion(name: str, host: str, address: str = "10.0.0.9") -> Observation:
    t = "_companion-link._tcp.local."
    return Observation(t, f"{name}.{t}", name, host, (address,), 49152, {"rpmd": "iPad13,4"})


def airplay(name: str, mac: str, address: str = "10.0.0.20", port: int = 7000) -> Observation:
    t = "_airplay._tcp.local."
    return Observation(t, f"{name}.{t}", name, f"{name.replace(' ', '-')}.local.", (address,), port,
                       {"deviceid": mac, "model": "AppleTV6,2"})


def test_services_of_one_host_merge_into_one_device_with_the_strong_id() -> None:
    inv = DeviceTracker()
    inv.observe(companion("Lenas iPad", "lenas-ipad.local."), T0)
    inv.observe(mobdev("12:34:56:78:90:ab", "lenas-ipad.local."), T0)
    devices = inv.devices()
    assert len(devices) == 1
    device = devices[0]
    assert device.id == "mac:12:34:56:78:90:ab"
    assert device.device_class == "tablet" and device.name == "Lenas iPad" and device.model == "iPad13,4"
    assert device.services == ("_apple-mobdev2._tcp.local.", "_companion-link._tcp.local.")
    # The weak host id was never reported, so no change refers to it.
    changes = inv.take_changes()
    assert [(c.change, c.device.id) for c in changes] == [("seen", "mac:12:34:56:78:90:ab")]


def test_later_weak_service_joins_the_strong_device() -> None:
    inv = DeviceTracker()
    inv.observe(mobdev("12:34:56:78:90:ab", "lenas-ipad.local."), T0)
    inv.take_changes()
    inv.observe(companion("Lenas iPad", "lenas-ipad.local."), T0 + timedelta(seconds=1))
    assert len(inv) == 1
    [change] = inv.take_changes()
    assert change.change == "changed" and change.device.name == "Lenas iPad"


def test_changes_are_coalesced_and_only_real_changes_count() -> None:
    inv = DeviceTracker()
    obs = airplay("Raum 12", "90:DD:5D:8B:4C:23")
    inv.observe(obs, T0)
    inv.observe(obs, T0 + timedelta(seconds=1))
    assert [c.change for c in inv.take_changes()] == ["seen"]
    inv.observe(obs, T0 + timedelta(seconds=2))  # same content: last_seen only
    assert inv.take_changes() == []


def test_goodbye_makes_a_device_absent_and_return_makes_it_present() -> None:
    inv = DeviceTracker()
    obs = airplay("Raum 12", "90:DD:5D:8B:4C:23")
    inv.observe(obs, T0)
    inv.take_changes()
    inv.service_removed(obs.service_name, T0 + timedelta(minutes=1))
    [change] = inv.take_changes()
    assert change.change == "changed" and change.device.state == ABSENT
    assert inv.absent_since(change.device.id) == T0 + timedelta(minutes=1)
    inv.observe(obs, T0 + timedelta(minutes=2))
    assert inv.get(change.device.id).state == PRESENT  # type: ignore[union-attr]
    assert inv.absent_since(change.device.id) is None


def test_hard_cap_refuses_new_live_devices_and_evicts_absent_ones() -> None:
    inv = DeviceTracker(max_devices=3)
    for i in range(3):
        inv.observe(airplay(f"R{i}", f"90:DD:5D:00:00:0{i}", address=f"10.0.0.{i}"), T0)
    assert inv.observe(airplay("R9", "90:DD:5D:00:00:09", address="10.0.0.99"), T0) is None
    assert inv.rejected_full == 1
    inv.take_changes()
    inv.service_removed(airplay("R0", "x").service_name, T0)
    assert inv.observe(airplay("R9", "90:DD:5D:00:00:09", address="10.0.0.99"), T0) == "mac:90:dd:5d:00:00:09"
    assert inv.evicted == 1 and len(inv) == 3
    lost = [c for c in inv.take_changes() if c.change == "lost"]
    assert [c.device.id for c in lost] == ["mac:90:dd:5d:00:00:00"]


def test_one_address_cannot_fill_the_inventory() -> None:
    inv = DeviceTracker(max_devices=100, max_per_address=5)
    for i in range(20):
        inv.observe(companion(f"evil {i}", f"evil-{i}.local.", address="10.6.6.6"), T0)
    assert len(inv) == 5 and inv.rejected_full == 15
    assert inv.observe(airplay("Raum 12", "90:DD:5D:8B:4C:23"), T0) is not None


def test_services_per_device_are_capped() -> None:
    inv = DeviceTracker()
    for i in range(MAX_SERVICES_PER_DEVICE + 10):
        t = "_http._tcp.local."
        inv.observe(Observation(t, f"s{i}.{t}", f"s{i}", "evil.local.", ("10.0.0.1",), 80, {}), T0)
    [device] = inv.devices()
    assert inv.rejected_services == 10 and device.id == "host:evil"


def test_endpoints_skip_port_zero_and_prefer_the_best_service() -> None:
    inv = DeviceTracker()
    t_lpd, t_ipp = "_printer._tcp.local.", "_ipp._tcp.local."
    props = {"uuid": "abc-1"}
    inv.observe(Observation(t_lpd, f"P.{t_lpd}", "P", "p.local.", ("10.0.0.7",), 0, props), T0)
    device_id = inv.observe(Observation(t_ipp, f"P.{t_ipp}", "P", "p.local.", ("10.0.0.7",), 631, props), T0)
    assert device_id is not None
    assert inv.endpoints(device_id) == [("10.0.0.7", 631)]


def test_rate_limiter_allows_burst_then_rate_and_forgets_old_hosts() -> None:
    limiter = HostRateLimiter(rate_per_s=2, burst=3, max_hosts=2)
    assert [limiter.allow("a", 0.0) for _ in range(4)] == [True, True, True, False]
    assert limiter.allow("a", 0.5) is True  # one token back after 0.5 s at 2/s
    assert limiter.rejected == 1
    limiter.allow("b", 1.0)
    limiter.allow("c", 1.0)
    assert len(limiter) == 2


def test_missing_needs_absence_for_long_enough() -> None:
    inv = DeviceTracker()
    obs = airplay("Raum 12", "90:DD:5D:8B:4C:23")
    device_id = inv.observe(obs, T0)
    assert device_id is not None
    inv.service_removed(obs.service_name, T0)
    device = inv.get(device_id)
    assert device is not None
    since = inv.absent_since(device_id)
    assert not due_for_probe(device, since, T0 + timedelta(minutes=9), timedelta(minutes=10))
    assert due_for_probe(device, since, T0 + timedelta(minutes=10), timedelta(minutes=10))
    inv.set_state(device_id, MISSING)
    signal = missing_signal(inv.get(device_id), True, T0 + timedelta(minutes=12), since)  # type: ignore[arg-type]
    assert signal.key == f"device-missing:{device_id}" and signal.bad and signal.category == "device"
    assert signal.details["absent_s"] == 720 and signal.details["name"] == "Raum 12"
    assert "Raum 12" not in signal.title and signal.subject == device_id


def test_not_seen_list_is_daily_and_names_no_one() -> None:
    tz = ZoneInfo("Europe/Berlin")
    rule = NotSeenList(timedelta(days=7), time(7, 30), tz)
    inv = DeviceTracker()
    for i, mac in enumerate(("12:34:56:78:90:a1", "12:34:56:78:90:a2")):
        obs = mobdev(mac, f"pupil{i}.local.")
        inv.observe(obs, T0)
        inv.service_removed(obs.service_name, T0)
    monday = datetime(2025, 3, 10, 8, 1, tzinfo=UTC)  # 7 days and a minute later
    first = rule.evaluate(inv.devices(), monday)
    assert first.bad and first.key == "tablets-not-seen" and first.details["count"] == 2
    assert "pupil" not in first.title and first.subject is None
    # A tablet comes back the same day: the list stays as it was until tomorrow's report time.
    inv.observe(mobdev("12:34:56:78:90:a1", "pupil0.local."), monday)
    assert rule.evaluate(inv.devices(), monday + timedelta(hours=3)).details["count"] == 2
    next_day = rule.evaluate(inv.devices(), datetime(2025, 3, 11, 6, 31, tzinfo=UTC))  # 07:31 local
    assert next_day.details["count"] == 1 and next_day.details["list_date"] == "2025-03-11"

"""The class table and identification, on announcements shaped like real devices'.

Shapes from Home Assistant's zeroconf matchers, pyatv, ippsample and the Shelly docs.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.monitors.discovery.classes import CLASS_TABLE, DEVICE_CLASSES, browse_types
from agent.monitors.discovery.observation import Observation, identify, normalise_mac
from agent.monitors.discovery.sanitize import (
    MAX_NAME_CHARS,
    MAX_TXT_KEYS,
    MAX_TXT_VALUE_CHARS,
    clean_properties,
    clean_text,
    instance_label,
)


def obs(service_type: str, instance: str, host: str = "dev.local.", props: dict[str, str] | None = None,
        port: int = 80) -> Observation:
    t = f"{service_type}.local."
    lowered = {k.lower(): v for k, v in (props or {}).items()}
    return Observation(t, f"{instance}.{t}", instance, host, ("10.0.0.5",), port, lowered)


APPLE_TV_AIRPLAY = {"deviceid": "90:DD:5D:8B:4C:23", "features": "0x4A7FDFD5,0xBC157FDE", "model": "AppleTV6,2",
                    "srcvers": "566.25.43", "osvers": "15.0"}

CASES = [
    # (observation, class, id, name, model)
    (obs("_airplay._tcp", "Raum 12", props=APPLE_TV_AIRPLAY), "airplay", "mac:90:dd:5d:8b:4c:23", "Raum 12",
     "AppleTV6,2"),
    (obs("_airplay._tcp", "HomePod", props={"deviceid": "AA:BB:CC:00:11:22", "model": "AudioAccessory5,1"}),
     "airplay", "mac:aa:bb:cc:00:11:22", "HomePod", "AudioAccessory5,1"),
    (obs("_airplay._tcp", "[TV] Samsung", props={"manufacturer": "Samsung", "deviceid": "x1"}), "airplay",
     "id:x1", "[TV] Samsung", "Samsung"),
    (obs("_raop._tcp", "90DD5D8B4C23@Apple-TV Living", props={"am": "AppleTV6,2"}), "airplay",
     "mac:90:dd:5d:8b:4c:23", "Apple-TV Living", "AppleTV6,2"),
    (obs("_apple-mobdev2._tcp", "12:34:56:78:90:ab@fe80::de52:85ff:fece:c422", host="Lenas-iPad.local."),
     "tablet", "mac:12:34:56:78:90:ab", "Lenas-iPad", None),
    (obs("_companion-link._tcp", "Lenas iPad", host="Lenas-iPad.local.", props={"rpMd": "iPad13,4"}), "tablet",
     "host:lenas-ipad", "Lenas iPad", "iPad13,4"),
    (obs("_companion-link._tcp", "Wohnzimmer", props={"rpMd": "AppleTV6,2"}), "airplay", "host:dev", "Wohnzimmer",
     "AppleTV6,2"),
    (obs("_ipp._tcp", "EPSON XP-6000 Series", props={"rp": "ipp/print", "ty": "EPSON XP-6000 Series",
                                                     "UUID": "cfe92100-67c4-11d4-a45f-f8d027761251"}),
     "printer", "id:cfe92100-67c4-11d4-a45f-f8d027761251", "EPSON XP-6000 Series", "EPSON XP-6000 Series"),
    (obs("_printer._tcp", "Brother HL-L2350DW", props={"product": "(Brother HL-L2350DW series)"}, port=0),
     "printer", "host:dev", "Brother HL-L2350DW", "Brother HL-L2350DW series"),
    (obs("_pdl-datastream._tcp", "HP LaserJet", props={"ty": "HP LaserJet Pro M404dn"}), "printer", "host:dev",
     "HP LaserJet", "HP LaserJet Pro M404dn"),
    (obs("_googlecast._tcp", "Chromecast-4d2b1a3c9f8e7d6c5b4a39281706f5e4",
         props={"id": "4d2b1a3c9f8e7d6c5b4a39281706f5e4", "md": "Chromecast", "fn": "Beamer Aula", "ve": "05"}),
     "chromecast", "id:4d2b1a3c9f8e7d6c5b4a39281706f5e4", "Beamer Aula", "Chromecast"),
    (obs("_http._tcp", "shellyplus2pm-aabbccddeeff", props={"gen": "2", "id": "shellyplus2pm-aabbccddeeff"}),
     "meter", "id:shellyplus2pm-aabbccddeeff", "shellyplus2pm-aabbccddeeff", None),
    (obs("_http._tcp", "Shelly Plus 2PM [DDEEFF]", props={"gen": "2"}), "meter", "host:dev",
     "Shelly Plus 2PM [DDEEFF]", None),
    (obs("_shelly._tcp", "shellyplusplugs-441793d69718",
         props={"gen": "3", "id": "shellyplusplugs-441793d69718", "app": "PlusPlugS"}),
     "meter", "id:shellyplusplugs-441793d69718", "shellyplusplugs-441793d69718", "PlusPlugS"),
    (obs("_http._tcp", "DS920", props={"vendor": "Synology", "model": "DS920+"}), "nas", "host:dev", "DS920",
     "DS920+"),
    (obs("_device-info._tcp", "fileserver", props={"model": "MacSamba"}), "nas", "host:dev", "fileserver",
     "MacSamba"),
    (obs("_smb._tcp", "fileserver"), "nas", "host:dev", "fileserver", None),
    (obs("_esphomelib._tcp", "plug-7", props={"mac": "a4cf12b3c4d5", "board": "esp01_1m",
                                              "friendly_name": "Steckdose 7"}),
     "other", "mac:a4:cf:12:b3:c4:d5", "Steckdose 7", "esp01_1m"),
    (obs("_http._tcp", "router-webui"), "other", "host:dev", "router-webui", None),
    (obs("_airport._tcp", "Base Station"), "ap", "host:dev", "Base Station", None),
]


@pytest.mark.parametrize(("observation", "klass", "device_id", "name", "model"), CASES,
                         ids=[f"{c[0].service_type.split('.')[0]}-{c[1]}" for c in CASES])
def test_identify_real_announcements(observation: Observation, klass: str, device_id: str, name: str,
                                     model: str | None) -> None:
    ident = identify(observation)
    assert (ident.device_class, ident.device_id, ident.name, ident.model) == (klass, device_id, name, model)


def test_txt_keys_match_case_insensitively() -> None:
    upper = obs("_companion-link._tcp", "x", props={"RPMD": "IPAD14,3"})
    assert identify(upper).device_class == "tablet"


def test_table_is_data_that_covers_every_class_and_valid_types() -> None:
    classes = {rule.device_class for rule in CLASS_TABLE}
    assert classes <= set(DEVICE_CLASSES)
    assert {"tablet", "airplay", "printer", "meter", "chromecast", "nas", "other", "ap"} <= classes
    for service_type in browse_types():
        label = service_type.split(".")[0]
        assert service_type.endswith("._tcp.local.") or service_type.endswith("._udp.local.")
        assert len(label.encode()) <= 16  # zeroconf's strict check: '_' plus at most 15 bytes


def test_browse_types_adds_config_extras_normalised() -> None:
    types = browse_types(extra=["_hap._tcp", "_ssh._tcp.local."])
    assert "_hap._tcp.local." in types and "_ssh._tcp.local." in types
    assert len(types) == len(set(types))


def test_normalise_mac() -> None:
    assert normalise_mac("90DD5D8B4C23") == "90:dd:5d:8b:4c:23"
    assert normalise_mac("90-dd-5d-8b-4c-23") == "90:dd:5d:8b:4c:23"
    assert normalise_mac("not a mac") is None
    assert normalise_mac("90dd5d8b4c2") is None


def test_clean_text_decodes_safely_and_caps() -> None:
    assert clean_text(b"Lenas \xff\xfe iPad\x00\x07", 50) == "Lenas \ufffd\ufffd iPad"
    assert clean_text("a\u202eb\u200bc", 50) == "abc"  # bidi override and zero-width space are format chars
    assert len(clean_text(b"x" * 100_000, 20)) == 20
    assert clean_text(None, 5) == ""


def test_clean_properties_caps_keys_values_and_count() -> None:
    raw = {f"k{i}".encode(): b"v" * 1000 for i in range(100)}
    raw[b"MODEL"] = b"AppleTV6,2"
    props = clean_properties(raw)
    assert len(props) == MAX_TXT_KEYS
    assert all(len(v) <= MAX_TXT_VALUE_CHARS for v in props.values())
    assert clean_properties({b"Flag": None}) == {"flag": ""}


def test_instance_label_strips_type_and_caps() -> None:
    assert instance_label("Raum 12._airplay._tcp.local.", "_airplay._tcp.local.") == "Raum 12"
    assert len(instance_label("x" * 500 + "._ipp._tcp.local.", "_ipp._tcp.local.")) == MAX_NAME_CHARS


@given(st.dictionaries(st.binary(max_size=300), st.one_of(st.none(), st.binary(max_size=600)), max_size=60))
def test_clean_properties_never_raises_and_is_bounded(raw: dict[bytes, bytes | None]) -> None:
    props = clean_properties(raw)
    assert len(props) <= MAX_TXT_KEYS
    for key, value in props.items():
        assert key == key.lower() and len(key) <= 32 and len(value) <= MAX_TXT_VALUE_CHARS
        assert all(ord(ch) >= 32 for ch in key + value)


@given(st.text(max_size=300), st.text(max_size=300),
       st.dictionaries(st.text(max_size=40), st.text(max_size=300), max_size=10))
def test_identify_never_raises(instance: str, host: str, props: dict[str, str]) -> None:
    for service_type in ("_airplay._tcp", "_raop._tcp", "_apple-mobdev2._tcp", "_http._tcp", "_x._tcp"):
        ident = identify(obs(service_type, instance, host, props))
        assert ident.device_class in DEVICE_CLASSES and len(ident.device_id) <= 80

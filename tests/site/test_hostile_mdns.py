"""mDNS names and TXT records that could not be written back are cleaned at the door."""

from __future__ import annotations


def test_mdns_text_with_lone_surrogates_is_cleaned_at_the_door() -> None:
    # zeroconf hands names over as str; a name decoded with surrogate escapes must come out writable.
    from agent.monitors.discovery.sanitize import clean_properties, clean_text
    from protocol.encoding import dumps

    name = clean_text("Lenas \udcff iPad\ud800", 96)
    props = clean_properties({b"model\xff": b"iPad\xed\xa0\x80", b"k": None})
    assert dumps({"name": name, "props": props})  # no error: everything is valid UTF-8 now
    assert name == "Lenas  iPad"

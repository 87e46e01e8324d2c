"""mDNS text is cleaned of control and format characters exactly as Unicode's categories say."""

from __future__ import annotations

import sys
import unicodedata

from agent.monitors.discovery.sanitize import _not_control, clean_text


def test_every_code_point_is_kept_or_dropped_as_its_unicode_category_says() -> None:
    # The agent decides without unicodedata (whose tables would stay resident): same answer everywhere.
    wrong = [
        hex(code)
        for code in range(sys.maxunicode + 1)
        if _not_control(chr(code)) != (unicodedata.category(chr(code))[0] != "C")
    ]
    assert wrong == []


def test_clean_text_drops_controls_and_format_characters_but_keeps_separators() -> None:
    assert clean_text("Raum\u00a012\u200b\x1b[31m\t\u2028B", 96) == "Raum\u00a012[31m\u2028B"
    assert clean_text(b"Lena\xe2\x80\x8es iPad\x00", 96) == "Lenas iPad"
    assert clean_text("  plain  ", 96) == "plain"

"""Headless Debian Chromium through Playwright, launched as this machine allows (no download)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
# Without the background-networking flags Chromium keeps dialling out, and this closed
# network refuses it many times a second.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def require_chromium() -> None:
    """Skip with a reason when Debian's chromium is not installed (make test installs it)."""
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        pytest.skip("Debian chromium is not installed: run `make test` as root, or apt-get install chromium")


@contextmanager
def browser_page(tmp_path: Path, timezone_id: str | None = None) -> Iterator[object]:
    """A fresh page in a fresh headless Chromium with an empty profile (in ``timezone_id``, when given)."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, headless=True, args=FLAGS,
            **({"timezone_id": timezone_id} if timezone_id else {}),
        )
        try:
            yield browser.new_page()
        finally:
            browser.close()

"""Headless Chromium for tests of the HTML report: Debian's ``chromium`` through its own
``chromedriver`` (no driver or browser download), and the checks every loaded page must pass.

The fixture is named ``chrome``; a test module imports :func:`chrome_fixture` to use it.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


@pytest.fixture(name="chrome")
def chrome_fixture(tmp_path: Path) -> Iterator[Any]:
    """A fresh browser with its own profile; skipped where selenium or Chromium is missing."""
    webdriver = pytest.importorskip(
        "selenium.webdriver", reason="selenium not installed: pip install -e '.[test]'"
    )
    from selenium.webdriver.chrome.service import Service

    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if browser is None or driver is None:
        pytest.skip(
            "Debian chromium/chromium-driver not installed "
            "(apt-get install chromium chromium-driver)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in (
        *CHROMIUM_FLAGS,
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--window-size=1280,900",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    session = webdriver.Chrome(service=Service(driver), options=options)
    try:
        yield session
    finally:
        session.quit()


def js(chrome, script: str, *args):
    """The value of ``script`` run in the page (``arguments[i]`` are ``args``)."""
    return chrome.execute_script(script, *args)


def wait_for_images(chrome) -> None:
    """Until the page and every picture in it have loaded."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(chrome, 20).until(
        lambda d: js(
            d,
            "return document.readyState === 'complete' && "
            "Array.from(document.images).every(i => i.complete)",
        )
    )


def check_images_and_network(chrome) -> None:
    """Every picture decoded from a data URI, and nothing was fetched from anywhere."""
    broken = js(
        chrome,
        "return Array.from(document.images).filter(i => !(i.naturalWidth > 0) "
        "|| !i.currentSrc.startsWith('data:image/')).map(i => i.alt)",
    )
    assert broken == []
    fetched = js(chrome, "return performance.getEntriesByType('resource').map(e => e.name)")
    assert [url for url in fetched if not url.startswith("data:")] == []

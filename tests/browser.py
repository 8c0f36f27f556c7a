"""Headless Chromium for the browser tests (the built book, the app): skipped when missing, failed in CI."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

# Flags that work offline, as root, without a display.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)


def headless_chromium(profile_dir: Path, window_size: str):
    """A selenium driver of headless Chromium with its own profile folder.

    Args:
        profile_dir: An empty folder for Chromium's user data.
        window_size: ``"WIDTHxHEIGHT"`` in pixels, e.g. ``"1400x1000"``.

    Returns:
        The driver; the caller quits it.
    """
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not (chromium and driver_path):
        missing = (
            "chromium and chromedriver not found; install the Debian packages chromium and chromium-driver "
            "(`make browser`)"
        )
        if os.environ.get("CI"):  # CI installs them (make test runs make browser): missing there is a failure
            pytest.fail(missing)
        pytest.skip(missing)
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    width, height = window_size.split("x")
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile_dir}", f"--window-size={width},{height}"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(driver_path), options=options)

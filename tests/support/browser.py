"""Headless Chromium from Debian (packages chromium and chromium-driver, installed by
scripts/setup --test), driven by selenium through the system chromedriver: nothing is
downloaded."""

from __future__ import annotations

import shutil
import tempfile
from typing import Any, Iterator

from support import REPO

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
#: Screenshots the browser tests keep (the directory is ignored by git).
ARTIFACTS = REPO / "out" / "test-artifacts"
# As root on a machine without a network: no sandbox, no background connections.
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1400,1000")


def missing_browser() -> str | None:
    """A reason to skip, or None when Chromium and its driver are there."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if shutil.which(path) is None:
            return f"{path} is missing (scripts/setup --test installs chromium, chromium-driver)"
    return None


def chromium() -> Iterator[Any]:
    """A selenium WebDriver for a fresh headless Chromium profile; quits it afterwards."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="slimmer-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def console_errors(driver: Any) -> list[str]:
    """Console messages of level error (script errors, CSP violations) since the last call."""
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def alert_text(driver: Any) -> str | None:
    """The text of an open alert/confirm/prompt dialog, or None."""
    from selenium.common.exceptions import NoAlertPresentException
    try:
        return str(driver.switch_to.alert.text)
    except NoAlertPresentException:
        return None

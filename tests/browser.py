"""Headless Chromium for the browser tests: Debian's build, driven by playwright."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TIMEOUT_MS = 30_000


def sync_playwright_or_skip():
    """playwright's sync API, or a skip (a failure under CI) that says how to get the browser."""
    if not CHROMIUM.is_file():
        reason = f"{CHROMIUM} is missing; install it with: apt-get install -y chromium"
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the browser tests: {reason}")
        pytest.skip(reason)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the playwright package is missing; install the dev extra: pip install -e '.[dev]'")
    return sync_playwright

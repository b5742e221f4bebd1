"""A real headless Chromium driven by Playwright, and a report to open in it.

Without Playwright or a Chromium the browser tests skip with the reason, unless
the CI environment variable is set: then they fail, so CI cannot pass by skipping.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reports import render_report
from tests.browser.report_page import Page
from tests.reports.report_store import DEMO_CONFIG, ROUTES, build, demo_exchanges

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"browser tests cannot run in CI: {reason}", pytrace=False)
    pytest.skip(reason)


def chromium_path() -> str | None:
    explicit = os.environ.get("SHADOW_CHROMIUM")
    if explicit:
        return explicit if os.path.exists(explicit) else None
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None


@pytest.fixture(scope="module")  # Playwright holds an event loop: release it after its tests
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright is not installed (pip install playwright)")
    exe = chromium_path()
    if exe is None:
        unavailable("no Chromium found (install chromium or set SHADOW_CHROMIUM)")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="session")
def report_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("browser-report")
    db = build(tmp / "demo.duckdb", demo_exchanges(), config=DEMO_CONFIG)
    out = tmp / "report.html"
    render_report(db, str(out), routes=ROUTES)
    return out


@pytest.fixture
def page(browser: Any, report_file: Path) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    p = Page(context.new_page())
    p.page.goto(report_file.as_uri())
    try:
        yield p
    finally:
        context.close()
    assert p.errors == []
    assert all(u.startswith("file://") for u in p.requests), p.requests

"""The Cutover section in headless Chromium: it renders, runs nothing it holds, logs no error."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reports import render_report
from tests.browser.report_page import ARTIFACTS, Page
from tests.reports.test_cutover_report import ORDERS, USERS, cutover_store

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def cutover_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("browser-cutover")
    out = tmp / "report.html"
    render_report(cutover_store(tmp / "cutover.duckdb"), str(out))
    return out


@pytest.fixture
def cutover_page(browser: Any, cutover_report: Path) -> Iterator[tuple[Page, list[str]]]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    p = Page(context.new_page())
    console: list[str] = []

    def log(message: Any) -> None:
        if message.type in ("error", "warning"):  # e.g. a CSP violation, a bad SVG attribute
            console.append(f"{message.type}: {message.text}")

    p.page.on("console", log)
    p.page.goto(cutover_report.as_uri())
    try:
        yield p, console
    finally:
        context.close()
    assert p.errors == []
    assert console == []
    assert all(u.startswith("file://") for u in p.requests), p.requests


def test_cutover_section_renders_without_errors(cutover_page: tuple[Page, list[str]]) -> None:
    page, _ = cutover_page
    p = page.page
    section = p.locator("#cutover")
    section.scroll_into_view_if_needed()
    assert section.is_visible()
    routes = p.eval_on_selector_all("section.route", "s => s.map(x => x.dataset.route)")
    assert routes == [ORDERS, USERS]
    timeline = p.locator(f'section.route[data-route="{ORDERS}"] figure.timeline svg')
    box = timeline.bounding_box()
    assert box is not None and box["width"] > 400 and box["height"] > 100
    assert p.locator("#events tbody tr").count() == 5
    # The figures per bucket unfold, and the hostile reason stays text.
    p.locator(f'section.route[data-route="{ORDERS}"] details.buckets > summary').click()
    assert p.locator(f'section.route[data-route="{ORDERS}"] table.buckets').is_visible()
    assert p.evaluate("typeof window.__pwned") == "undefined"
    reason = p.locator('#events tr[data-kind="rollback"] td.reason').inner_text()
    assert reason.startswith("<script>window.__pwned=1</script>")
    ARTIFACTS.mkdir(exist_ok=True)
    orders = p.locator(f'section.route[data-route="{ORDERS}"]')
    orders.screenshot(path=str(ARTIFACTS / "report-cutover.png"))

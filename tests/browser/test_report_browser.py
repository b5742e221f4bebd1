"""The report in a real headless Chromium: sorting, filtering, drill-down, no script injection."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.report_page import ARTIFACTS, Page
from tests.reports.report_store import PWN

pytestmark = pytest.mark.browser

ALL = ["GET /api/orders/{id}", "GET /api/notes", "GET /api/users", "GET /api/health",
       "POST /api/start"]  # fmt: skip


def visible_endpoints(page: Any) -> list[str]:
    return list(
        page.eval_on_selector_all(
            "#endpoints tbody tr",
            "rows => rows.filter(r => !r.hidden && r.offsetParent !== null)"
            ".map(r => r.dataset.endpoint)",
        )
    )


def test_overview_screenshot(page: Page) -> None:
    p = page.page
    assert visible_endpoints(p) == ALL  # worst first
    assert p.locator('[data-k="parity"]').inner_text() == "81.2%"
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report-overview.png"
    p.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000


def test_table_sorts_by_a_clicked_header(page: Page) -> None:
    p = page.page
    requests = p.locator("#endpoints thead th", has_text="Requests")
    requests.click()
    assert requests.get_attribute("aria-sort") == "ascending"
    by_requests = ["POST /api/start", "GET /api/users", "GET /api/notes", "GET /api/health",
                   "GET /api/orders/{id}"]  # fmt: skip
    assert visible_endpoints(p) == by_requests
    requests.click()
    assert requests.get_attribute("aria-sort") == "descending"
    assert visible_endpoints(p) == by_requests[::-1]
    p.locator("#endpoints thead th", has_text="Endpoint").click()
    assert visible_endpoints(p) == sorted(ALL)
    p.locator("#endpoints thead th", has_text="Parity").first.click()
    # not compared (n/a) first, then 66.7 %, 75 %, and the two at 100 % in their prior order
    assert visible_endpoints(p)[:3] == ["POST /api/start", "GET /api/orders/{id}", "GET /api/notes"]


def test_table_filters_by_name_and_status(page: Page) -> None:
    p = page.page
    shown = p.locator("#shown")
    p.fill("#filter", "api/u")
    assert visible_endpoints(p) == ["GET /api/users"]
    assert shown.inner_text() == "1 of 5 shown"
    p.fill("#filter", "")
    assert visible_endpoints(p) == ALL
    p.select_option("#status-filter", "failing")
    assert visible_endpoints(p) == ["GET /api/orders/{id}", "GET /api/notes"]
    p.select_option("#status-filter", "errors")
    assert visible_endpoints(p) == ["GET /api/users"]
    p.select_option("#status-filter", "uncompared")
    assert visible_endpoints(p) == ["POST /api/start"]
    p.select_option("#status-filter", "failing")
    p.fill("#filter", "NOTES")  # case-insensitive, and combined with the status
    assert visible_endpoints(p) == ["GET /api/notes"]
    assert shown.inner_text() == "1 of 5 shown"


def test_clicking_an_endpoint_opens_its_section(page: Page) -> None:
    p = page.page
    row = p.locator('#endpoints tr[data-endpoint="GET /api/health"]')
    anchor = row.get_attribute("data-anchor")
    section = p.locator(f"section#{anchor}")
    body = section.locator(".ep-body")
    assert section.locator("details.ep").get_attribute("open") is None
    assert not body.is_visible()
    row.locator("td[data-col=requests]").click()  # anywhere on the row
    assert section.locator("details.ep").get_attribute("open") == ""
    assert body.is_visible()
    assert p.evaluate("location.hash") == f"#{anchor}"
    top = p.evaluate(f"document.getElementById('{anchor}').getBoundingClientRect().top")
    assert 0 <= top < p.evaluate("window.innerHeight") / 2  # scrolled to it
    assert p.evaluate("window.scrollY") > 0
    assert "focus" in (section.get_attribute("class") or "")
    # the link in another row opens that section too
    p.locator('#endpoints tr[data-endpoint="GET /api/users"] a').click()
    users = p.locator(f"section#{p.evaluate('location.hash.slice(1)')}")
    assert users.get_attribute("data-endpoint") == "GET /api/users"
    assert users.locator(".ep-body").is_visible()


def test_markup_in_a_body_does_not_run(page: Page) -> None:
    p = page.page
    p.locator('#endpoints tr[data-endpoint="GET /api/notes"]').click()
    section = p.locator('section[data-endpoint="GET /api/notes"]')
    sample = section.locator("details.sample").first
    assert sample.get_attribute("open") == ""
    assert p.evaluate("typeof window.__pwned") == "undefined"
    assert p.evaluate("document.scripts.length") == 1
    body = sample.locator(".side").nth(1).locator("pre.body")
    assert PWN in body.inner_text()
    assert body.is_visible()
    # shown as text in the cluster table too
    assert section.locator("table.clusters.real", has_text=PWN).is_visible()


def test_curl_command_shown_and_copyable(page: Page) -> None:
    p = page.page
    p.locator('#endpoints tr[data-endpoint="GET /api/orders/{id}"]').click()
    sample = p.locator('section[data-endpoint="GET /api/orders/{id}"] details.sample').first
    sample.locator("details.repro > summary").click()
    command = sample.locator(".curl pre").nth(1)
    text = command.inner_text()
    assert text.startswith("curl -sS 'http://cand.test:9000/api/orders/")
    assert "token=[REDACTED]" in text and "'Authorization: [REDACTED]'" in text
    assert "s3cr3t" not in p.content()
    p.context.grant_permissions(["clipboard-read", "clipboard-write"])
    button = sample.locator("button.copy").nth(1)
    assert button.inner_text() == "copy"
    button.click()
    p.wait_for_function("b => b.textContent === 'copied'", arg=button.element_handle())
    assert button.inner_text() == "copied"
    assert sample.locator("button.copy").nth(0).inner_text() == "copy"  # only the one clicked
    assert p.evaluate("navigator.clipboard.readText()") == command.text_content()

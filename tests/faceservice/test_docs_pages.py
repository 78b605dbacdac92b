"""The API docs pages in a real browser with no internet: Debian's Chromium driven by
Playwright against a real server process, every request to anywhere but the server
itself aborted. Both pages must render the operations from what the service serves."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

# The same server (runserver on the committed test database) and browser as the console's test.
from tests.audit.console.test_browser import browser, server  # noqa: F401 - pytest fixtures

LOOPBACK = "127.0.0.1"


@pytest.fixture
def offline_page(browser):  # noqa: F811 - the imported fixture
    """A page whose every request to another host is aborted, and remembered."""
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    context.set_default_timeout(20_000)
    blocked: list[str] = []

    def only_loopback(route):
        if urlsplit(route.request.url).hostname == LOOPBACK:
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    context.route("**/*", only_loopback)
    page = context.new_page()
    page.blocked = blocked
    yield page
    context.close()


def test_swagger_ui_renders_the_operations_offline(django_db_setup, server, offline_page):  # noqa: F811
    page = offline_page
    page.goto(f"{server}/api/docs/")
    page.locator(".opblock-summary-path[data-path='/v1/search']").first.wait_for()
    assert page.locator(".info .title").inner_text().startswith("Face search service API")
    assert page.locator(".opblock").count() > 20
    scripts = page.locator("script[src]").evaluate_all("nodes => nodes.map(n => n.src)")
    assert scripts and all(urlsplit(src).hostname == LOOPBACK for src in scripts), scripts
    assert page.blocked == []  # it did not even try to reach a third party


def test_redoc_renders_the_operations_offline(django_db_setup, server, offline_page):  # noqa: F811
    page = offline_page
    page.goto(f"{server}/api/redoc/")
    page.get_by_role("heading", name="Face search service API").first.wait_for()
    operation = page.locator("h2", has_text="Search").first
    operation.wait_for()
    assert page.locator("[data-section-id^='operation/']").count() > 20
    assert page.blocked == []


def test_static_files_are_served_by_the_service(django_db_setup, server, offline_page):  # noqa: F811
    answer = offline_page.context.request.get(
        f"{server}/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js")
    assert answer.status == 200
    assert "javascript" in answer.headers["content-type"]

"""The auditors' console in a real browser: Debian's Chromium driven by Playwright,
against a real server process (runserver) on the committed test database."""

from __future__ import annotations

import csv
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.audit.conftest import totp_now
from tests.conftest import PROJECT_DIR

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOT = Path("/tmp/audit-console.png")
PASSWORD = "correct horse battery staple"

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} is missing (./dev test installs Debian's chromium as root)",
                allow_module_level=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`manage.py runserver --noreload` on a free port, with the test database's environment."""
    port = free_port()
    log = tmp_path_factory.mktemp("server") / "runserver.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [sys.executable, str(PROJECT_DIR / "manage.py"), "runserver", "--noreload", "--skip-checks",
             f"127.0.0.1:{port}"], env=dict(os.environ), cwd=PROJECT_DIR, stdout=output, stderr=output,
            start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"runserver did not start: {log.read_text()[-2000:]}") from None
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(10)


@pytest.fixture(scope="module")
def browser():
    # Playwright's sync API keeps an event loop running in this thread; Django
    # would then refuse the tests' own ORM calls as "async". They are not.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_api.sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            yield chromium
            chromium.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(browser, tmp_path):
    context = browser.new_context(accept_downloads=True, viewport={"width": 1440, "height": 900})
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()


def committed_auditor():
    from audit.console.auth import create_staff_auditor
    from audit.services import Actor

    created = create_staff_auditor(username=f"auditor-{uuid.uuid4().hex[:8]}", password=PASSWORD,
                                   actor=Actor.operator("tests"))
    return created.user, created.device


def committed_tenants():
    """Two tenants with the kinds of events an auditor looks for."""
    from audit.services import Actor, record_event
    from faceservice.tenancy import tenant_context
    from tenants import services

    tenants, events = [], {}
    for label in ("Acme Retail", "Globex Security"):
        tenant = services.create_tenant(name=f"{label} {uuid.uuid4().hex[:4]}", actor=Actor.operator("tests"))
        key = Actor(type="api_key", id=str(uuid.uuid4()), name="search key", roles=("searcher",))
        with tenant_context(tenant.id):
            events[tenant.id, "search"] = record_event(
                tenant_id=tenant.id, actor=key, action="search", target={"job_id": str(uuid.uuid4())},
                details={"matches": 3, "faces_in_query": 1})
            record_event(tenant_id=tenant.id, actor=Actor.system("indexer"), action="faces.indexed",
                         target={"asset_id": "shelf-cam-7/2026-11-22T08:00"}, details={"faces": 4})
            record_event(tenant_id=tenant.id, actor=Actor.system("kms"), action="key.rotated",
                         target={"key_version": 2}, details={"faces_reencrypted": 120})
            record_event(tenant_id=tenant.id, actor=key, action="faces.deleted",
                         target={"subject_id": "customer-1138"}, details={"faces": 2},
                         receipt_id=uuid.uuid4())
        tenants.append(tenant)
    return tenants, events


def sign_in(page, server, user, code: str):
    page.goto(f"{server}/console/login")
    page.fill("#id_username", user.username)
    page.fill("#id_password", PASSWORD)
    page.fill("#id_otp_token", code)
    page.click("button.primary")
    page.wait_for_load_state("domcontentloaded")


def test_auditor_signs_in_filters_exports_and_cannot_change_anything(committed_db, server, page):
    from audit.models import PLATFORM_CHAIN, AuditEvent
    from faceservice.tenancy import platform_scope

    (acme, globex), events = committed_tenants()
    user, device = committed_auditor()

    page.goto(f"{server}/console/")
    assert "/console/login" in page.url  # signed out: sent to sign in
    sign_in(page, server, user, totp_now(device))
    assert page.url == f"{server}/console/", page.content()[:2000]
    assert page.locator("h1").inner_text() == "Audit events"

    # Filter: one tenant, one action.
    page.select_option("#id_chain", str(acme.id))
    page.fill("#id_action", "search")
    page.click("text=Apply")
    page.wait_for_load_state("domcontentloaded")
    rows = page.locator("table.events tbody tr")
    assert rows.count() == 1
    assert "search" in rows.first.inner_text() and acme.name in rows.first.inner_text()
    assert globex.name not in page.locator("table.events").inner_text()

    # All of Acme's events, for the screenshot.
    page.goto(f"{server}/console/?chain={acme.id}")
    assert page.locator("table.events tbody tr").count() >= 5
    page.screenshot(path=str(SCREENSHOT), full_page=True)  # left in /tmp to look at; never committed
    assert SCREENSHOT.stat().st_size > 10_000

    # Export what the filter shows.
    page.goto(f"{server}/console/?chain={acme.id}&action=search")
    with page.expect_download() as download:
        page.click("a.button:has-text('CSV')")
    rows = list(csv.DictReader(open(download.value.path(), newline="")))  # noqa: SIM115
    assert [(r["tenant_id"], r["action"]) for r in rows] == [(str(acme.id), "search")]
    assert rows[0]["id"] == str(events[acme.id, "search"].id)

    # Other pages render.
    page.click("nav.mainnav >> text=Deletion receipts")
    assert "customer-1138" in page.locator("table.events").inner_text()
    page.click("nav.mainnav >> text=Key history")
    assert "key.rotated" in page.locator("table.events").inner_text()
    page.click("nav.mainnav >> text=Chain verification")
    assert acme.name in page.locator("table.events").inner_text()

    # Read-only: nothing offers a change, and a POST to a change URL is refused.
    page.goto(f"{server}/console/events/{events[acme.id, 'search'].id}")
    controls = " ".join(page.locator("button, input[type=submit], a").all_inner_texts()).lower()
    for word in ("add", "change", "edit", "delete", "save"):
        assert word not in controls.split(), controls
    token = page.locator("input[name=csrfmiddlewaretoken]").first.get_attribute("value")
    refused = page.context.request.post(f"{server}/console/events/{events[acme.id, 'search'].id}",
                                        form={"csrfmiddlewaretoken": token, "action": "nothing"})
    assert refused.status == 405
    admin = page.context.request.post(f"{server}/staff/audit/auditevent/{events[acme.id, 'search'].id}/change/",
                                      form={"csrfmiddlewaretoken": token, "action": "nothing"},
                                      max_redirects=0)
    assert admin.status in (302, 404)

    with platform_scope():
        assert AuditEvent.objects.get(id=events[acme.id, "search"].id).action == "search"
        mine = list(AuditEvent.objects.filter(chain=PLATFORM_CHAIN, actor_id=str(user.pk)).order_by("seq")
                    .values_list("action", flat=True))
    assert mine[0] == "console.login"
    assert "console.exported" in mine and mine.count("console.viewed") >= 6


def test_wrong_codes_lock_the_account_in_the_browser(committed_db, server, page, settings):
    user, device = committed_auditor()
    for _ in range(settings.CONSOLE_LOCKOUT_THRESHOLD - 1):
        sign_in(page, server, user, "000000")
        assert "not right" in page.locator(".alert").inner_text()
    sign_in(page, server, user, "000000")
    assert "locked" in page.locator(".alert").inner_text()
    sign_in(page, server, user, totp_now(device))  # the right code no longer helps
    assert "locked" in page.locator(".alert").inner_text()
    page.goto(f"{server}/console/")
    assert "/console/login" in page.url

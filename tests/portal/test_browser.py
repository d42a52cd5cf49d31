"""End to end in headless Chromium (Debian's /usr/bin/chromium driven by Playwright; no browser is
downloaded): a reviewer approves a campaign from the work queue, a visitor finds the certificate in
the public registry and prints it; running jobs' bars move without a reload. Screenshots go to
test-artifacts/screenshots/."""

from __future__ import annotations

import os
import re

import pytest

from tests.browser import BROWSER_MARKS, SHOTS, chromium

# Playwright's sync API runs an event loop in this thread; Django's ORM calls from the test body are
# still synchronous and safe here.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

PASSWORD = "a-long-test-password-7"  # noqa: S105 - test users only

pytestmark = BROWSER_MARKS


@pytest.fixture(scope="module")
def browser():
    with chromium() as launched:
        yield launched


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    # Nothing may come from the internet: every request goes to the live server.
    external = []
    page.on(
        "request",
        lambda request: None if request.url.startswith(live_server.url) else external.append(request.url),
    )
    yield page
    context.close()
    assert external == []


def with_password(user):
    user.set_password(PASSWORD)
    user.save(update_fields=["password"])
    return user


def log_in(page, user) -> None:
    page.goto("/login/")
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"/$"))


def test_a_reviewer_approves_from_the_queue_and_a_visitor_prints_the_certificate(cast, awaiting, page):
    from apps.certificates.models import Certificate

    campaign = awaiting(gemm={"float32": 0.9, "bfloat16": 0.85})
    reviewer = with_password(cast.reviewer)

    log_in(page, reviewer)
    page.screenshot(path=SHOTS / "01-reviewer-dashboard.png", full_page=True)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Work queue").click()
    page.get_by_role("link", name=f"Campaign {campaign.pk}", exact=True).click()
    page.wait_for_url(f"**/campaigns/{campaign.pk}/")
    assert page.locator("svg.roofline circle.point").count() >= 2
    assert page.locator("svg.latency").is_visible()
    assert page.locator("table.heatmap td.heat-1, table.heatmap td.heat-2").count() > 0
    page.screenshot(path=SHOTS / "02-campaign-evidence.png", full_page=True)

    page.get_by_role("button", name="Approve").click()  # no reason: the browser or the server refuses
    assert not Certificate.objects.filter(campaign=campaign).exists()
    page.get_by_label(re.compile("^Reason")).first.fill(
        "Evidence complete: conformance, accuracy and integrity verified."
    )
    page.get_by_role("button", name="Approve").click()
    page.get_by_text(re.compile(r"Approved\. Certificate .* issued\.")).wait_for()
    certificate = Certificate.objects.get(campaign=campaign)
    page.screenshot(path=SHOTS / "03-approved.png", full_page=True)
    page.get_by_role("link", name=f"certificate {certificate.serial}").click()
    page.get_by_text("Signature valid").wait_for()
    page.screenshot(path=SHOTS / "04-certificate-as-reviewer.png", full_page=True)

    page.get_by_role("button", name="Log out").click()
    page.goto("/")
    page.get_by_label(re.compile("Search the registry")).fill(certificate.chip.sku)
    page.get_by_role("button", name="Search").click()
    page.wait_for_url(re.compile(r"/registry/\?q="))
    page.screenshot(path=SHOTS / "05-registry-search.png", full_page=True)
    page.get_by_role("link", name=certificate.serial).click()
    page.get_by_text("Authentic and active until").wait_for()
    assert page.get_by_role("button", name="Print this certificate").is_visible()
    page.emulate_media(media="print")
    assert not page.locator("header.site-header").is_visible()  # the print layout hides navigation
    page.screenshot(path=SHOTS / "06-certificate-print.png", full_page=True)
    page.pdf(path=str(SHOTS / "06-certificate.pdf"))
    assert (SHOTS / "06-certificate.pdf").stat().st_size > 10_000


def test_a_buyer_compares_chips_without_javascript(cast, certified, browser, live_server):
    first, second = certified(), certified()
    buyer = with_password(cast.buyer)
    context = browser.new_context(
        base_url=live_server.url, java_script_enabled=False, viewport={"width": 1280, "height": 900}
    )
    page = context.new_page()
    log_in(page, buyer)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Registry").click()
    page.get_by_label(f"Compare {first.serial}").check()
    page.get_by_label(f"Compare {second.serial}").check()
    page.get_by_role("button", name="Compare side by side").click()
    page.wait_for_url(re.compile(r"/registry/compare/\?serial="))
    assert page.get_by_role("columnheader", name=first.serial).is_visible()
    assert page.get_by_role("columnheader", name=second.serial).is_visible()
    page.screenshot(path=SHOTS / "07-compare.png", full_page=True)
    context.close()


def test_keyboard_users_reach_the_skip_link_first(page):
    page.goto("/registry/")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip-link"
    page.keyboard.press("Enter")
    assert page.evaluate("location.hash") == "#main"


def test_running_jobs_progress_without_a_reload(cast, awaiting, page):
    from apps.runs.models import Campaign, CampaignState, Job

    campaign = awaiting()
    Campaign.objects.filter(pk=campaign.pk).update(state=CampaignState.RUNNING)
    Job.objects.filter(campaign=campaign).update(state="running", progress=0.1, progress_message="warming up")
    log_in(page, with_password(cast.owner))
    page.goto(f"/campaigns/{campaign.pk}/")
    job = Job.objects.filter(campaign=campaign, suite="conformance").get()
    row = page.locator(f'[data-job-id="{job.pk}"]')
    assert row.locator("[data-job-percent]").inner_text() == "10%"
    page.evaluate("window.__sameDocument = true")  # gone if the page reloads
    Job.objects.filter(pk=job.pk).update(progress=0.75, progress_message="matmul float32", eta_seconds=12)
    row.get_by_text("75%").wait_for()
    assert "matmul float32" in row.inner_text() and "about 12 s left" in row.inner_text()
    assert page.evaluate("window.__sameDocument") is True
    page.screenshot(path=SHOTS / "08-live-progress.png", full_page=True)

"""Every portal page per role: who gets it, who gets 403 or 404, and what each role is offered."""

from __future__ import annotations

import pytest
from django.contrib.messages import get_messages

from apps.runs.models import CampaignState
from tests.factories import RunnerFactory

pytestmark = pytest.mark.django_db

AUTHORITY_PAGES = ["/queue/", "/runners/"]
VENDOR_PAGES = ["/campaigns/new/"]
MEMBER_PAGES = ["/campaigns/", "/chips/", "/targets/", "/models/"]
PUBLIC_PAGES = ["/", "/registry/", "/login/"]


@pytest.mark.parametrize("url", PUBLIC_PAGES)
def test_public_pages_open_to_anonymous_visitors(login, url):
    assert login(None).get(url).status_code == 200


@pytest.mark.parametrize("url", AUTHORITY_PAGES + VENDOR_PAGES + MEMBER_PAGES)
def test_member_pages_send_anonymous_visitors_to_the_login(login, url):
    response = login(None).get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=")


@pytest.mark.parametrize(
    ("who", "url", "status"),
    [
        *[("reviewer", u, 200) for u in AUTHORITY_PAGES + MEMBER_PAGES],
        *[("platform_admin", u, 200) for u in AUTHORITY_PAGES + MEMBER_PAGES],
        ("reviewer", "/campaigns/new/", 403),
        *[("owner", u, 200) for u in VENDOR_PAGES + MEMBER_PAGES],
        *[("owner", u, 403) for u in AUTHORITY_PAGES],
        *[("buyer", u, 403) for u in AUTHORITY_PAGES + VENDOR_PAGES + MEMBER_PAGES],
        *[(w, "/", 200) for w in ("reviewer", "platform_admin", "owner", "vendor_admin", "buyer")],
    ],
)
def test_each_role_gets_its_pages_and_only_those(cast, login, who, url, status):
    assert login(getattr(cast, who)).get(url).status_code == status


def test_navigation_follows_the_role(cast, login):
    reviewer_page = login(cast.reviewer).get("/").content.decode()
    assert 'href="/queue/"' in reviewer_page and 'href="/runners/"' in reviewer_page
    assert 'href="/procurement/"' not in reviewer_page
    vendor_page = login(cast.owner).get("/").content.decode()
    assert 'href="/campaigns/new/"' in vendor_page and 'href="/queue/"' not in vendor_page
    buyer_page = login(cast.buyer).get("/").content.decode()
    assert 'href="/procurement/"' in buyer_page and 'href="/campaigns/"' not in buyer_page
    public = login(None).get("/").content.decode()
    assert 'href="/registry/"' in public and "Log in" in public


def test_the_skip_link_and_main_landmark_are_on_every_page(login):
    page = login(None).get("/registry/").content.decode()
    assert '<a class="skip-link" href="#main">' in page and '<main id="main"' in page


def test_empty_states_say_what_to_do_next(cast, login):
    assert "Nothing awaits review" in login(cast.reviewer).get("/queue/").content.decode()
    vendor_home = login(cast.owner).get("/").content.decode()
    assert "Request certification" in vendor_home and "You have no hardware target yet" in vendor_home
    assert "No runner registered" in login(cast.reviewer).get("/runners/").content.decode()
    assert "No certificate matches" in login(None).get("/registry/?q=nothing").content.decode()


def test_a_vendor_opening_another_vendors_campaign_gets_404(cast, login, awaiting):
    campaign = awaiting()
    foreign = login(cast.foreign)
    assert foreign.get(f"/campaigns/{campaign.pk}/").status_code == 404
    assert foreign.get(f"/campaigns/{campaign.pk}/progress.json").status_code == 404
    assert foreign.post(f"/campaigns/{campaign.pk}/approve/", {"approve-reason": "x"}).status_code == 403
    assert login(cast.owner).get(f"/campaigns/{campaign.pk}/").status_code == 200
    assert login(cast.buyer).get(f"/campaigns/{campaign.pk}/").status_code == 403


def test_the_work_queue_lists_awaiting_campaigns_oldest_first_with_their_age(cast, login, awaiting):
    from datetime import timedelta

    from django.utils import timezone

    from apps.runs.models import Campaign

    newer, older = awaiting(), awaiting()
    Campaign.objects.filter(pk=older.pk).update(finished_at=timezone.now() - timedelta(days=3))
    page = login(cast.reviewer).get("/queue/").content.decode()
    assert page.index(f"Campaign {older.pk}<") < page.index(f"Campaign {newer.pk}<")
    assert "3\xa0days" in page


def test_the_campaign_page_shows_specs_criteria_and_every_chart(cast, login, awaiting):
    campaign = awaiting(integrity={"output_consistency": "pass", "caching": "fail"}, unstable=2)
    page = login(cast.reviewer).get(f"/campaigns/{campaign.pk}/").content.decode()
    chip = campaign.target.chip
    assert chip.sku in page and "Declared peaks" in page and "fp32 67" in page
    for criterion in ("B1", "B2", "B3", "B4"):
        assert f'<th scope="row">{criterion} ' in page
    assert 'class="heatmap"' in page and "heat-0" in page
    assert '<svg class="chart roofline"' in page and "declared float32 peak" in page
    assert '<svg class="chart latency"' in page
    assert "cosine_min" in page
    assert "caching: fail" in page
    assert "Integrity check caching" in page and "unstable" in page  # anomalies listed


def test_the_reviewer_is_offered_approve_reject_and_waive(cast, login, awaiting):
    campaign = awaiting(gemm={"float32": 0.1})  # B4 (not a blocker) fails: waivable
    page = login(cast.reviewer).get(f"/campaigns/{campaign.pk}/").content.decode()
    assert f'action="/campaigns/{campaign.pk}/approve/"' in page
    assert f'action="/campaigns/{campaign.pk}/reject/"' in page
    assert f'action="/campaigns/{campaign.pk}/waive/"' in page and "Waive B4" in page


def test_no_approve_button_with_a_failed_blocker(cast, login, awaiting):
    campaign = awaiting(conformance={"float32": {"pass": 10, "fail": 10}})
    page = login(cast.reviewer).get(f"/campaigns/{campaign.pk}/").content.decode()
    assert f'action="/campaigns/{campaign.pk}/approve/"' not in page
    assert "Not possible: failed blocker criteria B1" in page
    assert f'action="/campaigns/{campaign.pk}/reject/"' in page


def test_no_review_forms_for_vendors_or_a_reviewers_own_submission(cast, login, awaiting):
    campaign = awaiting()
    vendor_page = login(cast.owner).get(f"/campaigns/{campaign.pk}/").content.decode()
    assert "/approve/" not in vendor_page and "/reject/" not in vendor_page
    own = awaiting(submitted_by=cast.reviewer)
    page = login(cast.reviewer).get(f"/campaigns/{own.pk}/").content.decode()
    assert "/approve/" not in page and "You may not review a campaign you submitted." in page


def test_progress_json_reports_each_job(cast, login, awaiting):
    campaign = awaiting()
    campaign.jobs.filter(suite="conformance").update(
        state="running", progress=0.42, progress_message="matmul"
    )
    data = login(cast.owner).get(f"/campaigns/{campaign.pk}/progress.json").json()
    assert data["state"] == CampaignState.AWAITING_REVIEW and data["active"] is False
    job = next(j for j in data["jobs"] if j["suite"] == "conformance")
    assert job["progress"] == 0.42 and job["message"] == "matmul" and "challenge" not in job


def test_a_running_campaign_has_bars_that_work_without_javascript(cast, login, awaiting):
    campaign = awaiting()
    type(campaign).objects.filter(pk=campaign.pk).update(state=CampaignState.RUNNING)
    campaign.jobs.update(state="running", progress=0.5)
    page = login(cast.owner).get(f"/campaigns/{campaign.pk}/").content.decode()
    assert '<progress max="1" value="0.500"' in page and "50%" in page
    assert f'data-progress-url="/campaigns/{campaign.pk}/progress.json"' in page
    assert "js/progress.js" in page


def test_runners_page_shows_heartbeat_fingerprint_current_job_and_schedules(cast, login, awaiting):
    from django.utils import timezone
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    campaign = awaiting()
    runner = RunnerFactory(
        status="online",
        last_heartbeat_at=timezone.now(),
        last_fingerprint={"backend": "cuda", "device_name": "Accelerator X", "torch_version": "2.4.0"},
    )
    campaign.jobs.filter(suite="conformance").update(state="running", runner=runner)
    every = IntervalSchedule.objects.create(every=5, period=IntervalSchedule.MINUTES)
    PeriodicTask.objects.create(name="runner health", task="runs.runners_mark_stale", interval=every)
    page = login(cast.platform_admin).get("/runners/").content.decode()
    assert runner.name in page and "Accelerator X" in page and "Online" in page
    assert f'href="/campaigns/{campaign.pk}/"' in page
    assert (
        "runner health" in page and "runs.runners_mark_stale" in page and "/admin/django_celery_beat/" in page
    )


def test_messages_confirm_what_was_done(cast, login, awaiting):
    campaign = awaiting()
    client = login(cast.reviewer)
    response = client.post(f"/campaigns/{campaign.pk}/approve/", {"approve-reason": "Complete."}, follow=True)
    assert (
        any("Certificate" in str(m) for m in get_messages(response.wsgi_request))
        or "Certificate" in response.content.decode()
    )

"""Forms: each decision calls its service; bad input and the services' refusals show in place; CSRF."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from apps.certificates.models import Certificate, CertificateStatus, CriterionResult, Review
from apps.runs.models import Campaign, CampaignState, Job
from tests.factories import HardwareTargetFactory, ModelArtifactFactory

pytestmark = pytest.mark.django_db


def test_approving_with_a_reason_issues_the_certificate(cast, login, awaiting):
    campaign = awaiting()
    response = login(cast.reviewer).post(
        f"/campaigns/{campaign.pk}/approve/", {"approve-reason": "Evidence complete."}
    )
    assert response.status_code == 302 and response["Location"] == f"/campaigns/{campaign.pk}/"
    certificate = Certificate.objects.get(campaign=campaign)
    page = login(cast.reviewer).get(f"/campaigns/{campaign.pk}/").content.decode()
    assert f'href="/certificates/{certificate.serial}/"' in page


def test_approving_without_a_reason_shows_the_error_in_place(cast, login, awaiting):
    campaign = awaiting()
    response = login(cast.reviewer).post(f"/campaigns/{campaign.pk}/approve/", {"approve-reason": "  "})
    assert response.status_code == 400
    page = response.content.decode()
    assert "This field is required." in page and 'id="id_approve-reason_errors"' in page
    assert not Review.objects.filter(campaign=campaign).exists()


def test_the_service_refusal_of_a_failed_blocker_shows_in_place(cast, login, awaiting):
    campaign = awaiting(conformance={"float32": {"pass": 10, "fail": 10}})
    response = login(cast.reviewer).post(
        f"/campaigns/{campaign.pk}/approve/", {"approve-reason": "Looks fine."}
    )
    assert response.status_code == 400
    assert "Failed blocker criteria cannot be approved: B1" in response.content.decode()
    assert Campaign.objects.get(pk=campaign.pk).state == CampaignState.AWAITING_REVIEW


def test_a_reviewer_cannot_approve_their_own_submission(cast, login, awaiting):
    campaign = awaiting(submitted_by=cast.reviewer)
    response = login(cast.reviewer).post(f"/campaigns/{campaign.pk}/approve/", {"approve-reason": "Mine."})
    assert response.status_code == 400
    assert "You may not review a campaign you submitted." in response.content.decode()
    assert not Certificate.objects.filter(campaign=campaign).exists()


def test_a_platform_admin_is_refused_by_the_service(cast, login, awaiting):
    campaign = awaiting()
    response = login(cast.platform_admin).post(f"/campaigns/{campaign.pk}/approve/", {"approve-reason": "ok"})
    assert response.status_code == 400
    assert "Only reviewers of the certification authority" in response.content.decode()


def test_rejecting_ends_the_campaign(cast, login, awaiting):
    campaign = awaiting()
    response = login(cast.reviewer).post(
        f"/campaigns/{campaign.pk}/reject/", {"reject-reason": "Numbers are off."}
    )
    assert response.status_code == 302
    campaign.refresh_from_db()
    assert campaign.state == CampaignState.REJECTED and "Numbers are off." in campaign.state_reason


def test_waiving_a_failed_non_blocker(cast, login, awaiting):
    campaign = awaiting(gemm={"float32": 0.1})
    response = login(cast.reviewer).post(
        f"/campaigns/{campaign.pk}/waive/",
        {"criterion": "B4", "waive-B4-criterion": "B4", "waive-B4-reason": "Informational at this level."},
    )
    assert response.status_code == 302
    assert CriterionResult.objects.get(campaign=campaign, criterion_id="B4").waived


def test_waiving_a_blocker_is_refused_in_place(cast, login, awaiting):
    campaign = awaiting(conformance={"float32": {"pass": 10, "fail": 10}})
    response = login(cast.reviewer).post(
        f"/campaigns/{campaign.pk}/waive/",
        {"criterion": "B1", "waive-B1-criterion": "B1", "waive-B1-reason": "Please."},
    )
    assert response.status_code == 400
    assert "B1 is a blocker; a blocker cannot be waived." in response.content.decode()


def test_csrf_is_enforced_on_decisions(cast, awaiting):
    campaign = awaiting()
    client = Client(enforce_csrf_checks=True)
    client.force_login(cast.reviewer)
    assert client.post(f"/campaigns/{campaign.pk}/approve/", {"approve-reason": "x"}).status_code == 403
    assert not Review.objects.filter(campaign=campaign).exists()
    page = client.get(f"/campaigns/{campaign.pk}/").content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    response = client.post(
        f"/campaigns/{campaign.pk}/approve/", {"approve-reason": "ok", "csrfmiddlewaretoken": token}
    )
    assert response.status_code == 302 and Certificate.objects.filter(campaign=campaign).exists()


def test_csrf_is_enforced_on_the_login_form():
    client = Client(enforce_csrf_checks=True)
    assert client.post("/login/", {"username": "a", "password": "b"}).status_code == 403


@pytest.mark.parametrize(
    ("action", "status"), [("suspend", CertificateStatus.SUSPENDED), ("revoke", CertificateStatus.REVOKED)]
)
def test_reviewers_suspend_and_revoke_with_a_reason(cast, login, certified, action, status):
    certificate = certified()
    client = login(cast.reviewer)
    page = client.get(f"/certificates/{certificate.serial}/").content.decode()
    assert f'action="/certificates/{certificate.serial}/{action}/"' in page
    response = client.post(
        f"/certificates/{certificate.serial}/{action}/", {f"{action}-reason": "Surveillance failed."}
    )
    assert response.status_code == 302
    certificate.refresh_from_db()
    assert certificate.status == status


def test_status_forms_show_errors_in_place_and_are_hidden_from_others(cast, login, certified):
    certificate = certified()
    response = login(cast.reviewer).post(f"/certificates/{certificate.serial}/revoke/", {"revoke-reason": ""})
    assert response.status_code == 400 and "This field is required." in response.content.decode()
    Certificate.objects.filter(pk=certificate.pk).update(status=CertificateStatus.REVOKED)
    response = login(cast.reviewer).post(
        f"/certificates/{certificate.serial}/suspend/", {"suspend-reason": "x"}
    )
    assert (
        response.status_code == 400
        and "A revoked certificate cannot be suspended." in response.content.decode()
    )
    for user in (None, cast.buyer, cast.owner):
        page = login(user).get(f"/certificates/{certificate.serial}/").content.decode()
        assert "/suspend/" not in page and "/revoke/" not in page
    assert (
        login(cast.buyer)
        .post(f"/certificates/{certificate.serial}/revoke/", {"revoke-reason": "x"})
        .status_code
        == 403
    )


def test_a_vendor_submits_a_campaign_from_the_portal(
    cast, login, program, django_capture_on_commit_callbacks
):
    target = HardwareTargetFactory(chip__vendor=cast.vendor)
    model = ModelArtifactFactory(owner=cast.vendor)
    client = login(cast.owner)
    page = client.get("/campaigns/new/").content.decode()
    assert target.slug in page and model.name in page
    with django_capture_on_commit_callbacks(execute=False):  # no runner in this test: jobs stay queued
        response = client.post(
            "/campaigns/new/",
            {"target": target.pk, "program": program.pk, "level": "baseline", "models": [model.pk]},
        )
    campaign = Campaign.objects.get(target=target)
    assert response.status_code == 302 and response["Location"] == f"/campaigns/{campaign.pk}/"
    assert campaign.submitted_by == cast.owner and Job.objects.filter(campaign=campaign).count() == 3


def test_the_submission_form_shows_errors_in_place(cast, login, program):
    target = HardwareTargetFactory(chip__vendor=cast.vendor)
    foreign_target = HardwareTargetFactory(chip__vendor=cast.foreign_vendor)
    client = login(cast.owner)
    response = client.post(
        "/campaigns/new/", {"target": foreign_target.pk, "program": program.pk, "level": ""}
    )
    page = response.content.decode()
    assert response.status_code == 400
    assert "Select a valid choice." in page and "This field is required." in page
    assert foreign_target.slug not in page
    # The service's own refusal (baseline needs a model) lands on the models field.
    response = client.post(
        "/campaigns/new/", {"target": target.pk, "program": program.pk, "level": "baseline"}
    )
    assert response.status_code == 400 and "needs at least 1 model" in response.content.decode()
    assert not Campaign.objects.exists()

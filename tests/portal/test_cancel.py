"""Vendors cancel their own queued or running campaigns from the campaign page."""

from __future__ import annotations

import pytest

from apps.runs.models import Campaign, CampaignState, JobState
from apps.runs.services.campaigns import campaign_submit


@pytest.fixture
def queued(cpu_world, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    return campaign_submit(
        vendor=cpu_world.vendor,
        target=cpu_world.target,
        program=cpu_world.program,
        level="basic",
        model_artifacts=[],
        submitted_by=cpu_world.engineer,
    )


@pytest.fixture
def cpu_world(db):
    from tests.runs.world import make_world

    return make_world()


@pytest.mark.slow
def test_a_vendor_cancels_its_campaign_with_a_reason(cpu_world, queued, client):
    client.force_login(cpu_world.engineer)
    page = client.get(f"/campaigns/{queued.pk}/").content.decode()
    assert "Cancel campaign" in page
    response = client.post(f"/campaigns/{queued.pk}/cancel/", {"cancel-reason": "Wrong driver registered."})
    assert response.status_code == 302
    queued.refresh_from_db()
    assert queued.state == CampaignState.CANCELLED and queued.state_reason == "Wrong driver registered."
    assert all(job.state == JobState.CANCELLED for job in queued.jobs.all())
    assert "Cancel campaign" not in client.get(f"/campaigns/{queued.pk}/").content.decode()


def test_a_cancel_without_a_reason_shows_the_error_in_place(cpu_world, queued, client):
    client.force_login(cpu_world.engineer)
    response = client.post(f"/campaigns/{queued.pk}/cancel/", {"cancel-reason": ""})
    assert response.status_code == 400 and "This field is required" in response.content.decode()
    assert Campaign.objects.get(pk=queued.pk).state == CampaignState.QUEUED


@pytest.mark.parametrize("who, status", [("foreign_engineer", 404), ("reviewer", 403)])
def test_only_the_campaigns_vendor_may_cancel(cpu_world, queued, client, who, status):
    client.force_login(getattr(cpu_world, who))
    response = client.post(f"/campaigns/{queued.pk}/cancel/", {"cancel-reason": "mine now"})
    assert response.status_code == status
    assert Campaign.objects.get(pk=queued.pk).state == CampaignState.QUEUED

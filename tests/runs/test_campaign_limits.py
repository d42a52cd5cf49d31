"""Open campaigns per target are capped (settings.MAX_OPEN_CAMPAIGNS_PER_TARGET)."""

from __future__ import annotations

import pytest

from apps.runs.models import Campaign, CampaignState
from apps.runs.services.campaigns import TooManyOpenCampaigns, campaign_submit

URL = "/api/v1/campaigns/"


def submit(client):
    return client.post(URL, {"target": "cpu-test", "program": "TST", "level": "basic"}, format="json")


@pytest.mark.slow
def test_thirty_campaigns_on_one_target_stop_at_the_cap_with_409(cpu_world, client_for, settings):
    settings.MAX_OPEN_CAMPAIGNS_PER_TARGET = 3
    client = client_for(cpu_world.engineer)
    statuses = [submit(client).status_code for _ in range(30)]
    assert statuses == [201] * 3 + [409] * 27
    error = submit(client).json()
    assert (error["status"], error["code"]) == (409, "conflict")
    assert "3 open campaign" in error["detail"]
    assert Campaign.objects.filter(target=cpu_world.target).count() == 3, "nothing half-saved"


def test_a_finished_campaign_frees_its_place(cpu_world, client_for, settings):
    settings.MAX_OPEN_CAMPAIGNS_PER_TARGET = 1
    client = client_for(cpu_world.engineer)
    first = submit(client).json()["id"]
    assert submit(client).status_code == 409
    Campaign.objects.filter(pk=first).update(state=CampaignState.REJECTED)
    assert submit(client).status_code == 201


def test_surveillance_re_runs_are_not_capped(cpu_world, settings):
    settings.MAX_OPEN_CAMPAIGNS_PER_TARGET = 1
    kwargs = dict(
        vendor=cpu_world.vendor,
        target=cpu_world.target,
        program=cpu_world.program,
        level="basic",
        model_artifacts=[],
    )
    campaign_submit(**kwargs)
    with pytest.raises(TooManyOpenCampaigns):
        campaign_submit(**kwargs)
    assert campaign_submit(**kwargs, purpose="surveillance").purpose == "surveillance"

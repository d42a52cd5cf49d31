"""A campaign's evidence as NIST OSCAL assessment-results, validated with compliance-trestle's OSCAL models."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from apps.runs.models import ResultDocument


def validate_oscal(document: dict):
    """trestle's pydantic models of OSCAL (imported here, not at collection: ~1 s of CPU in every
    xdist worker that collects this module, session 26)."""
    from trestle.oscal.assessment_results import AssessmentResults

    return AssessmentResults.model_validate(document)


def fetch(client_for, user, campaign):
    return client_for(user).get(f"/api/v1/reviews/{campaign.pk}/oscal/")


def test_a_certified_campaign_exports_valid_assessment_results(cast, certified, client_for):
    certificate = certified()
    campaign = certificate.campaign
    response = fetch(client_for, cast.reviewer, campaign)
    assert response.status_code == 200
    document = response.json()["assessment-results"]
    model = validate_oscal(document)
    result = model.results[0]
    shas = set(ResultDocument.objects.filter(job__campaign=campaign).values_list("sha256", flat=True))
    observed = {p.value for o in result.observations for p in o.props if p.name == "sha256"}
    assert observed == shas and len(shas) >= 3
    states = {f.target.target_id: f.target.status.state.value for f in result.findings}
    criteria = set(campaign.criterion_results.values_list("criterion_id", flat=True))
    assert set(states) == criteria and set(states.values()) <= {"satisfied", "not-satisfied"}
    # Findings link the observations of the documents their evidence names.
    observation_ids = {str(o.uuid) for o in result.observations}
    linked = {str(r.observation_uuid) for f in result.findings for r in f.related_observations or []}
    assert linked and linked <= observation_ids
    # Stable identifiers: the same campaign gives the same document (but for its publication time).
    again = fetch(client_for, cast.reviewer, campaign).json()["assessment-results"]
    assert again["uuid"] == document["uuid"] and again["results"] == document["results"]


def test_a_failed_blocker_is_a_not_satisfied_finding(cast, evaluated, client_for):
    campaign = evaluated(conformance={"float32": {"pass": 10, "fail": 90, "unsupported": 0}})
    document = fetch(client_for, cast.reviewer, campaign).json()["assessment-results"]
    validate_oscal(document)
    failed = set(campaign.criterion_results.filter(outcome="fail").values_list("criterion_id", flat=True))
    assert failed
    states = {
        f["target"]["target-id"]: f["target"]["status"]["state"] for f in document["results"][0]["findings"]
    }
    assert {cid for cid, state in states.items() if state == "not-satisfied"} == failed


def test_the_trestle_check_is_not_vacuous(cast, certified, client_for):
    document = fetch(client_for, cast.reviewer, certified().campaign).json()["assessment-results"]
    document["results"][0]["findings"][0]["target"]["status"]["state"] = "kind-of"
    with pytest.raises(ValidationError):
        validate_oscal(document)


def test_only_the_authority_and_the_campaigns_vendor_read_it(cast, certified, client_for):
    campaign = certified().campaign
    assert fetch(client_for, cast.owner, campaign).status_code == 200
    assert fetch(client_for, cast.foreign, campaign).status_code == 404
    assert fetch(client_for, None, campaign).status_code == 401

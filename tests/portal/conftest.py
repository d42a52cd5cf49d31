"""Fixtures of the portal tests: signing keys in a fresh directory, AIA 1.0, evaluated campaigns
made of evidence rows (tests/certificates/evidence.py) with conformance errors the heatmap can colour."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def signing_key_dir(settings, tmp_path):
    """Private signing keys go to a per-test directory, never to var/."""
    settings.CERT_SIGNING_KEY_DIR = tmp_path / "signing-keys"
    return settings.CERT_SIGNING_KEY_DIR


@pytest.fixture
def program(db):
    from tests.certificates.evidence import aia_program

    return aia_program()


def enrich_evidence(campaign, *, rows: int = 4) -> None:
    """What the runners report and the certificate tests' rows leave out: measured errors of
    conformance cases (the heatmap's ratios) and FLOPs and bytes of GEMMs (the roofline's points)."""
    from apps.runs.models import CaseResult, Measurement

    gemms = list(Measurement.objects.filter(document__job__campaign=campaign, kind="gemm"))
    for gemm in gemms:
        gemm.params = {"dtype": gemm.dtype, "params": {"flops": 2 * 4096**3, "bytes": 3 * 2 * 4096**2}}
        gemm.p90, gemm.p99 = 0.012, 0.02
    Measurement.objects.bulk_update(gemms, ["params", "p90", "p99"])

    cases = list(CaseResult.objects.filter(document__job__campaign=campaign).order_by("id")[:rows])
    for index, case in enumerate(cases):
        case.max_abs, case.max_rel, case.atol, case.rtol = 1e-5 * (index + 1), 1e-3, 1e-4, 1e-3
    CaseResult.objects.bulk_update(cases, ["max_abs", "max_rel", "atol", "rtol"])


@pytest.fixture
def awaiting(cast, program):
    """`awaiting(**evidence)`: a campaign of the vendor (submitted by its engineer), evaluated."""
    from apps.certificates.services import campaign_evaluate
    from tests.certificates.evidence import campaign_with_evidence

    def make(**evidence):
        evidence.setdefault("program", program)
        evidence.setdefault("submitted_by", cast.owner)
        vendor = evidence.pop("vendor", cast.vendor)
        campaign = campaign_with_evidence(vendor=vendor, **evidence)
        enrich_evidence(campaign)
        campaign_evaluate(campaign_id=campaign.pk)
        campaign.refresh_from_db()
        return campaign

    return make


@pytest.fixture
def certified(cast, awaiting):
    """`certified(**evidence)`: a campaign approved by the reviewer; returns its certificate."""
    from apps.certificates.services import review_approve

    def make(**evidence):
        campaign = awaiting(**evidence)
        review_approve(campaign=campaign, reviewer=cast.reviewer, reason="Evidence complete and verified.")
        campaign.refresh_from_db()
        return campaign.certificate

    return make


@pytest.fixture
def login(client):
    """`login(user)`: the test client logged in as `user` (None: anonymous)."""

    def as_user(user):
        client.logout()
        if user is not None:
            client.force_login(user)
        return client

    return as_user

"""Fixtures of the portal tests: signing keys in a fresh directory, AIA 1.0, evaluated campaigns
made of evidence rows (tests/certificates/evidence.py) with conformance errors the heatmap can colour."""

from __future__ import annotations

from datetime import timedelta

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


@pytest.fixture
def portal_pages(cast, certified, awaiting):
    """Something on every page: certificates with charts, a campaign awaiting review, the vendor's
    chip, target, model, token and webhook endpoint, a runner, a tender and its evaluation. Returns the
    pages of each role ({user or None: [path, ...]}): the browser sweep at 390 px and the zh-hans
    catalogue check visit them all."""
    from django.utils import timezone

    from apps.accounts.services import api_token_create
    from apps.notifications.services import webhook_endpoint_create
    from apps.procurement.services import evaluation_create, tender_create
    from tests.factories import ModelArtifactFactory, RunnerFactory

    first, second = certified(), certified()
    review = awaiting(gemm={"float32": 0.9, "bfloat16": 0.85})
    chip, target = first.chip, first.campaign.target
    ModelArtifactFactory(owner=cast.vendor)
    RunnerFactory()
    api_token_create(user=cast.owner, name="ci")
    endpoint, _ = webhook_endpoint_create(
        organization=cast.vendor, url="https://hooks.example.org/ci", event_types=[]
    )
    tender = tender_create(
        organization=cast.buyer_org,
        title="人工智能推理加速器采购 Inference accelerators",
        reference="ZB-390",
        deadline=timezone.now() + timedelta(days=30),
        requirements=[{"kind": "backend", "params": {"backends": ["cpu", "cuda"]}}],
        scoring=[{"metric": "tflops_per_watt", "weight": 1}],
        created_by=cast.buyer,
    )
    evaluation = evaluation_create(tender=tender, actor=cast.buyer)
    certificate_pages = [
        f"/certificates/{first.serial}/",
        f"/certificates/{first.serial}/verify/",
        f"/registry/compare/?serial={first.serial}&serial={second.serial}",
    ]
    vendor_pages = [
        "/",
        "/campaigns/",
        "/campaigns/new/",
        f"/campaigns/{review.pk}/",
        "/chips/",
        "/chips/new/",
        f"/chips/{chip.pk}/edit/",
        "/targets/",
        "/targets/new/",
        f"/targets/{target.pk}/edit/",
        "/models/",
        "/models/new/",
        "/tokens/",
        "/webhooks/",
        f"/webhooks/{endpoint.pk}/",
    ]
    return {
        None: ["/", "/registry/", "/login/", "/problems/", *certificate_pages],
        cast.owner: vendor_pages,
        cast.vendor_admin: ["/", "/tokens/", "/webhooks/"],
        cast.reviewer: ["/", "/queue/", "/runners/", f"/campaigns/{review.pk}/", *certificate_pages],
        cast.buyer: [
            "/",
            "/registry/",
            "/procurement/",
            "/procurement/tenders/new/",
            f"/procurement/tenders/{tender.pk}/",
            f"/procurement/evaluations/{evaluation.pk}/",
            f"/procurement/evaluations/{evaluation.pk}/report/",
            "/procurement/registry/",
            "/procurement/chips/",
            f"/procurement/chips/{chip.pk}/classification/",
        ],
    }

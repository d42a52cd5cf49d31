"""`make run`'s promise, end to end: the demo certifies this machine's CPU through the real pipeline."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.template.defaultfilters import floatformat

from apps.audit.models import AuditEvent
from apps.audit.services import audit_chain_verify
from apps.certificates.models import Certificate, CertificateStatus, CriterionOutcome
from apps.certificates.serving import serving_rows
from apps.portal.management.commands.seed_demo import demo_program, serving_lines
from apps.runs.models import Campaign, CampaignState, JobState
from tests.cpu_findings import explained, unexplained

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


def _the_only_failure_is_this_cpus_findings(campaign, said: str) -> None:
    """A CPU with real conformance findings (tests/cpu_findings.py: gelu(+inf) = NaN, bfloat16 flushes,
    bfloat16 GEMM/conv NaN spread, all from oneDNN's AVX-512/AMX kernels) fails 3-5 of the ~500
    baseline cases, depending on the drawn shapes: at 5 the pass rate (0.98998) is under B1's 0.99. Then
    the demo must say so and issue nothing, and nothing else may have failed."""
    failed = list(campaign.criterion_results.filter(blocker=True, outcome=CriterionOutcome.FAIL))
    assert [r.criterion_id for r in failed] == ["B1"], [(r.criterion_id, r.explanation) for r in failed]
    with campaign.jobs.get(suite="conformance").document.content.open("rb") as handle:
        cases = json.loads(handle.read())["cases"]
    assert not unexplained(cases), unexplained(cases)[:5]
    assert "cannot be certified" in said and not Certificate.objects.exists(), said
    pytest.xfail(
        "this CPU's real conformance findings put B1 under its bar: "
        + "; ".join(sorted({explained(c).reason for c in cases if explained(c)}))
    )


def test_seed_demo_ends_with_a_real_certificate_of_the_local_cpu(
    transactional_db, settings, tmp_path, client
):
    settings.VAR_DIR = tmp_path
    settings.EMBEDDED_RUNNER_KEY_FILE = tmp_path / "keys" / "local-runner.pem"
    settings.CERT_SIGNING_KEY_DIR = tmp_path / "signing"
    settings.CELERY_TASK_ALWAYS_EAGER = True  # the embedded default, whatever broker CI exports
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    out, err = StringIO(), StringIO()
    call_command("seed_demo", stdout=out, stderr=err)

    campaign = Campaign.objects.get(target__slug="local-cpu")
    if campaign.state == CampaignState.AWAITING_REVIEW:
        _the_only_failure_is_this_cpus_findings(campaign, err.getvalue())
    assert campaign.state == CampaignState.APPROVED, out.getvalue() + err.getvalue()
    # Under the version in effect; its baseline's suites are the campaign's jobs (serving where it plans
    # LoadGen, issue 15: from AIA 1.2).
    assert campaign.program == demo_program()
    planned = sorted(campaign.program.level("baseline")["suites"])
    assert sorted(set(campaign.jobs.values_list("suite", flat=True))) == planned
    assert all(job.state == JobState.SUCCEEDED and job.document for job in campaign.jobs.all())
    certificate = Certificate.objects.get(campaign=campaign)
    assert certificate.status == CertificateStatus.ACTIVE
    if "serving" in planned:
        # The certificate carries, per scenario, LoadGen's figure from a VALID run at the level's settings,
        # or says that the scenario has none (INVALID on this CPU, never an invented figure); so do the
        # page and the demo's log.
        rows = serving_rows(json.loads(certificate.payload_json))
        scenarios = {(r["scenario"], r["kind"]) for r in rows}
        assert {
            ("SingleStream", "serving_latency"),
            ("Server", "serving_qps"),
            ("Offline", "serving_throughput"),
        } <= (scenarios), rows
        assert all(r["result"] == "VALID" and r["value"] > 0 for r in rows if r["certified"]), rows
        assert all(r["value"] is None and r["reason"] for r in rows if not r["certified"]), rows
        html = client.get(f"/certificates/{certificate.serial}/").content.decode()
        assert "Serving (MLPerf LoadGen)" in html
        for row in rows:
            if row["certified"]:
                assert f"{floatformat(row['value'], '-4')} {row['unit']}" in html
                assert row["loadgen_summary_sha256"] in html
        assert html.count("no certified figure") == sum(1 for r in rows if not r["certified"])
        for line in serving_lines(json.loads(certificate.payload_json)):
            assert line in out.getvalue()
    # Approved by the demo reviewer through the normal review service, and audited as such.
    approval = AuditEvent.objects.get(action="review.approved", object_id=str(campaign.pk))
    assert approval.actor_label == "reviewer"
    assert audit_chain_verify().ok
    verdict = client.get(f"/api/v1/certificates/{certificate.serial}/verify/").json()
    assert verdict["signature_valid"] and verdict["status"] == "active"

    call_command("seed_demo", stdout=StringIO())
    assert Certificate.objects.count() == 1, "running it again certifies nothing twice"

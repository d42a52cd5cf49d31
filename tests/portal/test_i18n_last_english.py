"""The last English a reader of Chinese met (issue 17): texts recorded or raised outside the pages'
templates, each reached through the real services and read where its reader meets it, in zh-hans.
Strict: the sweep of tests/portal/test_i18n_pages.py, no allow-list. Each test prints its count of
untranslated strings (the figure of the session's note)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from tests.portal.test_i18n_pages import ZhSweep

pytestmark = pytest.mark.django_db(transaction=False)


def finish(sweep: ZhSweep, area: str) -> None:
    report = sweep.report()
    print(f"untranslated strings ({area}): {len(report)}")
    print("\n".join(report))
    assert report == [], f"{len(report)} untranslated strings:\n" + "\n".join(report)


def test_tender_ranking_missing_figures_read_in_zh_hans(cast, certified):
    """Every reason metric_value gives for a missing figure, on the ranking page and its report."""
    from apps.procurement.services import evaluation_create, tender_create

    certified()
    tender = tender_create(
        organization=cast.buyer_org,
        title="推理加速器采购",
        reference="ZB-17",
        deadline=timezone.now() + timedelta(days=30),
        currency="CNY",
        requirements=[{"kind": "backend", "params": {"backends": ["cpu", "cuda"]}}],
        scoring=[
            {"metric": "measured_tflops", "weight": 1, "dtype": "int8"},
            {"metric": "tflops_per_price", "weight": 1},
            {"metric": "model_throughput", "weight": 1, "model": "resnet50", "dtype": "float32"},
            {
                "metric": "serving_qps",
                "weight": 1,
                "model": "bert",
                "dtype": "float32",
                "max_latency_ms": 100,
            },
        ],
        created_by=cast.buyer,
    )
    evaluation = evaluation_create(tender=tender, actor=cast.buyer)
    sweep = ZhSweep()
    buyer = Client(HTTP_ACCEPT_LANGUAGE="zh-CN")
    buyer.force_login(cast.buyer)
    page = sweep.get(buyer, f"/procurement/evaluations/{evaluation.pk}/").content.decode()
    assert page.count('class="fail">0 (') == 4, "every weight of the one candidate is missing"
    sweep.get(buyer, f"/procurement/evaluations/{evaluation.pk}/report/")
    finish(sweep, "tender ranking")


def test_certificate_signed_by_a_compromised_key_reads_in_zh_hans(cast, certified):
    """A revoked certificate keeps the signature of the key that signed it (only live ones are re-signed);
    once that key is reported compromised, the public verification page and the API say so, in Chinese."""
    from django.urls import reverse
    from rest_framework.test import APIClient

    from apps.certificates.services import certificate_revoke, certificate_suspend
    from apps.certificates.services.keys import signing_key_compromise

    certificate = certified()
    certificate_suspend(certificate=certificate, reason="峰值申报有误。", actor=cast.reviewer)
    certificate_revoke(certificate=certificate, reason="峰值申报不实，撤销证书。", actor=cast.reviewer)
    signing_key_compromise(key=certificate.signing_key, reason="私钥文件泄露。", actor=cast.reviewer)
    sweep = ZhSweep()
    anonymous = Client(HTTP_ACCEPT_LANGUAGE="zh-CN")
    page = sweep.get(anonymous, f"/certificates/{certificate.serial}/verify/").content.decode()
    assert certificate.signing_key.key_id[:16] in page, "the page names the compromised key"
    sweep.get(anonymous, f"/certificates/{certificate.serial}/")
    answer = APIClient(HTTP_ACCEPT_LANGUAGE="zh-CN").get(
        reverse("certificate-verify", kwargs={"serial": certificate.serial})
    )
    assert answer.status_code == 200, answer.status_code
    assert answer.json()["signature_valid"] is False, answer.json()
    sweep.text("the API's verification", answer.json()["reason"])
    finish(sweep, "compromised key")


# An instance that fails each keyword of the result schema with its own message (what the runners'
# validator, runners/document.py schema_errors, says of it), beside the keyword's schema.
SCHEMA_VIOLATIONS: dict[str, tuple[dict, object]] = {
    "additionalProperties": ({"properties": {"a": {}}, "additionalProperties": False}, {"a": 1, "b": 2}),
    "const": ({"const": "1.0"}, "0.9"),
    "enum": ({"enum": ["pass", "fail"]}, "maybe"),
    "exclusiveMinimum": ({"exclusiveMinimum": 0}, 0),
    "exclusiveMaximum": ({"exclusiveMaximum": 1}, 1),
    "format": ({"format": "date-time"}, "yesterday"),
    "items": ({"prefixItems": [{}], "items": False}, [1, 2, 3]),
    "maxItems": ({"maxItems": 2}, [1, 2, 3]),
    "maxItems:0": ({"maxItems": 0}, [1]),
    "maxLength": ({"maxLength": 2}, "abc"),
    "minItems": ({"minItems": 2}, [1]),
    "minItems:1": ({"minItems": 1}, []),
    "minLength": ({"minLength": 2}, "a"),
    "minLength:1": ({"minLength": 1}, ""),
    "minimum": ({"minimum": 0}, -1),
    "maximum": ({"maximum": 1}, 2),
    "oneOf": ({"oneOf": [{"type": "string"}, {"type": "integer"}]}, 1.5),
    "oneOf:many": ({"oneOf": [{"type": "number"}, {"type": "integer"}]}, 1),
    "anyOf": ({"anyOf": [{"type": "string"}, {"type": "integer"}]}, 1.5),
    "pattern": ({"pattern": "^[a-f0-9]{64}$"}, "xyz"),
    "patternProperties": ({"patternProperties": {"^x-": {}}, "additionalProperties": False}, {"y": 1}),
    "required": ({"required": ["suite"]}, {}),
    "type": ({"type": ["number", "null"]}, "fast"),
    "uniqueItems": ({"uniqueItems": True}, ["a", "a"]),
}
# Keywords that never speak for themselves: they name, group or route the schemas that do.
SILENT_KEYWORDS = {
    "$defs", "$id", "$ref", "$schema", "allOf", "definitions", "description", "if", "then", "title",
    "properties", "default", "id", "codelist", "deprecated", "deprecatedVersion", "omitWhenMerged",
    "openCodelist", "versionId", "wholeListMerge",
}  # fmt: skip


def schema_keywords() -> set[str]:
    """Every keyword the result and spec schemas use (runners/schema)."""
    import json
    from pathlib import Path

    found: set[str] = set()

    def walk(node, *, names: bool = False) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if not names:
                    found.add(key)
                walk(value, names=not names and key in ("properties", "patternProperties", "$defs"))
        elif isinstance(node, list):
            for item in node:
                walk(item)

    for path in Path("runners/schema").glob("*.schema.json"):
        walk(json.loads(path.read_text()))
    return found


def test_every_schema_keywords_message_reads_in_zh_hans(cast, awaiting):
    """The refusal of a schema-invalid document, as ingestion records it (ingestion._schema_problem and
    the phrase ingest.schema_invalid), with one problem of each keyword the schemas use, on the campaign's
    page: in Chinese, the values quoted as the document has them."""
    import jsonschema

    from apps.runs.models import EvidenceRejection
    from apps.runs.services.ingestion import _schema_problem
    from certification.recorded_text import say

    keywords = {name.split(":")[0] for name in SCHEMA_VIOLATIONS}
    assert schema_keywords() - SILENT_KEYWORDS <= keywords, schema_keywords() - SILENT_KEYWORDS - keywords
    problems = []
    for name, (schema, instance) in SCHEMA_VIOLATIONS.items():
        validator = jsonschema.Draft202012Validator(
            {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema},
            format_checker=jsonschema.FormatChecker(),
        )
        errors = [error.message for error in validator.iter_errors(instance)]
        assert len(errors) == 1, (name, errors)
        problems.append(_schema_problem(f"measurements/0/{name.split(':')[0]}: {errors[0]}"))
    campaign = awaiting()
    job = campaign.jobs.order_by("id").first()
    for start in range(0, len(problems), 8):  # ingestion lists a document's first 20 problems
        shown = problems[start : start + 8]
        EvidenceRejection.objects.create(
            job=job,
            reason=say("ingest.schema_invalid", count=len(shown), problems="; ".join(shown)),
            envelope_sha256="0" * 64,
        )
    sweep = ZhSweep()
    for user in (cast.owner, cast.reviewer):
        client = Client(HTTP_ACCEPT_LANGUAGE="zh-CN")
        client.force_login(user)
        page = sweep.get(client, f"/campaigns/{campaign.pk}/").content.decode()
        assert page.count("measurements/0/") >= len(problems), "every problem is on the page"
    finish(sweep, "jsonschema messages")


def test_reveal_findings_read_in_zh_hans(cast):
    """Each way a reveal fails, reached with the real runner's documents (tests/real_documents.py) and the
    platform's reveal_receive / reveals_expire: a tampered output (digest mismatch), outputs the runner
    left out, an answer that is an error, and no answer by the deadline; then the campaign is evaluated
    (the integrity blocker quotes the findings) and its pages read in zh-hans."""
    import base64
    import hashlib
    import json
    from pathlib import Path

    import torch
    from safetensors.torch import save

    from apps.certificates.services import campaign_evaluate
    from apps.runs.models import OutputReveal, RevealState
    from apps.runs.services.programs import PROGRAMS_DIR, program_load
    from apps.runs.services.reveal import reveal_receive, reveal_request_build, reveals_expire
    from runners.commitment import reveal_unpack
    from runners.worker import reveal_answer, signed_message
    from tests.real_documents import answer_reveal, campaign_from_runner, runner_documents

    program, _ = program_load(definition=json.loads(Path(PROGRAMS_DIR, "aia-1.2.json").read_text()))
    campaign = campaign_from_runner(
        vendor=cast.vendor, program=program, submitted_by=cast.owner, reveal=False, evaluate=False
    )
    jobs = {job.suite: job for job in campaign.jobs.all()}

    def resigned(payload: dict) -> dict:
        return signed_message(runner_documents().identity, payload)

    def tamper(message: dict) -> dict:
        payload = json.loads(message["payload_json"])
        tensors = reveal_unpack(payload)
        first = sorted(tensors)[0]
        tensors[first] = torch.ones(max(tensors[first].numel(), 1)) * 3
        del tensors[sorted(tensors)[-1]]  # and one left out
        blob = save(tensors)
        payload.update(
            outputs_b64=base64.b64encode(blob).decode(), outputs_sha256=hashlib.sha256(blob).hexdigest()
        )
        return resigned(payload)

    assert answer_reveal(jobs["conformance"], tamper=tamper) == RevealState.MISMATCH
    # The runner cannot honour a request (its outputs exceed the bytes asked for): its answer says why.
    failing = OutputReveal.objects.get(job=jobs["performance"], state=RevealState.PENDING)
    request = {**reveal_request_build(failing), "max_bytes": 1}
    answer = reveal_answer(request, identity=runner_documents().identity, root=runner_documents().output_root)
    assert "more than 1" in json.loads(answer["payload_json"])["error"]
    assert reveal_receive(message=answer) == RevealState.MISMATCH
    assert answer_reveal(jobs["model"]) == RevealState.VERIFIED
    assert reveals_expire(now=timezone.now() + timedelta(days=2)) == 1  # the serving job's
    findings = [f for reveal in OutputReveal.objects.filter(job__campaign=campaign) for f in reveal.findings]
    assert any("not the one committed" in f for f in findings), findings
    assert any("not revealed, though committed" in f for f in findings), findings
    assert any("could not reveal" in f for f in findings) and any("no reveal from" in f for f in findings)
    campaign_evaluate(campaign_id=campaign.pk)
    sweep = ZhSweep()
    for user in (cast.owner, cast.reviewer):
        client = Client(HTTP_ACCEPT_LANGUAGE="zh-CN")
        client.force_login(user)
        sweep.get(client, f"/campaigns/{campaign.pk}/")
        progress = client.get(f"/campaigns/{campaign.pk}/progress.json")
        for job in progress.json()["jobs"]:
            sweep.text(f"/campaigns/{campaign.pk}/progress.json", job["message"])
    finish(sweep, "reveal findings")


def test_runner_progress_labels_read_in_zh_hans(cast, awaiting):
    """The runner's own labels (runners/progress.py), reported through the platform's job_progress as a
    runner's signed progress message lands, on the campaign's live progress: in Chinese; the formats are
    the phrases' msgids, so the English a runner sends is what the portal reads back."""
    from apps.runs.services.campaigns import campaign_submit, job_progress
    from certification.recorded_text import PHRASES
    from runners.progress import LABELS, label

    for code, english in LABELS.items():
        assert PHRASES[f"progress.{code}"].msgid == english, code
    done = awaiting()
    campaign = campaign_submit(
        vendor=cast.vendor,
        target=done.target,
        program=done.program,
        level=done.level,
        model_artifacts=list(done.model_artifacts.all()),
        submitted_by=cast.owner,
    )
    shown = [
        label("started"),
        label("model_loading", model="resnet50"),
        label("model_dtype", model="resnet50", dtype="bfloat16"),
        label("serving", model="resnet50"),
        label("caching_after"),
        label("done"),
    ]
    jobs = list(campaign.jobs.order_by("id"))
    assert jobs
    sweep = ZhSweep()
    client = Client(HTTP_ACCEPT_LANGUAGE="zh-CN")
    client.force_login(cast.owner)
    for position, text in enumerate(shown):
        job = jobs[position % len(jobs)]
        job_progress(job_id=job.pk, fraction=0.5, message=text)
        page = sweep.get(client, f"/campaigns/{campaign.pk}/").content.decode()
        assert "data-job-message" in page
        messages = [
            j["message"] for j in client.get(f"/campaigns/{campaign.pk}/progress.json").json()["jobs"]
        ]
        for message in messages:
            sweep.text(f"/campaigns/{campaign.pk}/progress.json ({text})", message)
            assert message not in LABELS.values() or not message, message  # not the English as sent
    finish(sweep, "runner progress labels")


def test_campaign_submission_and_review_refusals_read_in_zh_hans(cast, awaiting, client_for, settings):
    """What a vendor and a reviewer are told when the services refuse or carry out a request: the
    submission form's and the API's refusals (no model for a level that needs one, a level the program
    lacks, a program that is not active, the open-campaign cap), the reviewer's refusals and
    confirmations, and certificate_issue's own refusals: all in the reader's language."""
    from django.core.exceptions import ValidationError
    from django.utils import translation

    from apps.certificates.models import CertificateStatus
    from apps.certificates.services.certificates import certificate_issue
    from apps.runs.models import Campaign, ProgramStatus
    from apps.runs.services.campaigns import campaign_submit

    review = awaiting()
    blocked = awaiting(conformance={"float32": {"pass": 1, "fail": 9, "unsupported": 0}})
    target, program = review.target, review.program
    sweep = ZhSweep()
    vendor = Client(HTTP_ACCEPT_LANGUAGE="zh-CN")
    vendor.force_login(cast.owner)
    response = vendor.post(
        "/campaigns/new/", {"target": target.pk, "program": program.pk, "level": "baseline"}
    )
    assert response.status_code == 400, response.status_code
    sweep.visit("/campaigns/new/ (no model)", response)
    api = client_for(cast.owner)

    def refused(body: dict, status: int) -> None:
        answer = api.post("/api/v1/campaigns/", body, format="json", HTTP_ACCEPT_LANGUAGE="zh-CN")
        assert answer.status_code == status, (answer.status_code, answer.json())
        problem = answer.json()
        for text in [problem["detail"], *[m for ms in (problem.get("errors") or {}).values() for m in ms]]:
            sweep.text(f"/api/v1/campaigns/ ({body})", text)

    refused({"target": target.slug, "program": program.code, "level": "baseline"}, 400)
    refused({"target": target.slug, "program": program.code, "level": "platinum"}, 400)
    refused({"target": target.slug, "program": program.code, "level": "baseline", "models": [999999]}, 400)
    models = list(review.model_artifacts.all())
    settings.MAX_OPEN_CAMPAIGNS_PER_TARGET = 0
    refused(
        {
            "target": target.slug,
            "program": program.code,
            "level": "baseline",
            "models": [m.pk for m in models],
        },
        409,
    )
    settings.MAX_OPEN_CAMPAIGNS_PER_TARGET = 10
    with translation.override("zh-hans"):
        program.status = ProgramStatus.RETIRED
        for attempt in (
            lambda: campaign_submit(
                vendor=cast.vendor, target=target, program=program, level="baseline", model_artifacts=models
            ),
            lambda: certificate_issue(campaign=Campaign.objects.get(pk=review.pk)),  # no approval yet
            lambda: certificate_issue(campaign=blocked),  # a failed blocker
        ):
            with pytest.raises(ValidationError) as refusal:
                attempt()
            for message in refusal.value.messages:
                sweep.text("a service's refusal", message)
        program.status = ProgramStatus.ACTIVE
    # The reviewer: a waiver refused, then an approval and a rejection carried out, each confirmed.
    reviewer = Client(HTTP_ACCEPT_LANGUAGE="zh-CN")
    reviewer.force_login(cast.reviewer)
    blocker = blocked.criterion_results.filter(blocker=True, outcome="fail").first()
    assert blocker is not None, "the weak GEMM fails a blocker"
    path = f"/campaigns/{blocked.pk}/waive/"
    response = reviewer.post(
        path, {"criterion": blocker.criterion_id, f"waive-{blocker.criterion_id}-reason": "理由。"}
    )
    sweep.visit(path, response)
    response = reviewer.post(
        f"/campaigns/{review.pk}/approve/", {"approve-reason": "证据完整。"}, follow=True
    )
    assert response.status_code == 200, response.status_code
    sweep.visit(f"/campaigns/{review.pk}/approve/ (done)", response)
    assert Campaign.objects.get(pk=review.pk).certificate.status == CertificateStatus.ACTIVE
    response = reviewer.post(
        f"/campaigns/{blocked.pk}/reject/", {"reject-reason": "性能不达标。"}, follow=True
    )
    sweep.visit(f"/campaigns/{blocked.pk}/reject/ (done)", response)
    with translation.override("zh-hans"), pytest.raises(ValidationError) as refusal:
        certificate_issue(campaign=blocked)  # rejected: no longer awaiting review
    sweep.text("certificate_issue (rejected campaign)", " ".join(refusal.value.messages))
    # The vendor cancels a fresh campaign: confirmed in place.
    fresh = campaign_submit(
        vendor=cast.vendor, target=target, program=program, level="baseline", model_artifacts=models
    )
    response = vendor.post(f"/campaigns/{fresh.pk}/cancel/", {"cancel-reason": "撤回。"}, follow=True)
    sweep.visit(f"/campaigns/{fresh.pk}/cancel/ (done)", response)
    response = vendor.post(
        "/campaigns/new/",
        {"target": target.pk, "program": program.pk, "level": "baseline", "models": [m.pk for m in models]},
        follow=True,
    )
    sweep.visit("/campaigns/new/ (done)", response)
    finish(sweep, "campaign submission and review")


def test_a_server_verdict_disagreement_reads_in_zh_hans(cast, tmp_path):
    """A hostile runner reports its conformance outputs as passing, honestly committed but in another
    dtype than the case makes: the digests match, the platform's own verdict does not, and says why
    (runners/revealed.py's detail, read back). The finding reaches the campaign's page in Chinese."""
    import json
    import shutil
    from pathlib import Path

    import torch

    from apps.runs.models import OutputReveal, RevealState
    from apps.runs.services.programs import PROGRAMS_DIR, program_load
    from runners.commitment import OutputStore, output_digest
    from runners.spec import attempt_tag
    from tests.real_documents import CHALLENGE, campaign_from_runner, runner_documents

    program, _ = program_load(definition=json.loads(Path(PROGRAMS_DIR, "aia-1.2.json").read_text()))
    real = runner_documents()
    attempt = attempt_tag(CHALLENGE)
    shutil.copytree(real.output_root / attempt, tmp_path / attempt)
    store = OutputStore(tmp_path, attempt)

    def edit(suite, document):
        if suite != "conformance":
            return
        for entry in document["commitment"]["outputs"]:
            output = store.get(entry["id"])
            wrong = output.to(torch.float64 if output.dtype != torch.float64 else torch.float32)
            store.put(entry["id"], wrong)
            entry["digest"] = output_digest(wrong)

    campaign = campaign_from_runner(
        vendor=cast.vendor, program=program, edit=edit, reveal_root=tmp_path, submitted_by=cast.owner
    )
    reveal = OutputReveal.objects.get(job__campaign=campaign, job__suite="conformance")
    assert reveal.state == RevealState.MISMATCH, reveal.findings
    assert any("the platform judges it fail" in f and ", the case makes " in f for f in reveal.findings)
    sweep = ZhSweep()
    for user in (cast.owner, cast.reviewer):
        client = Client(HTTP_ACCEPT_LANGUAGE="zh-CN")
        client.force_login(user)
        sweep.get(client, f"/campaigns/{campaign.pk}/")
    finish(sweep, "server verdict disagreement")

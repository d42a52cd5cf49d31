"""A campaign's evidence as a NIST OSCAL assessment-results document (OSCAL 1.1.2, JSON).

- metadata: the campaign, its target and program, the authority and the vendor as parties;
- import-ap: the assessment plan is the certification program's level (a link to the program);
- one result for the campaign: its criteria as the reviewed controls (control ids are the criterion
  ids), one observation per signed result document (method TEST, the document's sha256, its runner
  key and the job it came from as relevant evidence), and one finding per criterion whose target
  status is `satisfied` or `not-satisfied` (with the measured value, threshold and any waiver in
  its description), linked to the observations of the documents its evidence names.

UUIDs are version 5 from the platform's name space and the campaign's objects, so the same campaign
gives the same identifiers every time. Validated in the tests with compliance-trestle's OSCAL models.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from apps.certificates.models import CriterionOutcome, CriterionResult
from apps.runs.models import Campaign, ResultDocument

OSCAL_VERSION = "1.1.2"
NAMESPACE = uuid.UUID("6b1d0c2e-5a8f-4c55-9a38-1d0e4f6c9b18")  # this platform's OSCAL name space


def _uuid(*parts: object) -> str:
    return str(uuid.uuid5(NAMESPACE, "/".join(str(p) for p in parts)))


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _sha256s(value: Any) -> set[str]:
    """Every sha256 a criterion's evidence names, wherever it nests."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "sha256" and isinstance(item, str):
                found.add(item)
            else:
                found |= _sha256s(item)
    elif isinstance(value, list):
        for item in value:
            found |= _sha256s(item)
    return found


def _state(result: CriterionResult) -> str:
    return "satisfied" if result.outcome != CriterionOutcome.FAIL else "not-satisfied"


def _finding_description(result: CriterionResult) -> str:
    parts = [f"{result.get_outcome_display()}."]
    if result.measured_value is not None:
        parts.append(f"Measured {result.measured_value:g}.")
    if result.threshold is not None:
        parts.append(f"Threshold {result.threshold:g}.")
    if result.explanation:
        parts.append(result.explanation)
    if result.blocker:
        parts.append("A blocker criterion.")
    if result.waived:
        parts.append(f"Waived by the authority: {result.waiver_reason}")
    return " ".join(parts)


def campaign_assessment_results(*, campaign: Campaign, base_url: str) -> dict[str, Any]:
    """The OSCAL assessment-results document of `campaign` (a dict, OSCAL's JSON key names)."""
    program, target = campaign.program, campaign.target
    documents = list(
        ResultDocument.objects.filter(job__campaign=campaign).select_related("runner").order_by("job_id")
    )
    results = list(CriterionResult.objects.filter(campaign=campaign).order_by("id"))
    observation_of = {
        document.sha256: _uuid("campaign", campaign.pk, "document", document.sha256) for document in documents
    }
    observations = [
        {
            "uuid": observation_of[document.sha256],
            "title": f"{document.get_suite_display()} result document of job {document.job_id}",
            "description": (
                f"Signed {document.suite} result document ({document.size} bytes) from runner "
                f"{document.runner.name}; spot check and schema validated at ingestion."
            ),
            "methods": ["TEST"],
            "types": ["finding"],
            "props": [
                {"name": "sha256", "ns": f"{base_url}/ns/oscal", "value": document.sha256},
                {"name": "runner-key-id", "ns": f"{base_url}/ns/oscal", "value": document.key_id},
            ],
            "collected": _iso(document.received_at),
            "relevant-evidence": [
                {
                    "href": base_url + reverse("job-detail", kwargs={"pk": document.job_id}),
                    "description": f"The job whose signed result document has sha256 {document.sha256}.",
                }
            ],
        }
        for document in documents
    ]
    findings = []
    for result in results:
        related = sorted(observation_of[sha] for sha in _sha256s(result.evidence) if sha in observation_of)
        finding: dict[str, Any] = {
            "uuid": _uuid("campaign", campaign.pk, "criterion", result.criterion_id),
            "title": f"{result.criterion_id} {result.title}",
            "description": _finding_description(result),
            "target": {
                "type": "objective-id",
                "target-id": result.criterion_id,
                "status": {"state": _state(result)},
            },
        }
        if related:
            finding["related-observations"] = [{"observation-uuid": u} for u in related]
        findings.append(finding)
    authority = {
        "uuid": _uuid("party", "authority"),
        "type": "organization",
        "name": settings.CERT_ISSUER_NAME or program.definition.get("publisher") or "Certification authority",
    }
    vendor = {
        "uuid": _uuid("party", "vendor", campaign.vendor.slug),
        "type": "organization",
        "name": campaign.vendor.name,
    }
    start = campaign.submitted_at or campaign.created_at
    result_entry: dict[str, Any] = {
        "uuid": _uuid("campaign", campaign.pk, "result"),
        "title": f"Campaign {campaign.pk}: {target.slug} under {program.code} {program.version} level {campaign.level}",
        "description": f"Campaign {campaign.get_state_display().lower()}: {campaign.state_reason or 'no decision yet'}",
        "start": _iso(start),
        "reviewed-controls": {
            "control-selections": [
                {"include-controls": [{"control-id": r.criterion_id} for r in results]}
                if results
                else {"include-all": {}}
            ]
        },
    }
    if campaign.finished_at:
        result_entry["end"] = _iso(max(campaign.finished_at, start))
    if observations:
        result_entry["observations"] = observations
    if findings:
        result_entry["findings"] = findings
    return {
        "assessment-results": {
            "uuid": _uuid("campaign", campaign.pk, "assessment-results"),
            "metadata": {
                "title": f"Assessment results of campaign {campaign.pk} ({target.slug}, {program.code} {program.version} {campaign.level})",
                "last-modified": _iso(
                    max([campaign.updated_at] + [d.received_at for d in documents])
                    if documents
                    else campaign.updated_at
                ),
                "published": _iso(timezone.now()),
                "version": str(len(results)),
                "oscal-version": OSCAL_VERSION,
                "parties": [authority, vendor],
            },
            "import-ap": {
                "href": base_url
                + reverse("program-detail", kwargs={"pk": f"{program.code}-{program.version}"}),
                "remarks": f"The assessment plan is the program's level: {program.code} {program.version} "
                f"{campaign.level} (definition sha256 {program.definition_sha256}).",
            },
            "results": [result_entry],
        }
    }

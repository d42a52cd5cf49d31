"""What was certified is frozen (issue 12): the certificate API reads the signed subject; edits of a
certified chip's or target's certified fields are refused (409 naming the certificate); a change of
the target's software stack re-tests its certificate at once."""

from __future__ import annotations

import importlib
import json

import pytest

from apps.audit.models import AuditEvent
from apps.certificates.models import Certificate, CertificateStatus, SurveillanceRun
from apps.registry.models import Chip, HardwareTarget
from apps.runs.models import CampaignPurpose, CampaignState, ProgramStatus
from tests.certificates.frozen import (
    EDITED,
    SIGNED,
    certify_cpu_target,
    certify_then_edit,
    chip_edit_body,
    vendor_edits,
)


@pytest.fixture
def edited(cast, program, client_for):
    return certify_then_edit(cast=cast, program=program, client_for=client_for)


def _listed(client, query: str) -> list[str]:
    response = client.get(f"/api/v1/certificates/?{query}")
    assert response.status_code == 200
    return [row["serial"] for row in response.json()["results"]]


# --- the rule: 409 for certified fields, a re-test for a stack change -------------------------------


def test_vendor_edits_of_certified_fields_are_refused_naming_the_certificate(cast, program, client_for):
    certificate = certify_cpu_target(cast=cast, program=program)
    chip, target = vendor_edits(client_for(cast.owner), certificate)
    for response in (chip, target):
        assert response.status_code == 409
        error = response.json()
        assert error["status"] == 409 and error["code"] == "conflict"
        assert certificate.serial in error["detail"]
    assert "declared_peak.bf16" in chip.json()["detail"]
    assert "backend" in target.json()["detail"] and "slug" in target.json()["detail"]
    row = Chip.objects.get(pk=certificate.chip_id)
    assert (row.sku, row.peak_bf16_tflops, row.data_center) == (SIGNED["sku"], SIGNED["bf16"], True)
    assert HardwareTarget.objects.get(pk=certificate.target_id).backend == "cpu"


@pytest.mark.parametrize(
    "body",
    [{"list_price": "999.00", "currency": "USD"}, {"spec_source": "datasheet v2"}, {"memory_gib": 1}],
)
def test_every_signed_chip_declaration_is_locked(cast, program, client_for, body):
    certificate = certify_cpu_target(cast=cast, program=program)
    response = client_for(cast.owner).patch(f"/api/v1/chips/{certificate.chip_id}/", body, format="json")
    assert response.status_code == 409 and certificate.serial in response.json()["detail"]


def test_a_put_that_repeats_the_certified_values_is_not_a_change(cast, program, client_for):
    certificate = certify_cpu_target(cast=cast, program=program)
    client = client_for(cast.owner)
    current = client.get(f"/api/v1/targets/{certificate.target_id}/").json()
    body = {k: v for k, v in current.items() if k not in {"id", "queue", "created_at", "updated_at"}}
    body["description"] = "Rack 7"  # not signed: changes freely
    response = client.put(f"/api/v1/targets/{certificate.target_id}/", body, format="json")
    assert response.status_code == 200, response.content
    assert HardwareTarget.objects.get(pk=certificate.target_id).description == "Rack 7"
    assert not SurveillanceRun.objects.exists()


def test_a_chip_whose_certificates_are_all_revoked_may_change(cast, program, client_for):
    certificate = certify_cpu_target(cast=cast, program=program)
    Certificate.objects.filter(pk=certificate.pk).update(status=CertificateStatus.REVOKED)
    response = client_for(cast.owner).patch(
        f"/api/v1/chips/{certificate.chip_id}/", chip_edit_body(), format="json"
    )
    assert response.status_code == 200, response.content
    listed = client_for(None).get(f"/api/v1/certificates/{certificate.serial}/").json()
    assert listed["chip_sku"] == SIGNED["sku"], "a revoked certificate still says what it certified"


def test_a_stack_change_is_accepted_and_re_tests_the_certificate_at_once(cast, program, client_for):
    certificate = certify_cpu_target(cast=cast, program=program)
    response = client_for(cast.owner).patch(
        f"/api/v1/targets/{certificate.target_id}/",
        {"driver_version": "999.1", "torch_version": "2.9.0"},
        format="json",
    )
    assert response.status_code == 200, response.content
    run = SurveillanceRun.objects.get(certificate=certificate)
    assert run.campaign.purpose == CampaignPurpose.SURVEILLANCE
    assert run.campaign.state == CampaignState.QUEUED and run.campaign.target_id == certificate.target_id
    event = AuditEvent.objects.get(action="certificate.retest_required")
    assert event.payload["serial"] == certificate.serial
    assert event.payload["changes"]["driver_version"] == ["550.54", "999.1"]
    assert event.payload["changes"]["torch_version"] == ["2.4.0", "2.9.0"]
    assert AuditEvent.objects.filter(action="surveillance.submitted").exists()
    detail = client_for(None).get(f"/api/v1/certificates/{certificate.serial}/").json()
    assert detail["status"] == "active" and detail["retest_since"] is not None
    target = detail["certificate"]["subject"]["target"]
    assert (target["driver_version"], target["torch_version"]) == ("550.54", "2.4.0"), "as certified"


def test_a_stack_change_that_cannot_be_re_tested_suspends_the_certificate(cast, program, client_for):
    certificate = certify_cpu_target(cast=cast, program=program)
    program.status = ProgramStatus.RETIRED
    program.save(update_fields=["status"])
    response = client_for(cast.owner).patch(
        f"/api/v1/targets/{certificate.target_id}/", {"runtime_version": "13.0"}, format="json"
    )
    assert response.status_code == 200
    certificate.refresh_from_db()
    assert certificate.status == CertificateStatus.SUSPENDED
    assert "Re-test required" in certificate.status_reason and "runtime_version" in certificate.status_reason
    assert AuditEvent.objects.filter(action="surveillance.skipped").exists()


def test_a_stack_change_of_an_uncertified_target_re_tests_nothing(cast, client_for):
    from tests.factories import HardwareTargetFactory

    target = HardwareTargetFactory(chip__vendor=cast.vendor)
    response = client_for(cast.owner).patch(
        f"/api/v1/targets/{target.pk}/", {"driver_version": "999.1", "backend": "npu"}, format="json"
    )
    assert response.status_code == 200
    assert not SurveillanceRun.objects.exists()


def test_nothing_judged_by_an_open_campaign_may_change_until_it_ends(cast, client_for, evaluated):
    from apps.certificates.services import review_approve

    campaign = evaluated()  # awaiting review
    client = client_for(cast.owner)
    chip = client.patch(
        f"/api/v1/chips/{campaign.target.chip_id}/", {"declared_peak": {"bf16": 1}}, format="json"
    )
    target = client.patch(f"/api/v1/targets/{campaign.target_id}/", {"driver_version": "1.0"}, format="json")
    for response in (chip, target):
        assert response.status_code == 409
        assert f"campaign {campaign.pk}" in response.json()["detail"]
    review_approve(campaign=campaign, reviewer=cast.reviewer, reason="Evidence complete and verified.")
    campaign.refresh_from_db()
    subject = json.loads(campaign.certificate.payload_json)["subject"]
    assert (
        subject["chip"]["declared_peak_tflops"]["bf16"] == 989.4
        and subject["target"]["driver_version"] == "550.54"
    )


# --- every certificate view reads the signed subject ------------------------------------------------


def test_the_list_shows_the_signed_chip_and_target(edited, client_for):
    rows = client_for(None).get("/api/v1/certificates/").json()["results"]
    row = next(r for r in rows if r["serial"] == edited.serial)
    assert (row["chip_sku"], row["chip_name"]) == (SIGNED["sku"], SIGNED["name"])
    assert (row["target"], row["backend"]) == (SIGNED["slug"], SIGNED["backend"])


def test_the_detail_shows_the_signed_chip_and_target(edited, client_for):
    detail = client_for(None).get(f"/api/v1/certificates/{edited.serial}/").json()
    assert (detail["chip_sku"], detail["chip_name"]) == (SIGNED["sku"], SIGNED["name"])
    assert (detail["target"], detail["backend"]) == (SIGNED["slug"], SIGNED["backend"])
    chip = detail["certificate"]["subject"]["chip"]
    assert chip["declared_peak_tflops"]["bf16"] == SIGNED["bf16"] and chip["data_center"] is True


def test_the_backend_filter_reads_the_signed_backend(edited, client_for):
    client = client_for(None)
    assert _listed(client, f"backend={EDITED['backend']}") == []
    assert _listed(client, f"backend={SIGNED['backend']}") == [edited.serial]


def test_the_chip_filter_reads_the_signed_sku(edited, client_for):
    client = client_for(None)
    assert _listed(client, f"chip={EDITED['sku']}") == []
    assert _listed(client, f"chip={SIGNED['sku'].lower()}") == [edited.serial]


@pytest.mark.parametrize(
    ("query", "found"),
    [
        (f"target={SIGNED['slug']}", True),
        (f"target={EDITED['slug']}", False),
        ("q=Signed", True),
        ("q=Edited", False),
    ],
)
def test_the_target_filter_and_search_read_the_signed_subject(edited, client_for, query, found):
    assert _listed(client_for(None), query) == ([edited.serial] if found else [])


def test_verification_still_says_authentic_and_active(edited, client_for):
    check = client_for(None).get(f"/api/v1/certificates/{edited.serial}/verify/").json()
    assert check["signature_valid"] is True and check["status"] == "active"
    assert check["reason"].startswith("Authentic and active")


def test_issue_copies_the_signed_subject_and_the_migration_fills_older_rows(edited):
    signed = json.loads(edited.payload_json)["subject"]
    edited.refresh_from_db()
    expected = (
        signed["chip"]["sku"],
        signed["chip"]["name"],
        signed["target"]["slug"],
        signed["target"]["backend"],
    )
    columns = ("subject_chip_sku", "subject_chip_name", "subject_target_slug", "subject_backend")
    assert (
        tuple(getattr(edited, c) for c in columns)
        == expected
        == (SIGNED["sku"], SIGNED["name"], SIGNED["slug"], SIGNED["backend"])
    )
    Certificate.objects.filter(pk=edited.pk).update(**{c: "" for c in columns})
    migration = importlib.import_module("apps.certificates.migrations.0004_frozen_subject_columns")
    from django.apps import apps

    migration.fill_from_signed_payload(apps, None)
    edited.refresh_from_db()
    assert tuple(getattr(edited, c) for c in columns) == expected, "from the payload, not the edited rows"

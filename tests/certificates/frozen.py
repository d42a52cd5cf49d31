"""Issue 12: a real certificate (evidence, evaluation, a reviewer's approval, an Ed25519 signature)
of a CPU target, then the vendor's edits of the chip and target after certification.

`vendor_edits` sends the edits the issue describes over the API; `rows_edited_behind_the_api` makes
the live rows differ from what was signed anyway (as the authority's admin can, or as rows edited
before the rule existed), so each view test proves that the view reads the signed subject, not
merely that the API refused the edit.
"""

from __future__ import annotations

from apps.certificates.models import Certificate
from apps.registry.models import Chip, HardwareTarget
from tests.factories import ChipFactory, HardwareTargetFactory

SIGNED = {
    "sku": "SIGNED-1",
    "name": "Signed One",
    "bf16": 400.0,
    "die_area_mm2": 800.0,
    "data_center": True,
    "slug": "signed-cpu",
    "backend": "cpu",
}
EDITED = {
    "sku": "EDITED-9",
    "name": "Edited Nine",
    # Plausible for the chip's 700 W (registration refuses a peak no silicon reaches; issue 13).
    "bf16": 1999.5,
    "die_area_mm2": 700.0,
    "data_center": False,
    "slug": "edited-npu",
    "backend": "npu",
}


def certify_cpu_target(*, cast, program) -> Certificate:
    """A signed certificate of SIGNED's chip on its CPU target, approved by the cast's reviewer."""
    from apps.certificates.services import campaign_evaluate, review_approve
    from tests.certificates.evidence import campaign_with_evidence

    chip = ChipFactory(
        vendor=cast.vendor,
        sku=SIGNED["sku"],
        name=SIGNED["name"],
        peak_bf16_tflops=SIGNED["bf16"],
        die_area_mm2=SIGNED["die_area_mm2"],
        data_center=SIGNED["data_center"],
    )
    target = HardwareTargetFactory(chip=chip, slug=SIGNED["slug"], backend=SIGNED["backend"])
    campaign = campaign_with_evidence(
        vendor=cast.vendor, program=program, target=target, submitted_by=cast.owner
    )
    campaign_evaluate(campaign_id=campaign.pk)
    review_approve(campaign=campaign, reviewer=cast.reviewer, reason="Evidence complete and verified.")
    return Certificate.objects.get(campaign=campaign)


def chip_edit_body() -> dict:
    return {
        "sku": EDITED["sku"],
        "name": EDITED["name"],
        "declared_peak": {"bf16": EDITED["bf16"]},
        "die_area_mm2": EDITED["die_area_mm2"],
        "data_center": EDITED["data_center"],
    }


def vendor_edits(client, certificate: Certificate):
    """The vendor PATCHes its certified chip and target (API); returns both responses."""
    chip = client.patch(f"/api/v1/chips/{certificate.chip_id}/", chip_edit_body(), format="json")
    target = client.patch(
        f"/api/v1/targets/{certificate.target_id}/",
        {"backend": EDITED["backend"], "slug": EDITED["slug"]},
        format="json",
    )
    return chip, target


def rows_edited_behind_the_api(certificate: Certificate) -> None:
    Chip.objects.filter(pk=certificate.chip_id).update(
        sku=EDITED["sku"],
        name=EDITED["name"],
        peak_bf16_tflops=EDITED["bf16"],
        die_area_mm2=EDITED["die_area_mm2"],
        data_center=EDITED["data_center"],
    )
    HardwareTarget.objects.filter(pk=certificate.target_id).update(
        backend=EDITED["backend"], slug=EDITED["slug"]
    )


def certify_then_edit(*, cast, program, client_for) -> Certificate:
    """Certify, have the vendor's edits refused (409 naming the certificate), then change the rows
    anyway: what every view must now ignore."""
    certificate = certify_cpu_target(cast=cast, program=program)
    chip, target = vendor_edits(client_for(cast.owner), certificate)
    for response in (chip, target):
        assert response.status_code == 409, response.content
        assert certificate.serial in response.json()["detail"]
    rows_edited_behind_the_api(certificate)
    return certificate

"""Suspended, revoked and reinstated certificates in zh-hans (issue 17): each status reached through the
real services (a failed surveillance campaign suspends, as the platform's sweep does it; a reviewer
suspends, reinstates and revokes with written reasons), then read where a buyer and the public meet it: the
registry, the certificate page (which is also the printed certificate), its status history, its
verification page, and the API's verification answered in the reader's language. Strict: the sweep of
tests/portal/test_i18n_pages.py, no allow-list."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from apps.certificates.models import CertificateStatus
from apps.certificates.services import (
    certificate_reinstate,
    certificate_revoke,
    certificate_suspend,
    surveillance_sweep,
)
from apps.certificates.services.surveillance import surveillance_submit
from apps.runs.models import CampaignState, ErrorClass
from apps.runs.services.campaigns import campaign_check_completion, job_fail
from certification.recorded_text import say
from tests.portal.test_i18n_pages import ZhSweep

pytestmark = pytest.mark.django_db(transaction=False)


def statuses(cast, certified) -> dict[str, object]:
    surveilled, reinstated, revoked = certified(), certified(), certified()
    # Surveillance: the re-test's jobs fail (a deadline passed), the sweep suspends the certificate.
    run = surveillance_submit(certificate=surveilled)
    for job in run.campaign.jobs.all():
        job_fail(job_id=job.pk, error_class=ErrorClass.TIMEOUT, message=say("job.deadline_passed"))
    campaign_check_completion(campaign_id=run.campaign_id)  # on commit in production
    run.campaign.refresh_from_db()
    assert run.campaign.state == CampaignState.FAILED, run.campaign.state
    assert surveillance_sweep() == 1
    surveilled.refresh_from_db()
    assert surveilled.status == CertificateStatus.SUSPENDED, surveilled.status
    assert surveilled.status_reason.startswith("Surveillance campaign"), surveilled.status_reason
    # A reviewer suspends, then reinstates; another is suspended, then revoked for good.
    certificate_suspend(certificate=reinstated, reason="监督抽检期间暂停。", actor=cast.reviewer)
    certificate_reinstate(certificate=reinstated, reason="复测通过，恢复有效。", actor=cast.reviewer)
    certificate_suspend(certificate=revoked, reason="供应商申报的峰值有误。", actor=cast.reviewer)
    certificate_revoke(certificate=revoked, reason="峰值申报不实，撤销证书。", actor=cast.reviewer)
    for certificate in (reinstated, revoked):
        certificate.refresh_from_db()
    assert reinstated.status == CertificateStatus.ACTIVE and revoked.status == CertificateStatus.REVOKED
    return {"suspended": surveilled, "reinstated": reinstated, "revoked": revoked, "run": run}


def test_suspended_revoked_and_reinstated_certificates_read_in_zh_hans(cast, certified):
    made = statuses(cast, certified)
    sweep = ZhSweep()
    anonymous = Client(HTTP_ACCEPT_LANGUAGE="zh-CN")
    reviewer = Client(HTTP_ACCEPT_LANGUAGE="zh-CN")
    reviewer.force_login(cast.reviewer)
    owner = Client(HTTP_ACCEPT_LANGUAGE="zh-CN")
    owner.force_login(cast.owner)
    for path in ("/registry/", "/registry/?status=suspended", "/registry/?status=revoked"):
        sweep.get(anonymous, path)
    for name in ("suspended", "reinstated", "revoked"):
        serial = made[name].serial
        for client in (anonymous, reviewer, owner):
            page = sweep.get(client, f"/certificates/{serial}/").content.decode()
            assert "history-h" in page, "the status history is on the certificate's page"
            # Its changes name the statuses in the reader's language, not by their codes.
            assert "active → suspended" not in page and "suspended → revoked" not in page, serial
        sweep.get(anonymous, f"/certificates/{serial}/verify/")
        api_path = reverse("certificate-verify", kwargs={"serial": serial})
        answer = APIClient(HTTP_ACCEPT_LANGUAGE="zh-CN").get(api_path)
        assert answer.status_code == 200, (api_path, answer.status_code)
        sweep.text(api_path, answer.json()["reason"])
    # The reviewer acts on a certificate that has moved on: refused in place, in the reader's language;
    # and a decision that is carried out is confirmed in it.
    revoked = made["revoked"].serial
    response = reviewer.post(f"/certificates/{revoked}/suspend/", {"suspend-reason": "再次暂停。"})
    assert response.status_code == 400, response.status_code
    sweep.visit(f"/certificates/{revoked}/suspend/ (refused)", response)
    response = reviewer.post(f"/certificates/{made['reinstated'].serial}/suspend/", {"suspend-reason": ""})
    assert response.status_code == 400, response.status_code
    sweep.visit(f"/certificates/{made['reinstated'].serial}/suspend/ (no reason)", response)
    response = reviewer.post(
        f"/certificates/{made['reinstated'].serial}/suspend/",
        {"suspend-reason": "复测期间暂停。"},
        follow=True,
    )
    assert response.status_code == 200, response.status_code
    sweep.visit(f"/certificates/{made['reinstated'].serial}/ (suspended)", response)
    # The surveillance campaign that suspended the first: its page, as its vendor and the reviewer read it.
    for client in (owner, reviewer):
        sweep.get(client, f"/campaigns/{made['run'].campaign_id}/")
    report = sweep.report()
    print(f"untranslated strings on suspended, revoked and reinstated certificates: {len(report)}")
    print("\n".join(report))
    assert report == [], f"{len(report)} untranslated strings:\n" + "\n".join(report)

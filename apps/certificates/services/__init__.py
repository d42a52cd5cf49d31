"""State changes of the certificates app. CAMPAIGN_EVALUATOR points at campaign_evaluate here.

evaluation (campaign_evaluate), reviews (review_approve, review_reject, criterion_waive),
certificates (certificate_issue, certificate_suspend, certificate_reinstate, certificate_revoke,
certificates_expire, certificate_check, certificate_document), keys (signing_key_rotate,
signing_key_active), surveillance (surveillance_schedule, surveillance_sweep), subjects
(certified_subject_edit: REGISTRY_CERTIFIED_EDIT points at it, the rule for editing certified chips
and targets).
"""

from apps.certificates.services.certificates import (
    certificate_check,
    certificate_document,
    certificate_issue,
    certificate_reinstate,
    certificate_revoke,
    certificate_suspend,
    certificates_expire,
)
from apps.certificates.services.evaluation import campaign_evaluate
from apps.certificates.services.keys import signing_key_active, signing_key_rotate
from apps.certificates.services.reviews import criterion_waive, review_approve, review_reject
from apps.certificates.services.surveillance import surveillance_schedule, surveillance_sweep

__all__ = [
    "campaign_evaluate",
    "certificate_check",
    "certificate_document",
    "certificate_issue",
    "certificate_reinstate",
    "certificate_revoke",
    "certificate_suspend",
    "certificates_expire",
    "criterion_waive",
    "review_approve",
    "review_reject",
    "signing_key_active",
    "signing_key_rotate",
    "surveillance_schedule",
    "surveillance_sweep",
]

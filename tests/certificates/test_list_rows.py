"""The public list's page builder (CertificateRows) gives exactly the dicts of DRF's field-by-field
serializer, for every kind of row (superseded, suspended with a reason) and in any current time zone."""

from __future__ import annotations

import pytest
from django.utils import timezone
from rest_framework import serializers

from apps.certificates.api.serializers import (
    CertificateDetailSerializer,
    CertificateListSerializer,
    CertificateRows,
)
from apps.certificates.models import Certificate, CertificateStatus
from apps.certificates.selectors import certificates_public_listed
from tests.certificates.evidence import aia_program
from tests.factories import ChipFactory
from tests.procurement.evidence import certify

pytestmark = pytest.mark.django_db


@pytest.fixture
def certificates(cast):
    program = aia_program()
    made = [
        certify(vendor=cast.vendor, program=program, chip=ChipFactory(vendor=cast.vendor, sku=f"ROW-{i}"))
        for i in range(3)
    ]
    Certificate.objects.filter(pk=made[0].pk).update(superseded_by=made[1])
    Certificate.objects.filter(pk=made[2].pk).update(
        status=CertificateStatus.SUSPENDED, status_reason="Suspended: a failed re-test."
    )
    return list(certificates_public_listed().order_by("pk"))


@pytest.mark.parametrize("zone", ["UTC", "Asia/Shanghai"])
def test_the_page_builder_gives_the_field_serializers_rows(certificates, zone):
    with timezone.override(zone):
        built = CertificateListSerializer(certificates, many=True).data
        by_field = [CertificateListSerializer(certificate).data for certificate in certificates]
    assert isinstance(CertificateListSerializer(many=True), CertificateRows)
    assert [dict(row) for row in built] == [dict(row) for row in by_field]
    assert built[0]["superseded_by"] == certificates[1].serial and built[2]["status_reason"]
    assert list(built[0]) == CertificateListSerializer.Meta.fields


def test_the_detail_serializer_keeps_its_own_fields_in_a_list(certificates):
    detail = [Certificate.objects.get(pk=c.pk) for c in certificates]
    many = CertificateDetailSerializer(detail, many=True)
    assert type(many) is serializers.ListSerializer
    assert "certificate" in many.data[0]


def test_the_api_list_reads_only_the_listed_columns(certificates, client):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        response = client.get("/api/v1/certificates/", {"status": "all"})
    assert response.status_code == 200 and response.json()["count"] == 3
    (listing,) = [q["sql"] for q in queries.captured_queries if "LIMIT" in q["sql"]]
    assert "payload_json" not in listing and '"definition"' not in listing, listing

"""The classification pages of the reference chips (seeded from the registry's CSV) show the pinned
figures, labelled as the vendors' declared claims, never as certified."""

from __future__ import annotations

import pytest
from django.test import Client

from apps.accounts.models import Organization, OrganizationKind
from apps.accounts.services import organization_create
from apps.registry.models import Chip
from apps.registry.reference_data import reference_chips
from apps.registry.services import chip_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def reference(db):
    for row in reference_chips():
        name = row.pop("vendor_name")
        vendor = Organization.objects.filter(slug=name.lower()).first() or organization_create(
            name=name, slug=name.lower(), kind=OrganizationKind.VENDOR
        )
        chip_create(vendor=vendor, **row)
    return {chip.sku: chip for chip in Chip.objects.all()}


@pytest.mark.parametrize(
    ("sku", "tpp", "pd", "code"),
    [
        ("A100-SXM4-80GB", "4,992", "6.04", "3A090.a"),
        ("H100-SXM5-80GB", "15,83", "19.4", "3A090.a"),
        ("H20", "2,368", "2.91", "not-3A090"),
    ],
)
def test_reference_chip_pages_show_class_tpp_and_pd_as_declared(cast, reference, sku, tpp, pd, code):
    client = Client()
    client.force_login(cast.buyer)
    html = client.get(f"/procurement/chips/{reference[sku].pk}/classification/").content.decode()
    assert f"Class: {code}" in html and "TPP = 2 x" in html and tpp in html and pd in html
    assert "vendor's declared claims" in html and "not certified" in html
    assert "eccn-3a090-2023-10" in html and "2023-10-17" in html and "Informational" in html
    assert "No certified measurement" in html


def test_the_list_shows_every_reference_chip_and_says_they_are_not_certified(cast, reference):
    client = Client()
    client.force_login(cast.buyer)
    html = client.get("/procurement/chips/").content.decode()
    for sku in (
        "H100-SXM5-80GB",
        "H200-SXM-141GB",
        "H20",
        "A100-SXM4-80GB",
        "MI300X",
        "Ascend-910",
        "Ascend-910B",
    ):
        assert sku in html
    assert html.count("vendor's declared claims, not certified") == 7

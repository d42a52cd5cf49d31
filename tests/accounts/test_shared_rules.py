"""The rules every app shares, each written once: row visibility (apps/accounts/selectors.py), the
HTML role guard (apps/accounts/guards.py), the dtype table (runners/dtypes.py) and the best GEMM
per dtype (runners/measurements.py)."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied
from django.test import RequestFactory

from apps.accounts.guards import is_buyer, is_vendor, member_required
from apps.accounts.selectors import buyer_rows_of, membership_of, vendor_rows_visible_to
from apps.registry.models import PEAK_FIELDS, Chip
from runners.dtypes import DTYPE_OF_PEAK_KEY, PEAK_KEY_OF_DTYPE, peak_key
from runners.measurements import best_gemm_per_dtype
from tests.factories import ChipFactory


def test_vendor_rows_authority_all_vendor_its_own_others_none(cast):
    own, foreign = ChipFactory(vendor=cast.vendor), ChipFactory(vendor=cast.foreign_vendor)
    chips = Chip.objects.all()

    def seen(user):
        return set(vendor_rows_visible_to(chips, membership_of(user), owner="vendor_id"))

    assert seen(cast.reviewer) == {own, foreign}
    assert seen(cast.owner) == {own}
    assert seen(cast.foreign) == {foreign}
    assert seen(cast.buyer) == set()
    assert set(vendor_rows_visible_to(chips, None, owner="vendor_id")) == set()


def test_buyer_rows_are_the_buyers_organization_only(cast):
    chips = Chip.objects.all()
    ChipFactory(vendor=cast.vendor)
    # owner names any lookup to an organization id; a non-buyer (the authority included) sees none.
    assert buyer_rows_of(chips, membership_of(cast.reviewer), owner="vendor_id").count() == 0
    assert buyer_rows_of(chips, membership_of(cast.owner), owner="vendor_id").count() == 0
    assert buyer_rows_of(chips, None, owner="vendor_id").count() == 0
    own = ChipFactory(vendor=membership_of(cast.buyer).organization)
    assert list(buyer_rows_of(chips, membership_of(cast.buyer), owner="vendor_id")) == [own]


def test_member_required_checks_the_role_and_sets_the_membership(cast):
    @member_required(is_vendor, message="vendors only")
    def view(request):
        return request.membership

    request = RequestFactory().get("/")
    request.user = cast.owner
    assert view(request) == membership_of(cast.owner)
    for user in (cast.buyer, cast.reviewer):
        request.user = user
        with pytest.raises(PermissionDenied, match="vendors only"):
            view(request)
    assert is_buyer(membership_of(cast.buyer)) and not is_buyer(membership_of(cast.owner))


@pytest.mark.parametrize(
    ("user", "path", "status"),
    [
        ("buyer", "/procurement/", 200),
        ("owner", "/procurement/", 403),
        ("reviewer", "/procurement/", 403),
        ("owner", "/procurement/registry/", 200),
        ("owner", "/campaigns/new/", 200),
        ("buyer", "/campaigns/new/", 403),
    ],
)
def test_portal_and_procurement_pages_use_the_same_guard(client, cast, user, path, status):
    client.force_login(getattr(cast, user))
    assert client.get(path).status_code == status
    client.logout()
    assert client.get(path).status_code == 302  # to the login page


def test_one_dtype_table():
    assert set(DTYPE_OF_PEAK_KEY) == set(PEAK_FIELDS), "every declared peak has its measured dtype"
    for key, dtype in DTYPE_OF_PEAK_KEY.items():
        assert PEAK_KEY_OF_DTYPE[dtype] == key
    assert peak_key("float8_e5m2") == "fp8" and peak_key("tfloat32") == "tf32"
    assert peak_key("bf16") == "bf16"  # already a key


def test_best_gemm_per_dtype_is_the_highest_value_first_of_equals():
    items = [
        ("bfloat16", 10.0, "a"),
        ("float16", 5.0, "b"),
        ("bfloat16", 12.0, "c"),
        ("bfloat16", 12.0, "d"),
        ("float16", 4.0, "e"),
    ]
    best = best_gemm_per_dtype(items, dtype=lambda i: i[0], value=lambda i: i[1])
    assert {dtype: item[2] for dtype, item in best.items()} == {"bfloat16": "c", "float16": "b"}
    assert best_gemm_per_dtype([], dtype=str, value=float) == {}

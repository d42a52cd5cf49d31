"""Filtering and ordering go through one FilterSet per model and stay inside what the caller may see."""

from __future__ import annotations

import pytest

from apps.registry.filters import ChipFilter
from apps.registry.models import Chip
from tests.factories import ChipFactory, HardwareTargetFactory, ModelArtifactFactory, RunnerFactory


@pytest.fixture
def chips(cast):
    return {
        "big": ChipFactory(
            vendor=cast.vendor, sku="BIG-1", name="Big", memory_gib=192, tdp_w=1000, fab_country="US"
        ),
        "small": ChipFactory(
            vendor=cast.vendor, sku="SMALL-1", name="Small", memory_gib=16, tdp_w=75, data_center=False
        ),
        "foreign": ChipFactory(vendor=cast.foreign_vendor, sku="BIG-2", name="Foreign big", memory_gib=256),
    }


def skus(response):
    assert response.status_code == 200, response.content
    return [item.get("sku") or item.get("slug") or item.get("name") for item in response.json()["results"]]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"q": "big"}, ["BIG-1"]),
        ({"min_memory_gib": 100}, ["BIG-1"]),
        ({"max_tdp_w": 100}, ["SMALL-1"]),
        ({"data_center": "false"}, ["SMALL-1"]),
        ({"fab_country": "US"}, ["BIG-1"]),
        ({"vendor": "acme", "ordering": "-memory_gib"}, ["BIG-1", "SMALL-1"]),
        ({"ordering": "tdp_w"}, ["SMALL-1", "BIG-1"]),
        ({"sku": "BIG-2"}, []),
    ],
)
def test_chip_filters_apply_within_the_vendors_own_chips(cast, client_for, chips, params, expected):
    assert skus(client_for(cast.owner).get("/api/v1/chips/", params)) == expected


def test_the_authority_filters_across_vendors(cast, client_for, chips):
    response = client_for(cast.reviewer).get("/api/v1/chips/", {"q": "big", "ordering": "sku"})
    assert skus(response) == ["BIG-1", "BIG-2"]


@pytest.mark.parametrize(
    "params",
    [{"min_memory_gib": "lots"}, {"page": "x"}, {"page": 99}],
)
def test_bad_filter_values_are_a_clean_4xx(cast, client_for, chips, params):
    response = client_for(cast.owner).get("/api/v1/chips/", params)
    assert response.status_code in (400, 404)
    assert response.json()["status"] == response.status_code


@pytest.mark.parametrize("params", [{"data_center": "perhaps"}, {"page_size": "-1"}, {"colour": "red"}])
def test_values_django_filter_and_drf_cannot_read_are_ignored(cast, client_for, chips, params):
    assert skus(client_for(cast.owner).get("/api/v1/chips/", params)) == ["BIG-1", "SMALL-1"]


def test_an_unknown_ordering_field_is_ignored_rather_than_leaking_columns(cast, client_for, chips):
    response = client_for(cast.owner).get(
        "/api/v1/chips/", {"ordering": "vendor__memberships__user__password"}
    )
    assert response.status_code == 200


def test_page_size_is_capped(cast, client_for):
    ChipFactory.create_batch(3, vendor=cast.vendor)
    response = client_for(cast.owner).get("/api/v1/chips/", {"page_size": 100000})
    assert response.status_code == 200
    assert response.json()["count"] == 3


def test_target_model_and_runner_filters(cast, client_for):
    chip = ChipFactory(vendor=cast.vendor)
    npu = HardwareTargetFactory(chip=chip, slug="npu-box", backend="npu")
    HardwareTargetFactory(chip=chip, slug="cuda-box", backend="cuda")
    ModelArtifactFactory(
        owner=cast.vendor, name="llama-tiny", task="llm-decode", architecture="llama-decoder"
    )
    ModelArtifactFactory(owner=cast.vendor, name="minilm")
    RunnerFactory(name="runner-npu", targets=[npu])
    RunnerFactory(name="runner-idle")
    owner = client_for(cast.owner)
    assert skus(owner.get("/api/v1/targets/", {"backend": "npu"})) == ["npu-box"]
    assert skus(owner.get("/api/v1/targets/", {"chip": chip.pk, "ordering": "-slug"})) == [
        "npu-box",
        "cuda-box",
    ]
    assert skus(owner.get("/api/v1/models/", {"task": "llm-decode"})) == ["llama-tiny"]
    assert skus(owner.get("/api/v1/models/", {"name": "MINI"})) == ["minilm"]
    assert owner.get("/api/v1/models/", {"task": "mind-reading"}).status_code == 400
    reviewer = client_for(cast.reviewer)
    assert skus(reviewer.get("/api/v1/runners/", {"target": "npu-box"})) == ["runner-npu"]


def test_the_same_filterset_works_without_http(cast, chips):
    # The portal reuses the FilterSet on a queryset it has already scoped.
    filtered = ChipFilter({"q": "big"}, queryset=Chip.objects.filter(vendor=cast.vendor)).qs
    assert [chip.sku for chip in filtered] == ["BIG-1"]

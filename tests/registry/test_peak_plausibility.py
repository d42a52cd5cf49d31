"""Declared peaks are checked at registration against the best known silicon, per mm² and per watt:
a declaration no chip can reach is a 400 naming the field, the precision and the bound."""

from __future__ import annotations

import pytest

from apps.registry.models import Chip
from apps.registry.plausibility import PLAUSIBILITY_MARGIN, best_known, declared_peak_problems
from apps.registry.reference_data import reference_chips
from tests.factories import ChipFactory

CHIP = {
    "sku": "BOLD-1",
    "name": "Bold One",
    "process_node_nm": 5,
    "die_area_mm2": 600,
    "memory_gib": 96,
    "memory_bandwidth_gbs": 3000,
    "tdp_w": 500,
    "fab_country": "TW",
    "assembly_country": "MY",
    "spec_source": "datasheet v1",
}


def test_900000_bf16_tflops_on_600_mm2_and_500_w_is_refused_naming_the_field_and_the_bound(cast, client_for):
    response = client_for(cast.owner).post(
        "/api/v1/chips/", {**CHIP, "declared_peak": {"bf16": 900_000, "fp32": 60}}, format="json"
    )
    assert response.status_code == 400, response.content
    error = response.json()
    problems = error["errors"]["declared_peak"]
    # Both bases are exceeded; each sentence names the precision, the bound and the best known part.
    assert len(problems) == 2 and all(p.startswith("bf16: 900000 on ") for p in problems)
    per_mm2 = best_known()["per_mm2"]["bf16"]
    assert per_mm2.chip.startswith("NVIDIA H")  # 989.4 TFLOP/s on 814 mm², the densest bf16 listed
    bound = PLAUSIBILITY_MARGIN * per_mm2.value
    assert f"above the plausible {bound:.3g} per mm²" in problems[0]
    assert f"at most {bound * 600:.4g} for this chip" in problems[0]
    assert "per W" in problems[1]
    assert not Chip.objects.filter(sku="BOLD-1").exists()


def test_a_plausible_declaration_is_registered(cast, client_for):
    # The README's example: 500 bf16 TFLOP/s on 600 mm² at 500 W.
    response = client_for(cast.owner).post(
        "/api/v1/chips/", {**CHIP, "declared_peak": {"bf16": 500, "fp32": 60}}, format="json"
    )
    assert response.status_code == 201, response.content


def test_the_per_watt_bound_applies_where_no_die_area_is_published(cast, client_for):
    # Chiplet parts publish no single die area (MI300X in the reference data): the watt still bounds them.
    body = {**CHIP, "die_area_mm2": None, "declared_peak": {"int8": 100_000}}
    response = client_for(cast.owner).post("/api/v1/chips/", body, format="json")
    assert response.status_code == 400
    (problem,) = response.json()["errors"]["declared_peak"]
    assert problem.startswith("int8: 100000 on 500 W")


def test_every_reference_accelerator_and_its_sparse_figure_are_plausible():
    for row in reference_chips():
        peaks, area, watts = row["declared_peak"], row["die_area_mm2"], row["tdp_w"]
        assert declared_peak_problems(declared_peak=peaks, die_area_mm2=area, tdp_w=watts) == [], row["sku"]
        sparse = {key: 2 * value for key, value in peaks.items()}  # entered as the 2:4-sparse figure
        assert declared_peak_problems(declared_peak=sparse, die_area_mm2=area, tdp_w=watts) == [], row["sku"]


def test_an_edit_to_an_implausible_peak_is_refused_and_changes_nothing(cast, client_for):
    chip = ChipFactory(vendor=cast.vendor, sku="KEEP", die_area_mm2=600, tdp_w=500)
    before = Chip.objects.filter(pk=chip.pk).values().get()
    response = client_for(cast.owner).patch(
        f"/api/v1/chips/{chip.pk}/", {"declared_peak": {"bf16": 900_000}}, format="json"
    )
    assert response.status_code == 400
    assert "bf16" in response.json()["errors"]["declared_peak"][0]
    assert Chip.objects.filter(pk=chip.pk).values().get() == before
    # Shrinking the die under an honest peak is refused the same way.
    response = client_for(cast.owner).patch(f"/api/v1/chips/{chip.pk}/", {"die_area_mm2": 10}, format="json")
    assert response.status_code == 400 and "declared_peak" in response.json()["errors"]


@pytest.mark.parametrize("key", ["fp32", "tf32", "bf16", "fp16", "fp8", "int8"])
def test_every_precision_has_a_reference_bound(key):
    assert key in best_known()["per_watt"] and key in best_known()["per_mm2"]

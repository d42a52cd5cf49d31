"""Export-control classification: the pinned reference figures, unknown die area, exclusions, and the
rule as data (a new rule file changes a result without a code change)."""

from __future__ import annotations

import json

import pytest

from apps.procurement.export_control import RULES_DIR, UNDETERMINED, classify, rule_current, rule_load

RULE = rule_load(path=RULES_DIR / "eccn-3a090-2023-10.json")


def test_a100_is_3a090a_with_tpp_4992_and_pd_6_04():
    result = classify(
        peaks={"fp32": 19.5, "bf16": 312, "fp16": 312, "int8": 624},
        die_area_mm2=826,
        data_center=True,
        rule=RULE,
    )
    assert result.tpp == pytest.approx(4992)
    assert result.pd == pytest.approx(6.04, abs=0.005)
    assert result.code == "3A090.a"


def test_h100_sxm_is_3a090a_with_tpp_about_15830():
    result = classify(peaks={"bf16": 989.4}, die_area_mm2=814, data_center=True, rule=RULE)
    assert result.tpp == pytest.approx(15830, abs=1)
    assert result.code == "3A090.a"


def test_h20_is_neither_a_nor_b():
    result = classify(peaks={"bf16": 148, "fp8": 296}, die_area_mm2=814, data_center=True, rule=RULE)
    assert result.tpp == pytest.approx(2368)
    assert result.pd == pytest.approx(2.91, abs=0.005)
    assert result.code == "not-3A090"
    assert any("3A090.b" in line and "not met" in line for line in result.explanation)


def test_tpp_is_the_maximum_over_precisions_of_peak_times_bit_length():
    result = classify(
        peaks={"fp32": 100, "bf16": 150, "int8": 250}, die_area_mm2=800, data_center=True, rule=RULE
    )
    assert result.tpp == pytest.approx(3200) and result.tpp_precision == "fp32"


def test_unknown_die_area_classifies_on_tpp_where_that_decides():
    result = classify(peaks={"fp8": 2614.9}, die_area_mm2=None, data_center=True, rule=RULE)
    assert result.pd is None and result.code == "3A090.a"
    assert any("PD unknown" in line for line in result.explanation)


def test_unknown_die_area_says_undetermined_when_pd_matters():
    result = classify(peaks={"bf16": 200}, die_area_mm2=None, data_center=True, rule=RULE)
    assert result.code == UNDETERMINED
    assert result.possible == ["3A090.a", "3A090.b", "not-3A090"]


def test_a_chip_not_for_data_centers_below_4800_is_excluded():
    assert classify(peaks={"bf16": 200}, die_area_mm2=100, data_center=False, rule=RULE).code == "excluded"
    assert classify(peaks={"bf16": 400}, die_area_mm2=800, data_center=False, rule=RULE).code == "3A090.a"


def test_the_current_rule_is_the_shipped_file_with_its_date():
    rule = rule_current()
    assert rule.id == "eccn-3a090-2023-10" and rule.date == "2023-10-17"
    assert "Informational" in rule.notice


def test_a_new_rule_version_changes_a_result_without_a_code_change(settings, tmp_path):
    data = json.loads((RULES_DIR / "eccn-3a090-2023-10.json").read_text())
    (tmp_path / "eccn-3a090-2023-10.json").write_text(json.dumps(data))
    newer = json.loads(json.dumps(data))
    newer.update(id="eccn-3a090-2099-01", date="2024-12-01", effective="2024-12-02")
    newer["classes"][0]["any_of"][0]["tpp_min"] = 2000  # a stricter hypothetical threshold
    (tmp_path / "eccn-3a090-2099-01.json").write_text(json.dumps(newer))
    settings.EXPORT_CONTROL_RULES_DIR = tmp_path

    rule = rule_current()
    h20 = classify(peaks={"bf16": 148}, die_area_mm2=814, data_center=True, rule=rule)
    assert rule.id == "eccn-3a090-2099-01"
    assert h20.code == "3A090.a" and h20.rule_id == "eccn-3a090-2099-01"
    assert classify(peaks={"bf16": 148}, die_area_mm2=814, data_center=True, rule=RULE).code == "not-3A090"

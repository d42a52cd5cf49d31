"""Collective figures on the reviewer's evidence page and the certificate (issue 16): the real
collectives suite's document (two gloo ranks on this CPU, tests/real_documents.py) goes through the
real ingestion; its algbw and busbw per op and size are shown as a table with units, in English and
Chinese, and signed into the certificate's headline; a one-device target shows "not applicable (one
device)" and no figure."""

from __future__ import annotations

import json

import pytest
from django.template.defaultfilters import floatformat

from apps.certificates import judge
from apps.certificates.models import CriterionOutcome
from apps.certificates.services import review_approve
from apps.portal.evidence import campaign_evidence
from apps.runs.services.programs import program_load
from runners.backends import get_backend
from runners.suites import run_suite
from tests.real_documents import (
    COLLECTIVES_OPTIONS,
    campaign_from_runner,
    cpu_target,
    runner_collectives_document,
)
from tests.runs.test_collectives_evidence import COLLECTIVES_PROGRAM

REASON = "Evidence complete and verified."


@pytest.fixture
def program(db):
    loaded, _ = program_load(definition=COLLECTIVES_PROGRAM)
    return loaded


def _measured() -> list[dict]:
    return [m for m in runner_collectives_document()["measurements"] if m["kind"] == "collective"]


def _two_device_host(suite: str, document: dict) -> None:
    """This CPU's fingerprint reports one device (runners/backends/builtin.py); a host with the two
    devices the target registers reports two. The cases and figures stay the runner's own."""
    document["fingerprint"]["device_count"] = 2


@pytest.fixture
def two_devices(cast, program):
    target = cpu_target(vendor=cast.vendor, device_count=2, interconnect="loopback (gloo over TCP)")
    return campaign_from_runner(
        vendor=cast.vendor,
        program=program,
        level="scale_out",
        target=target,
        submitted_by=cast.owner,
        edit=_two_device_host,
    )


def test_the_runners_figures_pass_the_criterion_with_the_largest_sizes_busbw(two_devices):
    measured = _measured()
    assert measured, "the runner measured every passing case"
    result = two_devices.criterion_results.get(criterion_id="C1")
    # Stored rows keep the runner's params nested: the criterion reads them as the runner wrote them.
    assert result.outcome == CriterionOutcome.PASS, result.explanation
    largest = max(m["params"]["bytes"] for m in measured)
    busbw = {m["params"]["op"]: m["value"] for m in measured if m["params"]["bytes"] == largest}
    assert result.measured_value == pytest.approx(min(busbw.values()))
    assert "on 2 devices" in result.explanation


def test_the_evidence_page_shows_algbw_and_busbw_per_op_and_size_with_units(cast, login, two_devices):
    evidence = campaign_evidence(campaign=two_devices, criteria=list(two_devices.criterion_results.all()))
    figures = evidence.collectives.figures
    assert evidence.collectives.applicable and evidence.collectives.devices == 2
    assert sorted((f.op, f.case, f.size_bytes) for f in figures) == sorted(
        (m["params"]["op"], m["params"]["case"], m["params"]["bytes"]) for m in _measured()
    )
    assert not any(m.kind == judge.COLLECTIVE_KIND for m in evidence.model_perf)
    html = login(cast.reviewer).get(f"/campaigns/{two_devices.pk}/").content.decode()
    assert "Collectives (scale-out)" in html and "busbw (GB/s)" in html and "algbw (GB/s)" in html
    assert "The target declares 2 devices, interconnect loopback (gloo over TCP)." in html
    for m in _measured():
        assert (
            f'<td>{m["params"]["op"]}</td><td>float32</td><td class="num">{m["params"]["bytes"]}</td>' in html
        )
        assert floatformat(m["value"], "-4") in html and floatformat(m["params"]["algbw_gbps"], "-4") in html
    chinese = login(cast.reviewer).get(f"/campaigns/{two_devices.pk}/", HTTP_ACCEPT_LANGUAGE="zh-CN")
    text = chinese.content.decode()
    assert "集合通信（横向扩展）" in text and "busbw（GB/s）" in text and "该目标声明 2 个设备" in text


def test_the_certificate_signs_and_shows_the_figures(cast, client, two_devices):
    review_approve(campaign=two_devices, reviewer=cast.reviewer, reason=REASON)
    two_devices.refresh_from_db()
    certificate = two_devices.certificate
    section = json.loads(certificate.payload_json)["headline"]["collectives"]
    assert section["applicable"] is True and section["devices"] == 2 and section["unit"] == "GB/s"
    assert section["interconnect"] == "loopback (gloo over TCP)"
    by_case = {(f["op"], f["case"]): f for f in section["figures"]}
    assert len(by_case) == len(_measured())
    for m in _measured():
        figure = by_case[(m["params"]["op"], m["params"]["case"])]
        assert figure["bytes"] == m["params"]["bytes"]
        assert figure["busbw_gbps"] == judge.round_significant(m["value"], 4)
        assert figure["algbw_gbps"] == judge.round_significant(m["params"]["algbw_gbps"], 4)
        assert figure["world_size"] == 2
    html = client.get(f"/certificates/{certificate.serial}/").content.decode()
    assert "Collectives (scale-out)" in html and "busbw (GB/s)" in html
    for figure in section["figures"]:
        assert floatformat(figure["busbw_gbps"], "-4") in html
    chinese = client.get(
        f"/certificates/{certificate.serial}/", HTTP_ACCEPT_LANGUAGE="zh-CN"
    ).content.decode()
    assert "集合通信（横向扩展）" in chinese and "消息大小（字节）" in chinese


def _one_device_document(suite: str, document: dict) -> None:
    """The runner's own document for the one-device plan: not applicable, no case."""
    if suite != "collectives":
        return
    spec = {**document["spec"], "options": {"collectives": {**COLLECTIVES_OPTIONS, "world_size": 1}}}
    produced = run_suite(spec, backend=get_backend("cpu"), progress=lambda fraction, label: None)
    assert produced["collectives"]["applicable"] is False and produced["cases"] == []
    document.clear()
    document.update(produced)


def _one_device_plan(suite: str, spec: dict) -> None:
    if suite == "collectives":
        spec["options"] = {"collectives": {**COLLECTIVES_OPTIONS, "world_size": 1}}


def test_a_one_device_target_shows_not_applicable_on_the_page_and_the_certificate(
    cast, client, login, program
):
    campaign = campaign_from_runner(
        vendor=cast.vendor,
        program=program,
        level="scale_out",
        target=cpu_target(vendor=cast.vendor),
        submitted_by=cast.owner,
        edit=_one_device_document,
        plan=_one_device_plan,
    )
    assert campaign.criterion_results.get(criterion_id="C1").outcome == CriterionOutcome.NOT_APPLICABLE
    html = login(cast.reviewer).get(f"/campaigns/{campaign.pk}/").content.decode()
    assert "not applicable (one device)" in html and "busbw (GB/s)" not in html
    assert "The target declares 1 device," in html
    review_approve(campaign=campaign, reviewer=cast.reviewer, reason=REASON)
    campaign.refresh_from_db()
    section = json.loads(campaign.certificate.payload_json)["headline"]["collectives"]
    assert section == {
        **section,
        "applicable": False,
        "devices": 1,
        "reason": "not applicable (one device)",
        "figures": [],
    }
    page = client.get(f"/certificates/{campaign.certificate.serial}/", HTTP_ACCEPT_LANGUAGE="zh-CN")
    assert "不适用（单设备）" in page.content.decode()


def test_a_campaign_without_a_collectives_job_carries_no_collectives_section(cast, login, program):
    from apps.certificates.payload import collectives_headline
    from tests.runs.world import TEST_PROGRAM

    plain, _ = program_load(definition=TEST_PROGRAM)
    campaign = campaign_from_runner(
        vendor=cast.vendor, program=plain, level="basic", submitted_by=cast.owner, evaluate=False
    )
    assert collectives_headline(campaign) is None
    evidence = campaign_evidence(campaign=campaign, criteria=[])
    assert evidence.collectives is None

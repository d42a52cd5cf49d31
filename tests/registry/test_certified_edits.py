"""The registry services' side of issue 12: an edit of a certified chip or target is checked by the
certificates app's rule inside the update's transaction (nothing half-saved on a refusal)."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from apps.registry.models import Chip, HardwareTarget
from apps.registry.services import chip_update, target_update
from tests.certificates.frozen import SIGNED, certify_cpu_target


@pytest.fixture(autouse=True)
def signing_key_dir(settings, tmp_path):
    settings.CERT_SIGNING_KEY_DIR = tmp_path / "signing-keys"


@pytest.fixture
def certificate(cast, db):
    from tests.certificates.evidence import aia_program

    return certify_cpu_target(cast=cast, program=aia_program())


def test_chip_update_refuses_a_certified_field_as_a_conflict_and_saves_nothing(certificate):
    chip = Chip.objects.get(pk=certificate.chip_id)
    with pytest.raises(ValidationError) as refused:
        chip_update(chip=chip, name="Renamed", declared_peak={"bf16": 9000}, tdp_w=123)
    assert refused.value.code == "conflict" and certificate.serial in refused.value.messages[0]
    row = Chip.objects.get(pk=certificate.chip_id)
    assert (row.name, row.peak_bf16_tflops) == (SIGNED["name"], SIGNED["bf16"]) and row.tdp_w != 123


def test_target_update_refuses_a_new_chip_but_takes_a_description(cast, certificate):
    from tests.factories import ChipFactory

    target = HardwareTarget.objects.get(pk=certificate.target_id)
    with pytest.raises(ValidationError) as refused:
        target_update(target=target, chip=ChipFactory(vendor=cast.vendor), description="moved")
    assert refused.value.code == "conflict" and "chip" in refused.value.messages[0]
    assert HardwareTarget.objects.get(pk=certificate.target_id).description == ""
    target = HardwareTarget.objects.get(pk=certificate.target_id)
    target_update(target=target, description="moved", host_memory_gib=1024)
    assert HardwareTarget.objects.get(pk=certificate.target_id).description == "moved"

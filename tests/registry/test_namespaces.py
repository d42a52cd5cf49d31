"""Target slugs and chip SKUs are each vendor's own namespace: another's is neither refused nor revealed."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from apps.registry.models import Chip, HardwareTarget, Runner
from tests.factories import ChipFactory, HardwareTargetFactory, ed25519_public_pem


def target_body(chip, slug="shared-slug"):
    return {"chip": chip.pk, "slug": slug, "backend": "cuda", "torch_version": "2.4.0"}


def test_a_slug_another_vendor_uses_is_accepted_and_reveals_nothing(cast, client_for):
    HardwareTargetFactory(chip=ChipFactory(vendor=cast.foreign_vendor), slug="shared-slug")
    own_chip = ChipFactory(vendor=cast.vendor)
    response = client_for(cast.owner).post("/api/v1/targets/", target_body(own_chip), format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["vendor"], body["slug"], body["queue"]) == ("acme", "shared-slug", "target.acme.shared-slug")
    foreign = HardwareTarget.objects.get(vendor=cast.foreign_vendor)
    assert foreign.queue == "target.borealis.shared-slug", "each vendor's target has its own runner queue"


def test_a_vendors_own_slug_twice_is_refused_with_a_message_about_its_own_targets(cast, client_for):
    chip = ChipFactory(vendor=cast.vendor)
    client = client_for(cast.owner)
    assert client.post("/api/v1/targets/", target_body(chip), format="json").status_code == 201
    response = client.post("/api/v1/targets/", target_body(chip), format="json")
    assert response.status_code == 400
    assert response.json()["errors"]["slug"] == [
        "Your organization already has a hardware target with this slug."
    ]
    assert HardwareTarget.objects.count() == 1


def test_the_database_refuses_a_duplicate_slug_of_one_vendor(cast):
    from django.db import IntegrityError, transaction

    target = HardwareTargetFactory(chip=ChipFactory(vendor=cast.vendor), slug="dup")
    with pytest.raises(IntegrityError), transaction.atomic():
        HardwareTarget.objects.create(
            chip=target.chip, vendor=cast.vendor, slug="dup", backend="cpu", torch_version="2.4"
        )


def test_certify_names_a_shared_slug_by_vendor(cast):
    HardwareTargetFactory(chip=ChipFactory(vendor=cast.vendor), slug="twin")
    HardwareTargetFactory(chip=ChipFactory(vendor=cast.foreign_vendor), slug="twin")
    with pytest.raises(CommandError, match="acme/twin or borealis/twin"):
        call_command("certify", "twin", stdout=StringIO())
    with pytest.raises(CommandError, match="No hardware target"):
        call_command("certify", "nobody/twin", stdout=StringIO())


def test_the_authority_binds_runners_to_targets_by_vendor_and_slug(cast, client_for):
    mine = HardwareTargetFactory(chip=ChipFactory(vendor=cast.vendor), slug="twin")
    HardwareTargetFactory(chip=ChipFactory(vendor=cast.foreign_vendor), slug="twin")
    client = client_for(cast.platform_admin)
    body = {"name": "runner-1", "public_key": ed25519_public_pem(), "targets": ["twin"]}
    ambiguous = client.post("/api/v1/runners/", body, format="json")
    assert ambiguous.status_code == 400
    assert "acme/twin or borealis/twin" in str(ambiguous.json()["errors"]["targets"])
    created = client.post("/api/v1/runners/", {**body, "targets": ["acme/twin"]}, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["targets"] == ["acme/twin"]
    assert list(Runner.objects.get(name="runner-1").targets.all()) == [mine]


def test_another_vendors_sku_is_its_own_product_and_the_conflict_speaks_only_of_ones_own(cast, client_for):
    ChipFactory(vendor=cast.foreign_vendor, sku="X-1")
    body = {
        "sku": "X-1",
        "name": "Ours",
        "process_node_nm": 5,
        "memory_gib": 80,
        "tdp_w": 500,
        "fab_country": "TW",
        "assembly_country": "MY",
        "spec_source": "datasheet",
    }
    client = client_for(cast.owner)
    created = client.post("/api/v1/chips/", body, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["vendor"] == "acme"
    assert Chip.objects.get(vendor=cast.foreign_vendor).name != "Ours", "the other vendor's chip is untouched"
    for sku in ("X-1", "x-1"):
        again = client.post("/api/v1/chips/", {**body, "sku": sku}, format="json")
        assert again.status_code == 400, sku
        assert again.json()["errors"]["sku"] == ["Your organization already has a chip with this SKU."]
    assert Chip.objects.filter(vendor=cast.vendor).count() == 1

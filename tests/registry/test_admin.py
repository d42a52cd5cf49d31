"""Every model has a Django admin that works for the platform administrator."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.urls import reverse

from apps.accounts.models import ApiToken, Membership, Organization
from apps.accounts.services import api_token_create
from apps.registry.models import Chip, HardwareTarget, ModelArtifact, Runner
from tests.factories import ChipFactory, HardwareTargetFactory, ModelArtifactFactory, RunnerFactory

MODELS = [Organization, Membership, ApiToken, Chip, HardwareTarget, ModelArtifact, Runner]


def test_every_accounts_and_registry_model_is_registered():
    from django.apps import apps

    ours = [m for m in apps.get_models() if m._meta.app_label in ("accounts", "registry")]
    assert sorted(m.__name__ for m in ours) == sorted(m.__name__ for m in MODELS)
    assert all(admin.site.is_registered(model) for model in ours)


@pytest.fixture
def admin_client_of(cast, client):
    target = HardwareTargetFactory(chip=ChipFactory(vendor=cast.vendor))
    ModelArtifactFactory(owner=cast.vendor)
    RunnerFactory(targets=[target])
    api_token_create(user=cast.owner)
    client.force_login(cast.platform_admin)
    return client


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_the_changelist_and_change_page_answer_200(admin_client_of, model):
    opts = model._meta
    response = admin_client_of.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))
    assert response.status_code == 200
    obj = model.objects.first()
    response = admin_client_of.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk]))
    assert response.status_code == 200
    search = admin_client_of.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"), {"q": "x"})
    assert search.status_code == 200


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_the_admin_is_closed_to_vendors(cast, client, model):
    client.force_login(cast.vendor_admin)
    opts = model._meta
    response = client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))
    assert response.status_code == 302
    assert "/login/" in response["Location"]


def test_api_tokens_cannot_be_added_in_the_admin(admin_client_of):
    assert admin_client_of.get(reverse("admin:accounts_apitoken_add")).status_code == 403


def test_the_runner_admin_answers_a_bad_key_beside_the_field(cast, client):
    from apps.registry.models import Runner

    client.force_login(cast.platform_admin)
    response = client.post(
        "/admin/registry/runner/add/", {"name": "host-1", "public_key": "not a key", "status": "pending"}
    )
    assert response.status_code == 200
    assert "Not a PEM-encoded public key" in response.content.decode()
    assert not Runner.objects.exists()

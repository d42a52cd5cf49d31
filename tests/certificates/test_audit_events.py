"""Issue 12.4: every security-relevant change is an audit event of the user who made it.

Registry writes (chips, targets, models, runners: API and admin), runner key swaps and bindings,
organizations, memberships, tokens, program loads and Celery beat schedule edits.
"""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command

from apps.audit.models import AuditEvent
from apps.audit.services import audit_chain_verify
from tests.factories import (
    TINY_BERT_CONFIG,
    ChipFactory,
    HardwareTargetFactory,
    RunnerFactory,
    ed25519_public_pem,
    model_weights_bytes,
)


def events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("sequence"))


def only(action: str) -> AuditEvent:
    found = events(action)
    assert len(found) == 1, (action, [str(e) for e in AuditEvent.objects.all()])
    return found[0]


@pytest.fixture
def authority(cast, client_for):
    return client_for(cast.platform_admin)


@pytest.fixture
def vendor(cast, client_for):
    return client_for(cast.owner)


@pytest.fixture
def vendor_admin(cast, client_for):
    return client_for(cast.vendor_admin)


def test_chip_create_edit_and_delete_are_audited(cast, vendor, vendor_admin):
    response = vendor.post(
        "/api/v1/chips/",
        {
            "sku": "NEW-1",
            "name": "New",
            "process_node_nm": 4,
            "memory_gib": 96,
            "tdp_w": 350,
            "fab_country": "US",
            "assembly_country": "MX",
            "spec_source": "datasheet",
            "declared_peak": {"bf16": 400},
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    chip_id = response.json()["id"]
    created = only("chip.created")
    assert created.actor == cast.owner and created.object_id == str(chip_id)
    assert created.payload["fields"]["sku"] == "NEW-1" and created.payload["declared_peak"] == {"bf16": 400}

    assert vendor.patch(f"/api/v1/chips/{chip_id}/", {"tdp_w": 300}, format="json").status_code == 200
    updated = only("chip.updated")
    assert updated.actor == cast.owner and updated.payload["fields"] == {"tdp_w": 300}

    assert vendor_admin.delete(f"/api/v1/chips/{chip_id}/").status_code == 204
    deleted = only("chip.deleted")
    assert deleted.payload["sku"] == "NEW-1" and deleted.actor == cast.vendor_admin
    assert audit_chain_verify().ok


def test_a_refused_change_leaves_no_event(cast, vendor_admin):
    chip = ChipFactory(vendor=cast.vendor)
    HardwareTargetFactory(chip=chip)
    assert vendor_admin.delete(f"/api/v1/chips/{chip.pk}/").status_code == 409
    assert not events("chip.deleted"), "the event rolls back with the refused delete"


def test_target_create_and_edit_are_audited(cast, vendor):
    chip = ChipFactory(vendor=cast.vendor)
    response = vendor.post(
        "/api/v1/targets/",
        {"chip": chip.pk, "slug": "acme-t1", "backend": "cuda", "torch_version": "2.4.0"},
        format="json",
    )
    assert response.status_code == 201, response.json()
    created = only("target.created")
    assert created.actor == cast.owner and created.payload["chip"] == chip.pk
    target_id = response.json()["id"]
    assert (
        vendor.patch(f"/api/v1/targets/{target_id}/", {"driver_version": "999"}, format="json").status_code
        == 200
    )
    assert only("target.updated").payload["fields"] == {"driver_version": "999"}


def test_model_upload_and_delete_are_audited(cast, vendor, vendor_admin):
    response = vendor.post(
        "/api/v1/models/",
        {
            "name": "minilm",
            "version": "1.0",
            "task": "text-embedding",
            "architecture": "bert-encoder",
            "config": json.dumps(TINY_BERT_CONFIG),
            "license": "MIT",
            "weights": SimpleUploadedFile(
                "w.safetensors", model_weights_bytes(), content_type="application/octet-stream"
            ),
        },
        format="multipart",
    )
    assert response.status_code == 201, response.json()
    created = only("model.created")
    assert (
        created.actor == cast.owner and created.payload["weights_sha256"] == response.json()["weights_sha256"]
    )
    assert vendor_admin.delete(f"/api/v1/models/{response.json()['id']}/").status_code == 204
    assert only("model.deleted").actor == cast.vendor_admin


def test_a_runner_key_swap_is_audited_with_both_key_ids(cast, authority):
    runner = RunnerFactory()
    old_key = runner.key_id
    response = authority.patch(
        f"/api/v1/runners/{runner.pk}/", {"public_key": ed25519_public_pem()}, format="json"
    )
    assert response.status_code == 200, response.json()
    event = only("runner.updated")
    assert event.actor == cast.platform_admin
    assert event.payload["key_changed"] is True
    assert event.payload["key_id"] == {"before": old_key, "after": response.json()["key_id"]}


def test_binding_a_runner_to_another_vendors_target_is_audited_with_the_vendor(cast, authority):
    own = HardwareTargetFactory(chip=ChipFactory(vendor=cast.vendor))
    foreign = HardwareTargetFactory(chip=ChipFactory(vendor=cast.foreign_vendor))
    response = authority.post(
        "/api/v1/runners/",
        {"name": "host-1", "public_key": ed25519_public_pem(), "targets": [own.slug]},
        format="json",
    )
    assert response.status_code == 201, response.json()
    registered = only("runner.registered")
    assert registered.payload["targets"] == [{"target": own.pk, "slug": own.slug, "vendor": cast.vendor.pk}]
    response = authority.patch(
        f"/api/v1/runners/{response.json()['id']}/", {"targets": [own.slug, foreign.slug]}, format="json"
    )
    assert response.status_code == 200, response.json()
    event = only("runner.updated")
    assert event.payload["bindings_changed"] is True and event.payload["key_changed"] is False
    assert {t["vendor"] for t in event.payload["targets"]["after"]} == {
        cast.vendor.pk,
        cast.foreign_vendor.pk,
    }
    assert authority.delete(f"/api/v1/runners/{response.json()['id']}/").status_code == 204
    assert only("runner.deleted").payload["name"] == "host-1"


def test_a_runner_key_swap_in_the_admin_is_audited(cast, client):
    runner = RunnerFactory()
    client.force_login(cast.platform_admin)
    new_key = ed25519_public_pem()
    response = client.post(
        f"/admin/registry/runner/{runner.pk}/change/",
        {
            "name": runner.name,
            "public_key": new_key,
            "status": runner.status,
            "targets": [t.pk for t in runner.targets.all()],
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    event = only("runner.changed")
    assert event.actor == cast.platform_admin and event.payload["via"] == "admin"
    assert "public_key" in event.payload["fields"]


def test_token_create_and_revoke_are_audited(cast, vendor):
    response = vendor.post("/api/v1/tokens/", {"name": "ci"}, format="json")
    assert response.status_code == 201, response.json()
    created = [e for e in events("token.created") if e.payload["name"] == "ci"]
    assert len(created) == 1 and created[0].actor == cast.owner
    key = created[0].object_id
    assert response.json()["token"].startswith(key), "the event names the token by its public prefix only"
    assert response.json()["token"] not in json.dumps(created[0].payload)
    assert vendor.delete(f"/api/v1/tokens/{key}/").status_code == 204
    revoked = only("token.revoked")
    assert revoked.object_id == key and revoked.actor == cast.owner


def test_a_token_revoked_in_the_admin_is_audited(cast, client):
    from apps.accounts.models import ApiToken
    from apps.accounts.services import api_token_create

    token, _ = api_token_create(user=cast.owner, name="laptop")
    client.force_login(cast.platform_admin)
    response = client.post(f"/admin/accounts/apitoken/{token.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not ApiToken.objects.filter(pk=token.pk).exists()
    revoked = only("token.revoked")
    assert revoked.actor == cast.platform_admin and revoked.object_id == token.token_key


def test_membership_creation_and_a_role_change_in_the_admin_are_audited(cast, client):
    from apps.accounts.models import Role
    from apps.accounts.services import user_create

    user = user_create(
        username="newhire", organization=cast.vendor, role=Role.VENDOR_ENGINEER, actor=cast.platform_admin
    )
    created = only("membership.created")
    assert created.payload["role"] == Role.VENDOR_ENGINEER and created.actor == cast.platform_admin
    client.force_login(cast.platform_admin)
    response = client.post(
        f"/admin/accounts/membership/{user.membership.pk}/change/",
        {
            "user": user.pk,
            "organization": cast.vendor.pk,
            "role": Role.VENDOR_ADMIN,
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    changed = only("membership.changed")
    assert changed.actor == cast.platform_admin and changed.payload["fields"] == {"role": Role.VENDOR_ADMIN}


def test_loading_a_program_is_audited(db, tmp_path):
    from apps.runs.services.programs import PROGRAMS_DIR

    source = sorted(PROGRAMS_DIR.glob("*.json"))[0]
    definition = json.loads(source.read_text())
    definition["status"] = "draft"
    path = tmp_path / "program.json"
    path.write_text(json.dumps(definition))
    call_command("load_programs", str(path), stdout=StringIO())
    loaded = only("program.loaded")
    assert loaded.payload["code"] == definition["code"] and loaded.actor_label == "system"
    definition["title"] = "Edited while a draft"
    path.write_text(json.dumps(definition))
    call_command("load_programs", str(path), stdout=StringIO())
    assert only("program.reloaded").payload["definition_sha256"] != loaded.payload["definition_sha256"]


def test_a_schedule_change_in_the_admin_is_audited(cast, client):
    from django_celery_beat.models import PeriodicTask

    task = PeriodicTask.objects.get(task="certificates.expire")
    client.force_login(cast.platform_admin)
    response = client.post(
        "/admin/django_celery_beat/periodictask/",
        {
            "action": "disable_tasks",
            "_selected_action": [task.pk],
        },
    )
    assert response.status_code == 302
    assert not PeriodicTask.objects.get(pk=task.pk).enabled
    disabled = only("periodictask.disabled")
    assert disabled.actor == cast.platform_admin and disabled.payload["task"] == "certificates.expire"
    response = client.post(f"/admin/django_celery_beat/periodictask/{task.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert only("periodictask.deleted").payload["row"].startswith(task.name)
    assert audit_chain_verify().ok

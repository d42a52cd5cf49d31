"""Who may do what in the registry API: every endpoint x role x own/foreign object.

Vendors see and change only their own organization's objects and get 404 for others' (so
existence does not leak); the authority reads everything and writes runners only as platform
administrator; buyers and anonymous users see nothing of the registry.
"""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.registry.models import Chip, HardwareTarget, ModelArtifact, Runner
from tests.factories import (
    TINY_BERT_CONFIG,
    ChipFactory,
    HardwareTargetFactory,
    ModelArtifactFactory,
    RunnerFactory,
    ed25519_public_pem,
    model_weights_bytes,
)

ROLES = [
    "owner",
    "colleague",
    "vendor_admin",
    "foreign",
    "foreign_admin",
    "reviewer",
    "platform_admin",
    "buyer",
    "anonymous",
]
MODELS = {"chips": Chip, "targets": HardwareTarget, "models": ModelArtifact, "runners": Runner}


@pytest.fixture
def registry(cast):
    """One object of each kind for the owner's vendor and for the foreign vendor."""
    own_chip = ChipFactory(vendor=cast.vendor, sku="OWN-1")
    foreign_chip = ChipFactory(vendor=cast.foreign_vendor, sku="FOREIGN-1")
    own_target = HardwareTargetFactory(chip=own_chip, slug="own-target")
    foreign_target = HardwareTargetFactory(chip=foreign_chip, slug="foreign-target")
    return {
        "own": {
            "chips": ChipFactory(vendor=cast.vendor, sku="OWN-SPARE"),  # no targets, so it can be deleted
            "targets": own_target,
            "models": ModelArtifactFactory(owner=cast.vendor, name="own-model"),
            "runners": RunnerFactory(name="own-runner", targets=[own_target]),
        },
        "foreign": {
            "chips": ChipFactory(vendor=cast.foreign_vendor, sku="FOREIGN-SPARE"),
            "targets": foreign_target,
            "models": ModelArtifactFactory(owner=cast.foreign_vendor, name="foreign-model"),
            "runners": RunnerFactory(name="foreign-runner", targets=[foreign_target]),
        },
        "own_chip": own_chip,
        "foreign_chip": foreign_chip,
    }


def user_of(cast, role):
    return None if role == "anonymous" else getattr(cast, role)


def own_chip_of(cast, registry, role):
    return registry["foreign_chip"] if role in ("foreign", "foreign_admin") else registry["own_chip"]


def create_request(endpoint, cast, registry, role):
    """(payload, format) of a valid create request by `role` on `endpoint`."""
    if endpoint == "chips":
        return {
            "sku": "NEW-1",
            "name": "New",
            "process_node_nm": 4,
            "memory_gib": 96,
            "tdp_w": 350,
            "fab_country": "US",
            "assembly_country": "MX",
            "spec_source": "datasheet",
            "declared_peak": {"bf16": 400},
        }, "json"
    if endpoint == "targets":
        return {
            "chip": own_chip_of(cast, registry, role).pk,
            "slug": "new-target",
            "backend": "cuda",
            "torch_version": "2.4.0",
        }, "json"
    if endpoint == "models":
        return {
            "name": "new-model",
            "version": "1",
            "task": "text-embedding",
            "architecture": "bert-encoder",
            "config": json.dumps(TINY_BERT_CONFIG),
            "license": "MIT",
            "weights": SimpleUploadedFile("w.safetensors", model_weights_bytes(99)),
        }, "multipart"
    return {"name": "new-runner", "public_key": ed25519_public_pem(), "targets": ["own-target"]}, "json"


UPDATES = {
    "chips": {"name": "Renamed"},
    "targets": {"description": "Renamed"},
    "models": {"license": "Renamed"},
    "runners": {"status": "disabled"},
}


def snapshot():
    return {name: sorted(model.objects.values_list("pk", flat=True)) for name, model in MODELS.items()}


# Expected status per role. "own" is an object of the owner's vendor (Acme); for the foreign
# vendor's users the same object is a foreign one.
VENDOR_READS = {
    "owner": 200,
    "colleague": 200,
    "vendor_admin": 200,
    "foreign": 404,
    "foreign_admin": 404,
    "reviewer": 200,
    "platform_admin": 200,
    "buyer": 403,
    "anonymous": 401,
}
VENDOR_UPDATES = {**VENDOR_READS, "reviewer": 403, "platform_admin": 403}
VENDOR_DELETES = {
    "owner": 403,
    "colleague": 403,
    "vendor_admin": 204,
    "foreign": 403,
    "foreign_admin": 404,
    "reviewer": 403,
    "platform_admin": 403,
    "buyer": 403,
    "anonymous": 401,
}
VENDOR_CREATES = {
    "owner": 201,
    "colleague": 201,
    "vendor_admin": 201,
    "foreign": 201,
    "foreign_admin": 201,
    "reviewer": 403,
    "platform_admin": 403,
    "buyer": 403,
    "anonymous": 401,
}
AUTHORITY_ONLY = {
    "owner": 403,
    "colleague": 403,
    "vendor_admin": 403,
    "foreign": 403,
    "foreign_admin": 403,
    "buyer": 403,
    "anonymous": 401,
}

EXPECTED = {
    ("chips", "retrieve"): VENDOR_READS,
    ("chips", "update"): VENDOR_UPDATES,
    ("chips", "delete"): VENDOR_DELETES,
    ("chips", "create"): VENDOR_CREATES,
    ("targets", "retrieve"): VENDOR_READS,
    ("targets", "update"): VENDOR_UPDATES,
    ("targets", "delete"): VENDOR_DELETES,
    ("targets", "create"): VENDOR_CREATES,
    ("models", "retrieve"): VENDOR_READS,
    # Model artifacts are immutable: register a new version instead.
    ("models", "update"): {
        **VENDOR_UPDATES,
        "owner": 405,
        "colleague": 405,
        "vendor_admin": 405,
        "foreign": 405,
        "foreign_admin": 405,
    },
    ("models", "delete"): VENDOR_DELETES,
    ("models", "create"): VENDOR_CREATES,
    ("runners", "retrieve"): {**AUTHORITY_ONLY, "reviewer": 200, "platform_admin": 200},
    ("runners", "update"): {**AUTHORITY_ONLY, "reviewer": 403, "platform_admin": 200},
    ("runners", "delete"): {**AUTHORITY_ONLY, "reviewer": 403, "platform_admin": 204},
    ("runners", "create"): {**AUTHORITY_ONLY, "reviewer": 403, "platform_admin": 201},
}
CASES = [
    (endpoint, action, role, status)
    for (endpoint, action), table in EXPECTED.items()
    for role, status in table.items()
]


def test_the_matrix_names_every_role_for_every_case():
    for table in EXPECTED.values():
        assert set(table) == set(ROLES)


@pytest.mark.parametrize(("endpoint", "action", "role", "expected"), CASES)
def test_access_to_the_registry(cast, registry, client_for, endpoint, action, role, expected):
    client = client_for(user_of(cast, role))
    instance = registry["own"][endpoint]
    detail = f"/api/v1/{endpoint}/{instance.pk}/"
    before = snapshot()

    if action == "retrieve":
        response = client.get(detail)
    elif action == "update":
        response = client.patch(detail, UPDATES[endpoint], format="json")
    elif action == "delete":
        response = client.delete(detail)
    else:
        payload, fmt = create_request(endpoint, cast, registry, role)
        response = client.post(f"/api/v1/{endpoint}/", payload, format=fmt)

    assert response.status_code == expected, response.content
    if expected >= 400:
        body = response.json()
        assert body["status"] == expected
        assert body["detail"]
        assert snapshot() == before, "a refused request changed the registry"
        instance.refresh_from_db()
        field, value = next(iter(UPDATES[endpoint].items()))
        assert getattr(instance, field) != value
    if expected == 200 and action == "retrieve":
        assert response.json()["id"] == instance.pk
    if expected == 200 and action == "update":
        field, value = next(iter(UPDATES[endpoint].items()))
        assert response.json()[field] == value
    if expected == 204:
        assert not type(instance).objects.filter(pk=instance.pk).exists()
    if expected == 201:
        created = type(instance).objects.get(pk=response.json()["id"])
        if endpoint in ("chips",):
            assert created.vendor == user_of(cast, role).membership.organization
        if endpoint == "models":
            assert created.owner == user_of(cast, role).membership.organization


LISTS = {
    "owner": {"own"},
    "colleague": {"own"},
    "vendor_admin": {"own"},
    "foreign": {"foreign"},
    "foreign_admin": {"foreign"},
    "reviewer": {"own", "foreign"},
    "platform_admin": {"own", "foreign"},
    "buyer": 403,
    "anonymous": 401,
}


@pytest.mark.parametrize("endpoint", ["chips", "targets", "models", "runners"])
@pytest.mark.parametrize("role", ROLES)
def test_lists_show_only_what_the_role_may_see(cast, registry, client_for, endpoint, role):
    response = client_for(user_of(cast, role)).get(f"/api/v1/{endpoint}/")
    expected = LISTS[role]
    if endpoint == "runners" and role not in ("reviewer", "platform_admin", "anonymous"):
        expected = 403
    if isinstance(expected, int):
        assert response.status_code == expected
        assert response.json()["status"] == expected
        return
    assert response.status_code == 200
    ids = {item["id"] for item in response.json()["results"]}
    assert ids >= {registry[side][endpoint].pk for side in expected}
    hidden = {"own", "foreign"} - expected
    for side in hidden:
        assert registry[side][endpoint].pk not in ids
    if endpoint == "chips" and hidden:
        hidden_vendor = cast.foreign_vendor if hidden == {"foreign"} else cast.vendor
        assert hidden_vendor.slug not in response.content.decode()


@pytest.mark.parametrize("endpoint", ["chips", "targets", "models"])
def test_a_foreign_object_is_a_404_whatever_the_method(cast, registry, client_for, endpoint):
    client = client_for(cast.vendor_admin)
    foreign = registry["foreign"][endpoint]
    detail = f"/api/v1/{endpoint}/{foreign.pk}/"
    missing = f"/api/v1/{endpoint}/999999/"
    for method in ("get", "patch", "put", "delete"):
        response = getattr(client, method)(detail, {}, format="json")
        if endpoint == "models" and method in ("patch", "put"):
            assert response.status_code == 405
            continue
        assert response.status_code == 404, (method, response.content)
        # The answer for a foreign object is the answer for one that does not exist (but its path).
        foreign_problem, missing_problem = (
            response.json(),
            getattr(client, method)(missing, {}, format="json").json(),
        )
        assert (foreign_problem.pop("instance"), missing_problem.pop("instance")) == (detail, missing)
        assert foreign_problem == missing_problem
    assert type(foreign).objects.filter(pk=foreign.pk).exists()


def test_a_vendor_cannot_move_its_target_to_a_foreign_chip(cast, registry, client_for):
    target = registry["own"]["targets"]
    response = client_for(cast.owner).patch(
        f"/api/v1/targets/{target.pk}/", {"chip": registry["foreign_chip"].pk}, format="json"
    )
    assert response.status_code == 400
    assert "chip" in response.json()["errors"]
    target.refresh_from_db()
    assert target.chip == registry["own_chip"]


def test_filtering_by_a_foreign_vendor_shows_nothing(cast, registry, client_for):
    response = client_for(cast.owner).get("/api/v1/chips/", {"vendor": "borealis"})
    assert response.status_code == 200
    assert response.json()["count"] == 0


def test_a_chip_with_targets_cannot_be_deleted(cast, registry, client_for):
    chip = registry["own_chip"]
    response = client_for(cast.vendor_admin).delete(f"/api/v1/chips/{chip.pk}/")
    assert response.status_code == 409
    assert response.json()["code"] == "conflict"
    assert Chip.objects.filter(pk=chip.pk).exists()


def test_a_user_outside_every_organization_sees_nothing(db, client_for):
    from tests.factories import UserFactory

    client = client_for(None)
    client.force_login(UserFactory(username="loner"))
    for endpoint in ("chips", "targets", "models", "runners", "organizations/me", "tokens"):
        response = client.get(f"/api/v1/{endpoint}/")
        assert response.status_code == 403, endpoint
        assert response.json()["code"] == "permission_denied"


# organizations/me and tokens: every member sees their own, nobody else's.


@pytest.mark.parametrize("role", ROLES)
def test_organizations_me_describes_the_callers_own_organization(cast, client_for, role):
    user = user_of(cast, role)
    response = client_for(user).get("/api/v1/organizations/me/")
    if user is None:
        assert response.status_code == 401
        return
    assert response.status_code == 200
    body = response.json()
    membership = user.membership
    assert body["organization"]["slug"] == membership.organization.slug
    assert body["role"] == membership.role
    assert body["username"] == user.username
    members = {item["username"] for item in body["members"]}
    assert user.username in members
    assert members == set(membership.organization.memberships.values_list("user__username", flat=True))


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_organizations_me_is_read_only(cast, client_for, method):
    response = getattr(client_for(cast.vendor_admin), method)("/api/v1/organizations/me/", {}, format="json")
    assert response.status_code == 405
    assert response.json()["status"] == 405


@pytest.mark.parametrize("role", ROLES)
def test_tokens_lists_only_the_callers_own_tokens(cast, client_for, role):
    from apps.accounts.models import ApiToken

    user = user_of(cast, role)
    client = client_for(user)
    client_for(cast.colleague)  # somebody else's token exists too
    response = client.get("/api/v1/tokens/")
    if user is None:
        assert response.status_code == 401
        assert client.post("/api/v1/tokens/", {}).status_code == 401
        return
    assert response.status_code == 200
    listed = {item["key_prefix"] for item in response.json()["results"]}
    assert listed == set(ApiToken.objects.filter(user=user).values_list("token_key", flat=True))
    assert client.post("/api/v1/tokens/", {"name": "more"}).status_code == 201

"""factory_boy factories for accounts and the registry, with real safetensors files and Ed25519 keys."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from types import SimpleNamespace

import factory
import torch
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from safetensors.torch import save_file

from apps.accounts.models import Membership, Organization, OrganizationKind, Role
from apps.registry.models import Architecture, Chip, HardwareTarget, ModelArtifact, ModelTask, Runner


def safetensors_bytes(seed: int = 0, *, rows: int = 4, cols: int = 8) -> bytes:
    """A small real safetensors file (two tensors) written by `save_file`, different for every seed."""
    generator = torch.Generator().manual_seed(seed)
    tensors = {
        "embed.weight": torch.randn(rows, cols, generator=generator),
        "head.bias": torch.zeros(cols, dtype=torch.float16),
    }
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "weights.safetensors"
        save_file(tensors, str(path))
        return path.read_bytes()


# The smallest bert-encoder the runners accept: 21 tensors, a weights file of a few kilobytes.
TINY_BERT_CONFIG = {
    "vocab_size": 16,
    "hidden_size": 4,
    "num_hidden_layers": 1,
    "num_attention_heads": 1,
    "intermediate_size": 8,
    "max_position_embeddings": 16,
    "type_vocab_size": 1,
}
TINY_BERT_TENSORS = 21


def model_weights_bytes(
    seed: int = 0, config: dict | None = None, architecture: str = "bert-encoder"
) -> bytes:
    """Real weights for ``architecture`` with ``config`` (TINY_BERT_CONFIG by default): seeded, valid at upload."""
    from runners.models.seeded import seeded_weights_bytes

    return seeded_weights_bytes(architecture, config or TINY_BERT_CONFIG, seed=seed)


def ed25519_public_pem(private_key: Ed25519PrivateKey | None = None) -> str:
    key = private_key or Ed25519PrivateKey.generate()
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def ed25519_key_id(pem: str) -> str:
    key = serialization.load_pem_public_key(pem.encode())
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


class OrganizationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organization
        django_get_or_create = ["slug"]

    name = factory.Sequence(lambda n: f"Vendor {n}")
    slug = factory.Sequence(lambda n: f"vendor-{n}")
    kind = OrganizationKind.VENDOR
    country = "US"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ["username"]
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.org")


class MembershipFactory(factory.django.DjangoModelFactory):
    """A user in an organization with a role; without an organization, one of the fitting kind."""

    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    role = Role.VENDOR_ENGINEER
    organization = factory.LazyAttribute(
        lambda membership: OrganizationFactory(
            kind={
                Role.VENDOR_ENGINEER: OrganizationKind.VENDOR,
                Role.VENDOR_ADMIN: OrganizationKind.VENDOR,
                Role.REVIEWER: OrganizationKind.AUTHORITY,
                Role.PLATFORM_ADMIN: OrganizationKind.AUTHORITY,
                Role.BUYER: OrganizationKind.BUYER,
            }[membership.role]
        )
    )


def member(organization: Organization, role: str, **user_fields) -> get_user_model():
    """A user who belongs to `organization` with `role`; platform admins are Django superusers too."""
    if role == Role.PLATFORM_ADMIN:
        user_fields.setdefault("is_staff", True)
        user_fields.setdefault("is_superuser", True)
    return MembershipFactory(organization=organization, role=role, user=UserFactory(**user_fields)).user


# The cast of tests/conftest.py's `cast` fixture: organizations (attribute: name, slug, kind) and
# members (attribute, organization, role, username).
CAST_ORGANIZATIONS = {
    "vendor": ("Acme Silicon", "acme", OrganizationKind.VENDOR),
    "foreign_vendor": ("Borealis Compute", "borealis", OrganizationKind.VENDOR),
    "authority": ("Authority", "authority", OrganizationKind.AUTHORITY),
    "buyer_org": ("Procurement", "procurement", OrganizationKind.BUYER),
}
CAST_MEMBERS = (
    ("owner", "vendor", Role.VENDOR_ENGINEER, "owner"),
    ("colleague", "vendor", Role.VENDOR_ENGINEER, "colleague"),
    ("vendor_admin", "vendor", Role.VENDOR_ADMIN, "vendor-admin"),
    ("foreign", "foreign_vendor", Role.VENDOR_ENGINEER, "foreign"),
    ("foreign_admin", "foreign_vendor", Role.VENDOR_ADMIN, "foreign-admin"),
    ("reviewer", "authority", Role.REVIEWER, "reviewer"),
    ("platform_admin", "authority", Role.PLATFORM_ADMIN, "platform-admin"),
    ("buyer", "buyer_org", Role.BUYER, "buyer"),
)


def make_cast() -> SimpleNamespace:
    """The cast in three INSERTs (organizations, users, memberships): the rows and field values that
    cast_through_the_factories() makes with a get_or_create per row (about 50 statements), for the
    thousand tests of the fast selection that set it up. Where a test made one of these organizations
    or users before, the factories' path runs instead and reuses them, as it always did."""
    user_model = get_user_model()
    organizations = {
        attribute: Organization(
            name=name, slug=slug, kind=kind, country=OrganizationFactory._meta.declarations["country"]
        )
        for attribute, (name, slug, kind) in CAST_ORGANIZATIONS.items()
    }
    users = {}
    for attribute, _organization, role, username in CAST_MEMBERS:
        admin = role == Role.PLATFORM_ADMIN  # superusers too, as member() makes them
        users[attribute] = user_model(
            username=username, email=f"{username}@example.org", is_staff=admin, is_superuser=admin
        )
    try:
        with transaction.atomic():
            Organization.objects.bulk_create(organizations.values())
            user_model.objects.bulk_create(users.values())
            Membership.objects.bulk_create(
                Membership(user=users[attribute], organization=organizations[organization], role=role)
                for attribute, organization, role, _username in CAST_MEMBERS
            )
    except IntegrityError:
        return cast_through_the_factories()
    return SimpleNamespace(**organizations, **users)


def cast_through_the_factories() -> SimpleNamespace:
    """The cast made by OrganizationFactory and member(), reusing any of its rows that exist."""
    organizations = {
        attribute: OrganizationFactory(name=name, slug=slug, kind=kind)
        for attribute, (name, slug, kind) in CAST_ORGANIZATIONS.items()
    }
    users = {
        attribute: member(organizations[organization], role, username=username)
        for attribute, organization, role, username in CAST_MEMBERS
    }
    return SimpleNamespace(**organizations, **users)


class ChipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Chip

    vendor = factory.SubFactory(OrganizationFactory)
    sku = factory.Sequence(lambda n: f"ACC-{n:05d}")
    name = factory.Sequence(lambda n: f"Accelerator {n}")
    architecture = "Tensor-7"
    process_node_nm = 5
    die_area_mm2 = 814
    memory_gib = 80
    memory_bandwidth_gbs = 3350
    tdp_w = 700
    interconnect_bandwidth_gbs = 900
    peak_fp32_tflops = 67
    peak_bf16_tflops = 989.4
    data_center = True
    fab_country = "TW"
    assembly_country = "TW"
    domestic_content_pct = 10
    spec_source = "Vendor datasheet"


class HardwareTargetFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = HardwareTarget

    chip = factory.SubFactory(ChipFactory)
    vendor = factory.SelfAttribute("chip.vendor")
    slug = factory.Sequence(lambda n: f"target-{n}")
    backend = "cuda"
    driver_version = "550.54"
    runtime_version = "12.4"
    torch_version = "2.4.0"
    plugin_versions = factory.LazyFunction(dict)
    host_cpu = "Xeon 8480"
    host_memory_gib = 512


class ModelArtifactFactory(factory.django.DjangoModelFactory):
    """A model artifact whose weights are a real safetensors file, stored content-addressed."""

    class Meta:
        model = ModelArtifact
        exclude = ["content"]

    owner = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"model-{n}")
    version = "1.0"
    task = ModelTask.TEXT_EMBEDDING
    architecture = Architecture.BERT_ENCODER
    config = factory.LazyFunction(lambda: dict(TINY_BERT_CONFIG))
    license = "Apache-2.0"
    content = factory.Sequence(model_weights_bytes)
    weights_sha256 = factory.LazyAttribute(lambda a: hashlib.sha256(a.content).hexdigest())
    weights_size = factory.LazyAttribute(lambda a: len(a.content))
    tensor_count = TINY_BERT_TENSORS
    weights = factory.LazyAttribute(lambda a: ContentFile(a.content, name="weights.safetensors"))


class RunnerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Runner
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"runner-{n}")
    public_key = factory.LazyFunction(ed25519_public_pem)
    key_id = factory.LazyAttribute(lambda runner: ed25519_key_id(runner.public_key))

    @factory.post_generation
    def targets(self, create, extracted, **kwargs):
        if create and extracted:
            self.targets.set(extracted)

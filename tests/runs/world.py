"""A small certification world for the runs tests: a CPU target, its runner key, a test program."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from apps.accounts.models import OrganizationKind, Role
from apps.registry.models import HardwareTarget, Runner
from apps.registry.services import runner_register
from apps.runs.models import Program
from apps.runs.services.programs import program_load
from runners.signing import RunnerIdentity
from tests.factories import ChipFactory, HardwareTargetFactory, OrganizationFactory, member

# A program small enough for unit tests: two cheap kernels in float32.
TEST_PROGRAM = {
    "code": "TST",
    "version": "1.0",
    "title": "Test program",
    "validity_days": 30,
    "surveillance_days": 7,
    "levels": [
        {
            "code": "basic",
            "rank": 1,
            "title": "Basic",
            "suites": {"conformance": {"dtypes": ["float32"], "kernels": ["cumsum", "argmax"]}},
            "criteria": [
                {
                    "id": "T1",
                    "title": "Conformance",
                    "kind": "conformance_pass_rate",
                    "blocker": True,
                    "params": {"dtypes": ["float32"], "kernels": None, "min_pass_rate": 1.0},
                },
            ],
        }
    ],
}

EVALUATED: list[int] = []


def record_evaluation(*, campaign_id: int) -> None:
    """Stands in for the certificates app's evaluation in the runs tests (settings.CAMPAIGN_EVALUATOR)."""
    EVALUATED.append(campaign_id)


@dataclass
class World:
    vendor: object
    engineer: object
    foreign_engineer: object
    reviewer: object
    target: HardwareTarget
    program: Program
    identity: RunnerIdentity
    runner: Runner


def identity_for(name: str) -> tuple[RunnerIdentity, str]:
    key = Ed25519PrivateKey.generate()
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return RunnerIdentity(name=name, private_key=key), pem.decode()


def make_world(*, slug: str = "cpu-test") -> World:
    vendor = OrganizationFactory(name="Acme Silicon", slug="acme")
    foreign = OrganizationFactory(name="Borealis Compute", slug="borealis")
    authority = OrganizationFactory(name="Authority", slug="authority", kind=OrganizationKind.AUTHORITY)
    chip = ChipFactory(vendor=vendor, peak_fp32_tflops=0.1)
    target = HardwareTargetFactory(
        chip=chip,
        slug=slug,
        backend="cpu",
        torch_version=torch.__version__,
        driver_version="",
        runtime_version="",
    )
    identity, pem = identity_for("runner-a")
    runner = runner_register(name="runner-a", public_key=pem, targets=[target])
    program, _ = program_load(definition=TEST_PROGRAM)
    return World(
        vendor=vendor,
        engineer=member(vendor, Role.VENDOR_ENGINEER, username="engineer"),
        foreign_engineer=member(foreign, Role.VENDOR_ENGINEER, username="foreign"),
        reviewer=member(authority, Role.REVIEWER, username="reviewer"),
        target=target,
        program=program,
        identity=identity,
        runner=runner,
    )

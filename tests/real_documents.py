"""Evidence the real runner produced: the certificate, portal and procurement tests are fed by it.

Once per test session the runner's own suites run on this CPU for a tiny plan (three kernels, two
GEMM sizes, one small BERT encoder): `runner_documents()`. Each test then submits a real campaign,
gives its jobs the session's challenge, and sends every document through the platform's real
ingestion, re-signed for the job it now names (`campaign_from_runner`). A change in the shape of
what the runners write therefore reaches these tests as it would reach production.
"""

from __future__ import annotations

import copy
import fcntl
import functools
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from apps.registry.models import Architecture, ModelArtifact, ModelTask, Runner
from apps.registry.services import parse_ed25519_public_key, runner_register
from apps.runs.models import Campaign, Program
from apps.runs.services.campaigns import campaign_submit
from apps.runs.services.ingestion import result_ingest
from runners.backends import get_backend
from runners.catalog import get_kernel
from runners.commitment import OutputCommitment, OutputStore
from runners.document import canonical_json
from runners.models import ModelSpec
from runners.models.bert import BertConfig
from runners.models.seeded import seeded_weights_bytes
from runners.signing import RunnerIdentity
from runners.spec import attempt_tag
from runners.suites import run_suite
from tests import cpu_findings
from tests.factories import ChipFactory, HardwareTargetFactory, ModelArtifactFactory
from tests.runs.world import identity_for

PLAN_KEYS = ("suite", "device", "kernels", "dtypes", "cases", "options", "models")
CHALLENGE = hashlib.sha256(b"real runner documents").hexdigest()
# The peak the runner's own spec declares (TFLOP/s, float32 only: the plan times float32 GEMMs). The
# test chip's declared peak is `peak_fp32()`, set from what this host measured.
RUNNER_SPEC_PEAK_FP32 = 1.0
# Short timing, still the certification policy (not quick): min/max time per measurement cut down.
TIMING = {"min_time_s": 0.01, "max_time_s": 0.05, "min_samples": 5}
# The serving suite's LoadGen settings for the tiny plan: program-shaped, far shorter than any level's
# (so a level's serving criterion judges them short unless a test's program states these).
SERVING_SETTINGS = {
    "source": "tests/real_documents.py tiny plan",
    "max_batch": 4,
    "scenarios": {
        "SingleStream": {"min_duration_ms": 100, "min_query_count": 64, "percentile": 0.9},
        "Server": {"min_duration_ms": 200, "min_query_count": 64, "percentile": 0.9, "latency_bound_ms": 500},
        "Offline": {"min_duration_ms": 100, "min_query_count": 1},
    },
    "server_search": {"max_steps": 2, "start_fraction": 0.2, "precision": 0.1, "max_step_s": 5},
    "llm": {"output_tokens": 4, "ttft_ms": 2000, "tpot_ms": 1000},
}
BERT_CONFIG = {
    **asdict(BertConfig.small()),
    "vocab_size": 64,
    "hidden_size": 32,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "max_position_embeddings": 32,
}


@dataclass(frozen=True)
class RunnerDocuments:
    documents: dict[str, dict]  # suite -> the document the runner wrote
    identity: RunnerIdentity
    public_pem: str
    weights: bytes
    model_name: str
    output_root: Path  # the runner host's store of raw outputs, for the platform's reveal


CONFORMANCE_KERNELS = ["cumsum", "argmax", "matmul"]
CONFORMANCE_DTYPES = ["float32", "bfloat16"]


def conformance_cases() -> list[str] | None:
    """The cases of the honest conformance document: all of them (None), unless this host's probed
    findings (tests/cpu_findings.py) touch the planned kernels and dtypes; those findings' cases are then
    left out of the plan. Whether a draw hits such a fault depends on its shapes and on torch's thread
    count (on an AMX host matmul/bfloat16/nan_inf failed with one thread and passed with two), and these
    documents must be an honest pass wherever the platform's tests run. The findings themselves are tested
    where they belong: tests/runners/test_cpu_findings.py, and B11 in tests/certificates/test_no_loopholes.py."""
    excluded = {
        case
        for finding in cpu_findings.present()
        if set(finding.kernels) & set(CONFORMANCE_KERNELS) and set(finding.dtypes) & set(CONFORMANCE_DTYPES)
        for case in finding.cases
    }
    if not excluded:
        return None
    names = (
        case.name
        for kernel in CONFORMANCE_KERNELS
        for dtype in CONFORMANCE_DTYPES
        for case in get_kernel(kernel).cases_for(dtype)
    )
    return [name for name in dict.fromkeys(names) if name not in excluded]


# Under pytest-xdist each worker process would run the tiny plan itself (the slowest step of `make
# test-fast`: 250-270 s in each of two workers at load 11-13, session 24). The controlling process names
# one directory for the session (tests/conftest.py sets this variable before it starts the workers); the
# first process to take a product's lock produces it there, the others wait on the lock and read the
# same files. Every process, the producer included, then uses the documents as read back from that
# file, so all workers judge the same evidence, read-only.
#
# The producer is normally a background process (tests/produce_real_documents.py) that the first test
# process starts right after collection when the session has tests that use these documents
# (`start_background_producer`, from tests/conftest.py): it takes the locks first and runs the plans
# while the test processes run the tests that need no documents, which tests/conftest.py orders first.
# Without it (a process asking before the producer took the lock, or a producer that failed and let the
# lock go) the asking process produces the documents itself, as before.
SHARED_DIR_ENV = "REAL_DOCUMENTS_DIR"
MODEL_NAME = "tiny-bert"
PRODUCER_STARTED = "producer.started"  # created (exclusively) by the process that starts the producer
PRODUCER_LOG = "producer.log"
PRODUCER_PID = "producer.pid"  # read by tests/conftest.py, which ends the producer with the session


@functools.lru_cache(maxsize=1)
def runner_documents() -> RunnerDocuments:
    """The documents of one tiny run of each suite on this CPU (produced once per test session, shared
    by the xdist workers through the directory named by REAL_DOCUMENTS_DIR)."""
    shared = os.environ.get(SHARED_DIR_ENV)
    if not shared:
        documents, weights, output_root = _run_tiny_plan(Path(tempfile.mkdtemp(prefix="runner-outputs-")))
        documents = json.loads(json.dumps(documents))  # as the workers read them from the shared file
    else:
        root = Path(shared)
        produce_documents(root)
        documents = json.loads((root / "documents.json").read_text())
        weights = (root / "weights.safetensors").read_bytes()
        output_root = root / "outputs"
    identity, pem = identity_for("real-runner")
    return RunnerDocuments(documents, identity, pem, weights, MODEL_NAME, output_root)


def _produce_once(root: Path, name: str, produce: Callable[[], None]) -> None:
    """Runs ``produce()`` under ``root``'s lock ``name`` unless ``root / name`` (its last write) exists;
    a process that finds the lock taken waits for it. The lock is released when its file closes, also
    when ``produce`` fails (the next process to ask then tries again, and fails in its own test)."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (root / name).is_file():
            produce()


def _write_atomically(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".part")
    partial.write_text(text)
    os.replace(partial, path)


def produce_documents(root: Path) -> None:
    """The tiny plan's documents, weights and raw outputs under ``root`` (once per session)."""

    def produce() -> None:
        documents, weights, _ = _run_tiny_plan(root / "outputs")
        (root / "weights.safetensors").write_bytes(weights)
        _write_atomically(root / "documents.json", json.dumps(documents))

    _produce_once(root, "documents.json", produce)


def produce_collectives(root: Path) -> None:
    """The collectives suite's document of its tiny plan under ``root`` (once per session)."""
    _produce_once(
        root,
        "collectives.json",
        lambda: _write_atomically(root / "collectives.json", json.dumps(_run_collectives_plan())),
    )


def start_background_producer(*, collectives: bool) -> subprocess.Popen | None:
    """Starts tests/produce_real_documents.py on the session's directory, unless another process of the
    session already did (or there is no session directory). The session's controlling process ends it
    if it still runs when the session ends (tests/conftest.py)."""
    shared = os.environ.get(SHARED_DIR_ENV)
    if not shared:
        return None
    root = Path(shared)
    root.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(root / PRODUCER_STARTED, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return None
    with open(root / PRODUCER_LOG, "w") as log:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and module, fixed arguments
            [sys.executable, "-m", "tests.produce_real_documents", str(root)]
            + (["--collectives"] if collectives else []),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, ended as one (tests/conftest.py)
        )
    (root / PRODUCER_PID).write_text(str(process.pid))
    return process


def _run_tiny_plan(output_root: Path) -> tuple[dict[str, dict], bytes, Path]:
    """Runs each suite of the tiny plan on this CPU; the raw outputs stay under ``output_root`` (as on
    a runner host until the reveal). Returns the documents, the model's weights and ``output_root``."""
    backend = get_backend("cpu")
    spec = ModelSpec(name=MODEL_NAME, architecture="bert-encoder", config=BERT_CONFIG)
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "weights.safetensors"
        path.write_bytes(seeded_weights_bytes(spec.architecture, BERT_CONFIG, seed=0))
        weights = path.read_bytes()
        declared = {"peak_tflops": {"fp32": RUNNER_SPEC_PEAK_FP32}}
        base = {
            "schema_version": "1.0",
            "job_id": "0",
            "device": "cpu",
            "challenge": CHALLENGE,
            "declared": declared,
            "limits": {"time_s": 600},
        }
        specs = {
            "conformance": {
                **base,
                "suite": "conformance",
                "dtypes": CONFORMANCE_DTYPES,
                "kernels": CONFORMANCE_KERNELS,
                **({"cases": cases} if (cases := conformance_cases()) else {}),
            },
            "performance": {
                **base,
                "suite": "performance",
                "options": {
                    "quick": False,
                    "timing": TIMING,
                    "performance": {
                        "dtypes": ["float32"],
                        "gemm_sizes": [256, 512],
                        "bandwidth_bytes": 1 << 20,
                        # GEMM and bandwidth only: tiny GEMMs set the test chip's peak (peak_fp32), which
                        # a CPU's attention or convolution could otherwise outrun.
                        "kinds": ["gemm", "bandwidth"],
                    },
                },
            },
            "model": {
                **base,
                "suite": "model",
                "models": [
                    {
                        "name": spec.name,
                        "version": "1.0",
                        "task": ModelTask.TEXT_EMBEDDING,
                        "architecture": Architecture.BERT_ENCODER,
                        "config": BERT_CONFIG,
                        "weights_path": str(path),
                        "sha256": hashlib.sha256(weights).hexdigest(),
                    }
                ],
                # bfloat16 too: AIA 1.2 judges every model dtype of a level with its own bar (issue 13).
                "options": {"quick": False, "timing": TIMING, "model_dtypes": ["float32", "bfloat16"]},
            },
        }
        specs["serving"] = {
            **base,
            "suite": "serving",
            "models": specs["model"]["models"],
            "options": {"quick": False, "serving": SERVING_SETTINGS},
        }
        # The raw outputs stay in a store for the session, as on a runner host until the reveal.
        output_root.mkdir(parents=True, exist_ok=True)
        documents = {
            suite: run_suite(
                s,
                backend=backend,
                progress=lambda fraction, label: None,
                commitment=OutputCommitment(OutputStore(output_root, attempt_tag(CHALLENGE))),
            )
            for suite, s in specs.items()
        }
    return documents, weights, output_root


# The collectives suite's tiny plan: two gloo ranks on this CPU, two message sizes.
COLLECTIVES_OPTIONS = {
    "dtypes": ["float32"],
    "sizes_bytes": [4096, 65536],
    "warmup": 1,
    "iterations": 3,
    "world_size": 2,
    "hidden": 512,  # all_to_all rows of 512 values: the two sizes stay two sizes
}


@functools.lru_cache(maxsize=1)
def runner_collectives_document() -> dict:
    """The collectives suite's document of the tiny plan (two processes, run once per session, shared
    like runner_documents(), and only for the tests of campaigns whose level plans the suite)."""
    shared = os.environ.get(SHARED_DIR_ENV)
    if not shared:
        return json.loads(json.dumps(_run_collectives_plan()))
    root = Path(shared)
    produce_collectives(root)
    return json.loads((root / "collectives.json").read_text())


def _run_collectives_plan() -> dict:
    spec = {
        "schema_version": "1.0",
        "job_id": "0",
        "device": "cpu",
        "challenge": CHALLENGE,
        "declared": {"peak_tflops": {"fp32": RUNNER_SPEC_PEAK_FP32}},
        "limits": {"time_s": 600},
        "suite": "collectives",
        "options": {"collectives": COLLECTIVES_OPTIONS},
    }
    return run_suite(spec, backend=get_backend("cpu"), progress=lambda fraction, label: None)


def answer_reveal(
    job,
    *,
    real: RunnerDocuments | None = None,
    root: Path | None = None,
    tamper: Callable[[dict], dict] | None = None,
):
    """The runner host's side of the job's pending reveal, in process: the signed answer from the
    session's output store (``tamper(message)`` may change it first), received by the platform.
    Returns the reveal's outcome, or None when the job has no pending reveal."""
    from apps.runs.models import OutputReveal, RevealState
    from apps.runs.services.reveal import reveal_receive, reveal_request_build
    from runners.worker import reveal_answer

    real = real or runner_documents()
    reveal = OutputReveal.objects.filter(job=job, state=RevealState.PENDING).first()
    if reveal is None:
        return None
    message = reveal_answer(
        reveal_request_build(reveal), identity=real.identity, root=root or real.output_root
    )
    return reveal_receive(message=tamper(message) if tamper else message)


def answer_published_reveals(campaign, *, real: RunnerDocuments | None = None, root: Path | None = None):
    """What the platform publishes once an ingestion commits (the campaign's reveals, once none of its
    jobs is still to send its evidence: reveal_requests_claim, which the tests' transactions never
    commit to trigger) and the runner host's side, in process: each grouped request answered in one
    signed message from the session's output store, received by the platform. Returns the outcomes."""
    from apps.runs.services.reveal import reveal_receive_many, reveal_requests_claim
    from runners.worker import reveal_answers

    real = real or runner_documents()
    outcomes = []
    for request in reveal_requests_claim(campaign_id=campaign.pk):
        message = reveal_answers(request, identity=real.identity, root=root or real.output_root)
        outcomes += reveal_receive_many(message=message)
    return outcomes


def peak_fp32() -> float:
    """The test chip's declared float32 peak: 1.25x the best GEMM the session's run measured on this host,
    so every honest GEMM is at most 80% of it (the claims criterion, a blocker at every level from AIA
    1.2, passes at Standard's 80%) and only an edited document goes above it."""
    best = max(
        item["value"] for item in gemm_items(runner_documents().documents["performance"]) if item["value"]
    )
    return float(f"{best * 1.25:.6g}")


def cpu_target(*, vendor, **changes):
    """A target registered for this host's CPU stack (what the runner's fingerprint will show)."""
    chip = ChipFactory(
        vendor=vendor,
        peak_fp32_tflops=peak_fp32(),
        peak_bf16_tflops=None,
        peak_fp16_tflops=None,
        peak_int8_tops=None,
    )
    fields = {
        "backend": "cpu",
        "torch_version": torch.__version__,
        "driver_version": "",
        "runtime_version": "",
        "device_count": 1,
        **changes,
    }
    return HardwareTargetFactory(chip=chip, **fields)


def campaign_from_runner(
    *,
    vendor,
    program: Program,
    level: str = "baseline",
    submitted_by=None,
    target=None,
    edit: Callable[[str, dict], None] | None = None,
    plan: Callable[[str, dict], None] | None = None,
    outcomes: dict | None = None,
    evaluate: bool = True,
    reveal: bool = True,
    reveal_root: Path | None = None,
    precompute: bool = True,
) -> Campaign:
    """A campaign submitted for real whose jobs' evidence is the runner's documents, ingested.

    `edit(suite, document)` may change a document before it is re-signed (a runner that lies or a
    device that fails); `plan(suite, spec)` may change a job's plan after it is set to what the runner
    ran. Every document must pass the platform's ingestion checks, unless `outcomes` is given: then
    each suite's IngestOutcome is put there instead. The runner answers each reveal the platform draws
    from its output store (`reveal_root` instead of the session's), unless `reveal` is False.

    Each job is dispatched here under the session's challenge as the platform dispatches it: its reveal
    plan is drawn, and its references computed before the document arrives unless `precompute` is
    False (the document then arrives first: the race, judged inline)."""
    from apps.certificates.services import campaign_evaluate
    from apps.runs.services import reveal as reveal_service

    real = runner_documents()
    target = target or cpu_target(vendor=vendor)
    runner = Runner.objects.filter(key_id=parse_ed25519_public_key(real.public_pem)[1]).first()
    if runner is None:
        runner_register(name="real-runner", public_key=real.public_pem, targets=[target])
    else:
        runner.targets.add(target)
    artifact = ModelArtifact.objects.filter(
        owner=vendor, name=real.model_name
    ).first() or ModelArtifactFactory(
        owner=vendor,
        name=real.model_name,
        architecture=Architecture.BERT_ENCODER,
        task=ModelTask.TEXT_EMBEDDING,
        config=BERT_CONFIG,
        content=real.weights,
        tensor_count=0,
    )
    campaign = campaign_submit(
        vendor=vendor,
        target=target,
        program=program,
        level=level,
        model_artifacts=[artifact],
        submitted_by=submitted_by,
    )
    jobs = list(campaign.jobs.select_related("campaign__program", "reveal_plan").order_by("id"))
    documents = {}
    for job in jobs:
        document = documents[job.pk] = copy.deepcopy(
            real.documents[job.suite] if job.suite in real.documents else runner_collectives_document()
        )
        # The job's plan becomes the tiny plan the runner ran (ingestion refuses evidence that does
        # not cover its job's plan exactly); the rest of the job's spec stays as submitted.
        ran = {key: document["spec"][key] for key in PLAN_KEYS if key in document["spec"]}
        job.challenge = CHALLENGE
        kept = {key: value for key, value in job.spec.items() if key not in PLAN_KEYS}
        job.spec = {**kept, **ran, "challenge": CHALLENGE}
        if plan:
            plan(job.suite, job.spec)
            job.challenge = job.spec["challenge"]
        job.save(update_fields=["challenge", "spec"])
    # Dispatch draws the jobs' plans together (apps/runs/dispatch.py), each for the spec it runs.
    drawn = reveal_service.reveal_plans_draw(jobs=jobs)
    if precompute:  # the platform task, while the runner runs
        reveal_service.reveal_prepare_many(
            plans=[(job.pk, plan.challenge) for job in jobs if (plan := drawn[job.pk]) is not None]
        )
    for job in jobs:
        document = documents[job.pk]
        document["spec"] = {**document["spec"], "job_id": str(job.pk)}
        if edit:
            edit(job.suite, document)
        outcome = result_ingest(envelope=real.identity.envelope(canonical_json(document)))
        if reveal:  # what the platform has published by now (the campaign's reveals, after its last job)
            answer_published_reveals(campaign, real=real, root=reveal_root)
        if outcomes is not None:
            outcomes[job.suite] = outcome
            continue
        assert outcome.accepted, f"{job.suite}: {outcome.reason}"
    campaign.refresh_from_db()
    if evaluate:
        campaign_evaluate(campaign_id=campaign.pk)
        campaign.refresh_from_db()
    return campaign


def gemm_items(document: dict) -> list[dict]:
    """The GEMM measurements of a performance document (how many depends on the host's speed)."""
    return [item for item in document.get("measurements", []) if item.get("kind") == "gemm"]


def fail_test01(suite: str, document: dict) -> None:
    """The device returned a stale output while it was timed: one sampled output differs."""
    if suite != "performance":
        return
    section = document["integrity"]["output_consistency"]
    for item in [section, *section.get("items", [])]:
        item["mismatches"], item["verdict"] = 1, "fail"
        item.setdefault("details", []).append({"sample": "0", "reason": "values differ"})


def stable_gemms(suite, document):
    """An `edit` of `campaign_from_runner`: on a busy test machine a tiny GEMM may time as unstable,
    and these tests need stable ones; the runner's claim is then the best of them, as a runner makes it."""
    if suite == "performance":
        for item in gemm_items(document):
            item["unstable"] = False
        best = max(gemm_items(document), key=lambda m: m["value"])
        claim = document["claims"]["dtypes"]["float32"]
        claim.update(best_gemm=best["name"], best_gemm_tflops=best["value"])
        claim["best_gemm_significant_digits"] = best["significant_digits"]

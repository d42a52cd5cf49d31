"""The runner host's Celery worker. No Django, no database credentials: a spec in, a signed
result envelope out, plus signed progress, failure and heartbeat messages to the platform queue.

Two processes per job (runners/device/__init__.py has the table of what each may load): this one,
the judge, holds the runner key, the spec and challenge, draws inputs, computes the float64
references and the conformance verdicts and signs; the device process it starts for the job loads
the vendor's backend plugin and runs the device calls, with no key, no broker URL and no verdict
code of consequence. The worker never imports a backend entry point or PrivateUse1 plugin itself,
not even for heartbeats (their fingerprints come from a short-lived device process).

    RUNNER_NAME=gpu-host-1 RUNNER_KEY_FILE=/etc/runner/key.pem CELERY_BROKER_URL=redis://... \\
    PLATFORM_URL=https://certification.example \\
        celery -A runners.worker worker -Q target.<vendor-slug>.<target-slug> --concurrency 1

PLATFORM_URL is needed only where the platform's artifact storage is not mounted: model weights are
then fetched with a signed request into RUNNER_CACHE_DIR (runners/artifacts.py).

Delivery: prefetch 1 and late acknowledgement, so a job is taken by one worker at a time and a
worker killed mid-job (SIGKILL) leaves the message to be delivered again; the platform gives a
retried job a fresh challenge, so the evidence of an interrupted run can never be ingested. A message
past its job's deadline (Celery `expires`) is dropped unexecuted.

Every message to the platform is signed by the runner's key: progress and heartbeats name the attempt
they keep alive, and a task that raises or passes its hard time limit reports a signed failure
(`on_failure` runs in the worker's main process for a hard limit). Cancellation arrives as a revoke
with SIGUSR2 to the process running the job, which stops at the next case boundary.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from celery import Celery, Task, signals
from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded
from celery.utils.log import get_task_logger

from runners import metrics
from runners.artifacts import ArtifactUnavailable, localize_models
from runners.canonical import canonical_json
from runners.fingerprint_check import fingerprint_mismatches
from runners.progress import label as progress_label
from runners.signing import RunnerIdentity
from runners.spec import attempt_tag

logger = get_task_logger(__name__)
metrics.configure()  # before anything imports prometheus_client (RUNNER_METRICS_PORT; runners/metrics.py)
PLATFORM_QUEUE = os.environ.get("PLATFORM_QUEUE", "platform")
HEARTBEAT_SECONDS = float(os.environ.get("RUNNER_HEARTBEAT_SECONDS", "30"))
PROGRESS_MIN_INTERVAL_S = 1.0
DEFAULT_CACHE_DIR = Path.home() / ".cache" / "accelerator-certification" / "artifacts"

# Not the process's current app: where the platform runs a job in-process (eager, embedded), importing
# this module must not turn the platform's shared tasks (notifications, ingestion) over to the runner's
# broker and routes, which a shared task would follow at call time.
app = Celery("runners", set_as_current=False)
app.conf.update(
    broker_url=os.environ.get("CELERY_BROKER_URL"),
    result_backend=os.environ.get("CELERY_RESULT_BACKEND") or None,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    worker_concurrency=1,
    # e.g. the embedded broker's folders, or Redis's visibility_timeout: a JSON object.
    broker_transport_options=json.loads(os.environ.get("CELERY_BROKER_TRANSPORT_OPTIONS") or "{}"),
    broker_connection_retry_on_startup=True,
    # A result message can be large (thousands of measurements); keep it out of the result backend.
    task_ignore_result=True,
)

Reporter = Callable[[str, dict[str, Any]], None]
CANCEL_SIGNAL = signal.SIGUSR2  # apps/runs/dispatch.py revokes a cancelled job's task with it
_cancel_requested = threading.Event()


class JobCancelled(Exception):
    """The platform revoked the running job; the suite stops at the next case boundary."""


def signed_message(identity: RunnerIdentity, payload: dict[str, Any]) -> dict[str, Any]:
    """A small runner-to-platform message: the payload's canonical JSON and its signature."""
    body = canonical_json({**payload, "runner": identity.name, "sent_at": datetime.now(UTC).isoformat()})
    return {
        "runner": identity.name,
        "key_id": identity.key_id,
        "payload_json": body.decode(),
        "signature": identity.sign_bytes(body),
    }


def _attempt(spec: dict[str, Any]) -> str | None:
    challenge = spec.get("challenge") if isinstance(spec, dict) else None
    return attempt_tag(challenge) if isinstance(challenge, str) else None


def run_job(
    spec: dict[str, Any],
    *,
    identity: RunnerIdentity,
    report: Reporter,
    cancelled: Callable[[], bool] | None = None,
    protected_paths: list[Path] | None = None,
) -> dict[str, Any] | None:
    """Run one job spec and return its signed envelope, or None after reporting a failure.

    This process is the judge: it holds ``identity`` and never imports the vendor's backend. The
    device stack runs in a device process (runners/device) that cannot read ``protected_paths``
    (default: RUNNER_KEY_FILE) and whose environment names no secret.

    `report(task_name, message)` delivers a signed message to the platform ("runs.job_progress",
    "runs.job_failed"); the Celery task sends it to the platform queue, the tests' in-process
    path calls the platform task directly. `cancelled()` is asked between cases; when it turns
    true the job stops there.
    """
    from runners.device import open_device
    from runners.device.client import DeviceProcessError, UnknownDevice
    from runners.device.sandbox import key_paths_from_env
    from runners.spec import SpecInvalid, validate_spec

    job_id = spec.get("job_id")
    last_sent = 0.0

    def progress(fraction: float, message: str = "", eta_seconds: float | None = None) -> None:
        nonlocal last_sent
        now = time.monotonic()
        if fraction < 1.0 and now - last_sent < PROGRESS_MIN_INTERVAL_S:
            return
        last_sent = now
        report(
            "runs.job_progress",
            signed_message(
                identity,
                {
                    "job_id": job_id,
                    "attempt": _attempt(spec),
                    "fraction": round(float(fraction), 4),
                    "message": message[:200],
                    "eta_seconds": eta_seconds,
                },
            ),
        )

    def case_done(fraction: float, message: str = "", eta_seconds: float | None = None) -> None:
        if cancelled is not None and cancelled():
            raise JobCancelled
        progress(fraction, message, eta_seconds)

    def fail(error_class: str, message: str) -> None:
        report(
            "runs.job_failed",
            signed_message(
                identity,
                {
                    "job_id": job_id,
                    "challenge": spec.get("challenge"),
                    "error_class": error_class,
                    "message": message[:2000],
                },
            ),
        )

    progress(0.0, progress_label("started"))
    try:
        validate_spec(spec)
    except SpecInvalid as exc:
        fail("infrastructure", f"the job spec fails the runner's schema: {exc}")
        return None
    try:
        backend = open_device(
            str(spec.get("device", "")).split(":", 1)[0],
            protected_paths=key_paths_from_env() if protected_paths is None else protected_paths,
        )
    except UnknownDevice as exc:
        fail("infrastructure", f"unknown device backend: {exc}")
        return None
    except DeviceProcessError as exc:
        fail("infrastructure", f"the device process did not start: {exc}")
        return None
    try:
        document = _run_on_device(spec, backend, identity=identity, case_done=case_done, fail=fail)
    finally:
        backend.close()
    if document is None:
        return None
    document.setdefault("runner", {})
    document["runner"] = {"name": identity.name, "key_id": identity.key_id}
    envelope = identity.envelope(canonical_json(document))
    progress(1.0, progress_label("done"))
    return envelope


def _run_on_device(
    spec: dict[str, Any],
    backend: Any,
    *,
    identity: RunnerIdentity,
    case_done: Callable[..., None],
    fail: Callable[[str, str], None],
) -> dict[str, Any] | None:
    from runners.suites import run_suite

    job_id = spec.get("job_id")
    expected = (spec.get("target") or {}).get("expected_fingerprint") or {}
    mismatches = fingerprint_mismatches(backend.fingerprint(), expected)
    if mismatches:
        fail("infrastructure", "fingerprint mismatch: " + "; ".join(mismatches))
        return None
    try:
        suite_spec = localize_models(
            spec,
            identity=identity,
            platform_url=os.environ.get("PLATFORM_URL"),
            cache_dir=Path(os.environ.get("RUNNER_CACHE_DIR", DEFAULT_CACHE_DIR)),
        )
    except ArtifactUnavailable as exc:
        fail("infrastructure", str(exc))
        return None
    try:
        commitment = _commitment_for(spec)
        return run_suite(suite_spec, backend=backend, progress=case_done, commitment=commitment)
    except JobCancelled:
        logger.warning("job %s stopped: the platform cancelled it", job_id)
        fail("infrastructure", "stopped: the platform revoked the job")
        return None
    except SoftTimeLimitExceeded:
        fail("timeout", "the suite passed its soft time limit")
        return None
    except Exception as exc:  # the worker survives whatever the suite raises; the platform records it
        fail("infrastructure", f"{type(exc).__name__}: {exc}")
        return None


def _commitment_for(spec: dict[str, Any]) -> Any:
    """The commitment of this attempt, keeping its raw outputs in the host's store until the reveal."""
    from runners.commitment import OutputCommitment, OutputStore, output_root

    root = output_root()
    OutputStore.prune(root, max_age_s=float(os.environ.get("RUNNER_OUTPUT_TTL_S", "172800")))
    attempt = _attempt(spec)
    return OutputCommitment(OutputStore(root, attempt) if attempt else None)


def reveal_answer(
    request: dict[str, Any], *, identity: RunnerIdentity, root: Path | None = None
) -> dict[str, Any]:
    """The signed answer to the platform's reveal request: the raw outputs it names, from this host's store.

    `request` is {"job_id", "attempt", "reveal_id", "outputs": [ids], "max_bytes"}. The answer is a
    signed message whose payload carries the outputs as one safetensors blob (base64), the ids the
    store lacks, or an `error` when the request cannot be honoured (never an exception: the platform
    must hear back)."""
    return signed_message(identity, _reveal_payload(request, root=root))


# The most reveals one grouped request may name (the platform names at most 16).
REVEALS_PER_REQUEST_MAX = 64


def reveal_answers(
    request: dict[str, Any], *, identity: RunnerIdentity, root: Path | None = None
) -> dict[str, Any]:
    """The signed answer to a request naming several reveals (`runners.reveal_many`): {"reveals": [each
    as reveal_answer reads one], "max_bytes"}. One signed message {"kind": "reveals", "answers": [...]}
    carries each reveal's answer as reveal_answer builds it, in the request's order; their outputs
    together stay within the request's max_bytes (a reveal past what is left is answered with the
    error that says so)."""
    from runners.commitment import REVEAL_MAX_BYTES

    request = request if isinstance(request, dict) else {}
    reveals = request.get("reveals")
    if not isinstance(reveals, list) or not 0 < len(reveals) <= REVEALS_PER_REQUEST_MAX:
        return signed_message(
            identity, {"kind": "reveals", "answers": [], "error": "the request names no reveals"}
        )
    room = request.get("max_bytes")
    room = room if isinstance(room, int) and 0 < room <= REVEAL_MAX_BYTES else REVEAL_MAX_BYTES
    answers = []
    for item in reveals:
        item = item if isinstance(item, dict) else {}
        asked = item.get("max_bytes")
        budget = max(1, min(asked, room) if isinstance(asked, int) else room)  # 1: no outputs fit
        answer = _reveal_payload({**item, "max_bytes": budget}, root=root)
        room -= len(str(answer.get("outputs_b64", ""))) // 4 * 3  # the blob's size, within padding
        answers.append(answer)
    return signed_message(identity, {"kind": "reveals", "answers": answers})


def _reveal_payload(request: dict[str, Any], *, root: Path | None) -> dict[str, Any]:
    """One reveal's answer, unsigned (see reveal_answer)."""
    from runners.commitment import REVEAL_MAX_BYTES, OutputStore, RevealError, output_root, reveal_pack

    request = request if isinstance(request, dict) else {}
    payload: dict[str, Any] = {
        "kind": "reveal",
        "job_id": request.get("job_id"),
        "attempt": request.get("attempt"),
        "reveal_id": request.get("reveal_id"),
    }
    outputs = request.get("outputs")
    max_bytes = request.get("max_bytes")
    max_bytes = (
        max_bytes if isinstance(max_bytes, int) and 0 < max_bytes <= REVEAL_MAX_BYTES else REVEAL_MAX_BYTES
    )
    try:
        if (
            not isinstance(outputs, list)
            or not all(isinstance(o, str) for o in outputs)
            or len(outputs) > 10000
        ):
            raise RevealError("the request names no list of output ids")
        store = OutputStore(root or output_root(), str(request.get("attempt")))
        payload.update(reveal_pack(store, outputs, max_bytes=max_bytes))
    except RevealError as exc:
        payload["error"] = str(exc)[:500]
    except ValueError as exc:  # a malformed attempt tag
        payload["error"] = f"bad request: {exc}"[:500]
    return payload


@app.task(name="runners.reveal", acks_late=True, ignore_result=True, soft_time_limit=120, time_limit=180)
def reveal(request: dict[str, Any]) -> None:
    """Answer a request for one reveal from the platform (same queue as the job: this host holds the
    outputs); the platform sends runners.reveal_many since session 32, this one stays for requests
    still queued."""
    _send("runs.reveal_answer", reveal_answer(request, identity=RunnerIdentity.from_env()))


@app.task(name="runners.reveal_many", acks_late=True, ignore_result=True, soft_time_limit=240, time_limit=300)
def reveal_many(request: dict[str, Any]) -> None:
    """Answer a request naming several reveals (a campaign's, sent once its last job's evidence is in),
    in one signed message."""
    _send("runs.reveal_answers", reveal_answers(request, identity=RunnerIdentity.from_env()))


def _send(task_name: str, message: dict[str, Any]) -> None:
    app.send_task(task_name, args=[message], queue=PLATFORM_QUEUE)


class ExecuteTask(Task):
    def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        """The task raised, or passed its hard time limit (then this runs in the worker's main process,
        the job's process being gone): report it signed, naming the attempt's challenge."""
        spec = args[0] if args and isinstance(args[0], dict) else {}
        timed_out = isinstance(exc, TimeLimitExceeded)
        metrics.job_finished("error", None)
        try:
            _send(
                "runs.job_failed",
                signed_message(
                    RunnerIdentity.from_env(),
                    {
                        "job_id": spec.get("job_id"),
                        "challenge": spec.get("challenge"),
                        "error_class": "timeout" if timed_out else "infrastructure",
                        "message": (
                            f"the suite passed its hard time limit ({exc})"
                            if timed_out
                            else f"runner task {task_id} failed: {type(exc).__name__}: {exc}"
                        )[:2000],
                    },
                ),
            )
        except Exception:  # the stuck-job sweep requeues a job whose failure could not be reported
            logger.warning("could not report the failure of task %s", task_id, exc_info=True)


@app.task(name="runners.execute", bind=True, base=ExecuteTask, acks_late=True, reject_on_worker_lost=True)
def execute(self: Task, spec: dict[str, Any]) -> dict[str, Any] | None:
    identity = RunnerIdentity.from_env()
    install_cancel_handler()
    started = time.monotonic()
    try:
        envelope = run_job(spec, identity=identity, report=_send, cancelled=_cancel_requested.is_set)
    finally:
        _cancel_requested.clear()
    # A raised job is counted by on_failure ("error"); None means a signed failure was reported.
    metrics.job_finished("signed" if envelope is not None else "failed", time.monotonic() - started)
    return envelope


def _request_cancel(_signum: int, _frame: object) -> None:
    _cancel_requested.set()


def install_cancel_handler() -> None:
    """In the pool process running the job (its main thread), where a revoke with terminate=True and
    SIGUSR2 lands. Installed per task: billiard resets the signals after `worker_process_init`."""
    signal.signal(CANCEL_SIGNAL, _request_cancel)


def _running_jobs() -> list[dict[str, Any]]:
    """The jobs this worker executes now (main process), named by attempt for the platform's liveness."""
    from celery.worker.state import active_requests

    jobs: list[dict[str, Any]] = []
    for request in list(active_requests):
        if request.name != "runners.execute":
            continue
        spec = (request.args or [None])[0]
        if isinstance(spec, dict):
            jobs.append({"job_id": spec.get("job_id"), "attempt": _attempt(spec)})
    return jobs


FINGERPRINTS_TTL_S = 600.0
_fingerprints_cache: tuple[float, list[dict[str, Any]]] | None = None


def _device_fingerprints() -> list[dict[str, Any]]:
    """The available backends' fingerprints, asked of a device process (the judge never loads a
    plugin), at most every FINGERPRINTS_TTL_S seconds."""
    global _fingerprints_cache
    from runners.device.client import list_device_backends
    from runners.device.sandbox import key_paths_from_env

    now = time.monotonic()
    if _fingerprints_cache is None or now - _fingerprints_cache[0] > FINGERPRINTS_TTL_S:
        listed = list_device_backends(key_paths_from_env())
        _fingerprints_cache = (
            now,
            [b["fingerprint"] for b in listed if b.get("available") and b.get("fingerprint")],
        )
    return _fingerprints_cache[1]


def _heartbeat_loop(identity: RunnerIdentity, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            fingerprints = _device_fingerprints()
            app.send_task(
                "runs.heartbeat",
                args=[signed_message(identity, {"fingerprints": fingerprints, "jobs": _running_jobs()})],
                queue=PLATFORM_QUEUE,
            )
        except Exception:  # a missed heartbeat is what the platform's health sweep is for
            logger.warning("heartbeat not sent", exc_info=True)
            metrics.heartbeat(sent=False)
        else:
            metrics.heartbeat(sent=True)
        stop.wait(HEARTBEAT_SECONDS)


_heartbeat_stop = threading.Event()


@signals.worker_ready.connect
def _start_heartbeats(**_kwargs: Any) -> None:
    served = metrics.serve()
    if served is not None:
        logger.info("runner metrics on port %s", served)
    identity = RunnerIdentity.from_env()
    threading.Thread(
        target=_heartbeat_loop, args=(identity, _heartbeat_stop), daemon=True, name="runner-heartbeat"
    ).start()


@signals.worker_shutdown.connect
def _stop_heartbeats(**_kwargs: Any) -> None:
    _heartbeat_stop.set()

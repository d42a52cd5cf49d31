"""Small signed messages from runner hosts: progress, failure reports and heartbeats.

Each is {"runner", "key_id", "payload_json", "signature"}; a message whose signature does not
verify against a registered runner key is dropped (and logged), never acted on.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from apps.registry.models import Runner, RunnerStatus
from apps.runs.models import ErrorClass, Job, JobState
from apps.runs.services.campaigns import job_claim, job_fail, job_progress
from certification.json_limits import json_loads_within_depth
from runners.signing import verify_signature
from runners.spec import attempt_tag

logger = logging.getLogger(__name__)
# A verified message's sign of life is written again only once this share of the stale window
# (settings.RUNNER_STALE_AFTER_S) has passed since the recorded one: the recorded heartbeat is then at
# most a tenth of the window behind the real one, and a job's messages (progress, result, reveal
# answer) no longer each cost an UPDATE of the runner row (issue 13: the reveal answer's statement).
SIGN_OF_LIFE_REFRESH_SHARE = 0.1


class UnverifiedMessage(Exception):
    pass


def message_payload(message: Any) -> Any:
    """The message's payload as JSON, not yet verified (bounded: RecursionError/ValueError otherwise)."""
    if not isinstance(message, dict):
        raise UnverifiedMessage("not an object")
    try:
        return json_loads_within_depth(str(message.get("payload_json", "")))
    except ValueError:
        raise UnverifiedMessage("payload is not JSON") from None


def _verified_payload(
    message: dict[str, Any], *, heartbeat: bool = False, signer: Runner | None = None, payload: Any = None
) -> tuple[Runner, dict[str, Any]]:
    """The runner whose registered key signed the message, and its payload; a heartbeat always
    records its sign of life, another message only when the recorded one is not recent.

    `signer`: the only runner whose signature the caller accepts, already read with what the message
    is about (the reveal's committing runner), so it is not read again: a message with another key is
    refused as unknown. `payload`: message_payload(message), when the caller has parsed it already
    (it counts only once the signature over the same bytes verifies)."""
    if not isinstance(message, dict):
        raise UnverifiedMessage("not an object")
    key_id = str(message.get("key_id", ""))
    if signer is not None:
        runner = signer if signer.key_id == key_id and signer.status != RunnerStatus.DISABLED else None
    else:
        runner = Runner.objects.filter(key_id=key_id).exclude(status=RunnerStatus.DISABLED).first()
    if runner is None or runner.name != message.get("runner"):
        raise UnverifiedMessage("unknown runner key")
    body = str(message.get("payload_json", "")).encode()
    if not verify_signature(runner.public_key, body, str(message.get("signature", ""))):
        raise UnverifiedMessage("bad signature")
    if payload is None:
        payload = message_payload(message)
    if not isinstance(payload, dict) or payload.get("runner") != runner.name:
        raise UnverifiedMessage("payload names another runner")
    # Any verified message is a sign of life, as good as a heartbeat; one recorded recently (the
    # runner was read with it, online) is not written again (SIGN_OF_LIFE_REFRESH_SHARE).
    now = timezone.now()
    refresh = timedelta(seconds=settings.RUNNER_STALE_AFTER_S * SIGN_OF_LIFE_REFRESH_SHARE)
    seen = runner.last_heartbeat_at
    if (
        heartbeat
        or runner.status != RunnerStatus.ONLINE
        or seen is None
        or not timedelta(0) <= now - seen < refresh
    ):
        Runner.objects.filter(pk=runner.pk).exclude(status=RunnerStatus.DISABLED).update(
            status=RunnerStatus.ONLINE, last_heartbeat_at=now
        )
    return runner, payload


def _job_for(runner: Runner, payload: dict) -> Job | None:
    try:
        job_id = int(payload.get("job_id"))
    except (TypeError, ValueError):
        return None
    return (
        Job.objects.select_related("campaign__target")
        .filter(pk=job_id, campaign__target__runners=runner)
        .first()
    )


def runner_progress_receive(*, message: dict) -> None:
    try:
        runner, payload = _verified_payload(message)
    except UnverifiedMessage as exc:
        logger.warning("dropped progress message: %s", exc)
        return
    job = _job_for(runner, payload)
    if job is None:
        return
    if payload.get("attempt") != attempt_tag(job.challenge):
        # An earlier attempt's runner (or a replayed message) must neither claim nor keep alive this one.
        logger.info("dropped progress of job %s: not its current attempt", job.pk)
        return
    if job.state == JobState.QUEUED:
        job_claim(job_id=job.pk, runner_id=runner.pk)
    eta = payload.get("eta_seconds")
    job_progress(
        job_id=job.pk,
        fraction=float(payload.get("fraction") or 0.0),
        message=str(payload.get("message", "")),
        eta_seconds=float(eta) if isinstance(eta, int | float) else None,
    )


def runner_failure_receive(*, message: dict) -> None:
    try:
        runner, payload = _verified_payload(message)
    except UnverifiedMessage as exc:
        logger.warning("dropped failure message: %s", exc)
        return
    job = _job_for(runner, payload)
    if job is None or payload.get("challenge") != job.challenge:
        return  # a report about an earlier attempt, or about another job
    error_class = payload.get("error_class")
    if error_class not in ErrorClass.values:
        error_class = ErrorClass.INFRASTRUCTURE
    # A fingerprint mismatch will not fix itself by retrying on the same host.
    retry = error_class == ErrorClass.INFRASTRUCTURE and "fingerprint mismatch" not in str(
        payload.get("message")
    )
    job_fail(job_id=job.pk, error_class=error_class, message=str(payload.get("message", "")), retry=retry)


def runner_heartbeat_receive(*, message: dict) -> None:
    try:
        runner, payload = _verified_payload(message, heartbeat=True)
    except UnverifiedMessage as exc:
        logger.warning("dropped heartbeat: %s", exc)
        return
    fingerprints = payload.get("fingerprints") if isinstance(payload.get("fingerprints"), list) else []
    Runner.objects.filter(pk=runner.pk).update(last_fingerprint={"devices": fingerprints[:16]})
    # The jobs the runner's worker is executing right now stay alive while a long case computes.
    jobs = payload.get("jobs") if isinstance(payload.get("jobs"), list) else []
    for item in jobs[:16]:
        job = _job_for(runner, item) if isinstance(item, dict) else None
        if (
            job is not None
            and job.runner_id == runner.pk
            and item.get("attempt") == attempt_tag(job.challenge)
        ):
            Job.objects.filter(pk=job.pk, state=JobState.RUNNING, runner=runner).update(
                last_seen_at=timezone.now()
            )

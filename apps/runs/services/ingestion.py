"""Ingestion of a runner's signed result envelope: verify everything, then store it once.

Checks, in order: envelope shape and digest; the runner key is registered and the signature is
valid; the runner serves the job's target (until here nothing about the job is read or told: a
sender that is not the job's own runner learns nothing of it and can never fail it); the job still
waits for evidence; the challenge is the job's current one (an old or replayed result fails here); the document passes the result schema; the fingerprint matches the
registered target; a model document's weights digests are the campaign's artifacts'; every unsupported
case is what the backend declared and a random sample of cases recomputes the same server-side. Only
then are the document (sha256, size) and its cases and measurements stored, in one transaction.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from dataclasses import dataclass
from typing import Any

from django.core.files.base import ContentFile
from django.db import connection, transaction
from django.utils import timezone

from apps.audit.services import audit_record
from apps.registry.models import Runner, RunnerStatus
from apps.runs.models import (
    CaseResult,
    ErrorClass,
    EvidenceRejection,
    Job,
    JobState,
    JobSuite,
    Measurement,
    ResultDocument,
    RevealState,
)
from apps.runs.services.campaigns import campaign_check_completion, job_fail
from apps.runs.services.coverage import evidence_plan_problems
from apps.runs.services.model_evidence import fp8_path_problems, model_weights_problems
from apps.runs.services.programs import program_reveal_policy, program_spot_check_size
from apps.runs.services.reveal import (
    commitment_problems,
    queue_ahead_seconds,
    reveal_draw,
    reveal_requests_publish,
)
from apps.runs.services.spot_check import spot_check_cases
from apps.runs.specs import expected_fingerprint
from certification.instruments import SPOT_CHECK_SECONDS
from certification.json_limits import json_loads_within_depth
from certification.recorded_text import say
from runners.catalog.base import drawn_cases_kept
from runners.fingerprint_check import fingerprint_mismatches
from runners.signing import verify_signature
from runners.suites import COMMITTING_SUITES

logger = logging.getLogger(__name__)
MAX_DOCUMENT_BYTES = 64 * 1024 * 1024
DOCUMENT_MAX_DEPTH = 64  # a conformance document nests 5 levels
ENVELOPE_KEYS = {"envelope_version", "runner", "key_id", "document_json", "document_sha256", "signature"}


@dataclass(frozen=True)
class IngestOutcome:
    accepted: bool
    reason: str = ""
    job_id: int | None = None
    duplicate: bool = False
    document: ResultDocument | None = None


class Rejected(Exception):
    """The envelope fails a check. `fails_job` when the job's evidence is invalid, not merely stale or forged."""

    def __init__(self, reason: str, *, fails_job: bool) -> None:
        super().__init__(reason)
        self.reason, self.fails_job = reason, fails_job


def _reject(
    job: Job | None, envelope: dict[str, Any], raw: bytes, exc: Rejected, *, runner: Runner | None = None
) -> IngestOutcome:
    """Record a refusal. Only the job's own bound runner (`runner`, authenticated) can fail the job:
    whatever else a stranger's envelope triggers, the job's state is never its to change."""
    logger.warning("rejected result for job %s: %s", job.pk if job else "?", exc.reason)
    if job is not None:
        EvidenceRejection.objects.create(
            job=job,
            reason=exc.reason,
            envelope_sha256=hashlib.sha256(raw).hexdigest(),
            key_id=str(envelope.get("key_id", ""))[:64],
        )
        audit_record(action="evidence.rejected", obj=job, payload={"reason": exc.reason})
        if exc.fails_job and runner is not None:
            job_fail(job_id=job.pk, error_class=ErrorClass.REJECTED_EVIDENCE, message=exc.reason)
    return IngestOutcome(False, exc.reason, job.pk if job else None)


def _parse(envelope: dict[str, Any]) -> tuple[bytes, dict[str, Any]]:
    if not isinstance(envelope, dict) or not ENVELOPE_KEYS <= set(envelope):
        raise Rejected(say("ingest.not_envelope"), fails_job=False)
    raw = str(envelope["document_json"]).encode("utf-8")
    if len(raw) > MAX_DOCUMENT_BYTES:
        raise Rejected(say("ingest.too_large"), fails_job=False)
    try:
        # Bounded: a 1,000-deep document or a 5,000-digit integer made json raise past JSONDecodeError.
        document = json_loads_within_depth(raw.decode("utf-8"), max_depth=DOCUMENT_MAX_DEPTH)
    except ValueError:
        raise Rejected(say("ingest.not_json"), fails_job=False) from None
    if not isinstance(document, dict):
        raise Rejected(say("ingest.not_object"), fails_job=False)
    return raw, document


def _job_of(document: dict[str, Any]) -> Job | None:
    try:
        job_id = int((document.get("spec") or {}).get("job_id"))
    except (TypeError, ValueError, AttributeError):
        return None
    # Everything ingestion and the reveal's draw read of the job, in one query: with the jobs queued
    # ahead of it on its target (the reveal's answer window), as they stand when the envelope arrives.
    return (
        Job.objects.select_related(
            "campaign__target__chip", "campaign__target__vendor", "campaign__program", "model", "reveal_plan"
        )
        .annotate(reveal_queue_ahead_s=queue_ahead_seconds())
        .filter(pk=job_id)
        .first()
    )


def _authenticate(envelope: dict[str, Any], raw: bytes, job: Job) -> Runner:
    """The registered, enabled runner whose key signed these bytes and which is bound to the job's
    target; anything else is refused before the job's state is even looked at (never `fails_job`)."""
    if hashlib.sha256(raw).hexdigest() != envelope["document_sha256"]:
        raise Rejected(say("ingest.digest"), fails_job=False)
    runner = Runner.objects.filter(key_id=str(envelope["key_id"])).first()
    if runner is None:
        raise Rejected(say("ingest.unknown_key"), fails_job=False)
    if runner.status == RunnerStatus.DISABLED:
        raise Rejected(say("ingest.runner_disabled", runner=runner.name), fails_job=False)
    if not verify_signature(runner.public_key, raw, str(envelope["signature"])):
        raise Rejected(say("ingest.bad_signature"), fails_job=False)
    if not runner.targets.filter(pk=job.campaign.target_id).exists():
        # Any vendor's registered runner can sign; only the target's own may touch its jobs.
        raise Rejected(
            say("ingest.runner_not_bound", runner=runner.name, target=job.campaign.target.slug),
            fails_job=False,
        )
    return runner


def _check_challenge(document: dict[str, Any], job: Job) -> None:
    if (document.get("spec") or {}).get("challenge") != job.challenge:
        raise Rejected(say("ingest.stale_challenge"), fails_job=False)


def _validate(document: dict[str, Any], job: Job) -> dict[str, Any]:
    from runners.document import DocumentInvalid, validate_document

    try:
        validate_document(document)
    except DocumentInvalid as exc:
        problems = [_schema_problem(error) for error in exc.errors[:20]]
        raise Rejected(
            say("ingest.schema_invalid", count=len(exc.errors), problems="; ".join(problems)), fails_job=True
        ) from None
    if document.get("suite") != job.suite:
        raise Rejected(
            say("ingest.wrong_suite", document=document.get("suite"), job=job.suite), fails_job=True
        )
    mismatches = fingerprint_mismatches(
        document.get("fingerprint") or {}, expected_fingerprint(job.campaign.target)
    )
    if mismatches:
        raise Rejected(say("ingest.fingerprint", problems="; ".join(mismatches)), fails_job=True)
    if job.suite in (JobSuite.MODEL, JobSuite.SERVING) and (
        problems := model_weights_problems(document=document, job=job)
    ):
        raise Rejected(say("ingest.weights", problems="; ".join(problems)), fails_job=True)
    if problems := fp8_path_problems(document=document, job=job):
        raise Rejected(say("ingest.fp8_path", problems="; ".join(problems)), fails_job=True)
    if problems := evidence_plan_problems(document=document, plan=job.spec):
        raise Rejected(say("ingest.plan", problems="; ".join(problems)), fails_job=True)
    policy = program_reveal_policy(program=job.campaign.program, level=job.campaign.level)
    if _reveal_size(job, policy.size) > 0 and (problems := commitment_problems(document=document)):
        raise Rejected(say("ingest.commitment", problems="; ".join(problems)), fails_job=True)
    size = program_spot_check_size(program=job.campaign.program, level=job.campaign.level)
    with SPOT_CHECK_SECONDS.time():
        report = spot_check_cases(
            document,
            sample_size=size,
            rng=secrets.SystemRandom(),
            inputs_only=_reveal_size(job, policy.size) > 0,
        )
    if report["failures"]:
        raise Rejected(say("ingest.spot_check", failures="; ".join(report["failures"])), fails_job=True)
    return report


def _schema_problem(error: str) -> str:
    """A schema problem as the runners' validator words it ("<path>: <message>"), as a named item."""
    path, _, message = error.partition(": ")
    return say("named.item", name=path, text=message) if message else error


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


CASE_COLUMNS = [
    "kernel",
    "dtype",
    "case",
    "status",
    "error_class",
    "max_abs",
    "max_rel",
    "tolerance_ratio",
    "mismatch_fraction",
    "atol",
    "rtol",
]
MEASUREMENT_COLUMNS = [
    "kind",
    "name",
    "dtype",
    "unit",
    "value",
    "median",
    "p90",
    "p99",
    "cv",
    "unstable",
    "efficiency",
    "flags",
    "params",
]


SERVING_SCENARIO_CASES = ("serving_SingleStream", "serving_MultiStream", "serving_Server", "serving_Offline")


def serving_server_summaries(document: dict[str, Any]) -> dict[str, str]:
    """model name -> the text of its Server run's LoadGen summary, where the document's serving record
    holds one that matches the sha256 it records beside it (LoadGen's own record of what it judged)."""
    from runners.serving_rate import summary_matches

    serving = document.get("serving")
    models = serving.get("models") if isinstance(serving, dict) else None
    out: dict[str, str] = {}
    for model in models if isinstance(models, list) else []:
        scenarios = model.get("scenarios") if isinstance(model, dict) else None
        server = scenarios.get("Server") if isinstance(scenarios, dict) else None
        if isinstance(server, dict) and isinstance(model.get("name"), str):
            text = server.get("summary_text")
            if isinstance(text, str) and summary_matches(text, server.get("summary_sha256")):
                out[model["name"]] = text
    return out


def serving_case_mismatch_fraction(
    item: dict[str, Any], summaries: dict[str, str]
) -> tuple[bool, float | None]:
    """(is a serving scenario's case, the mismatch fraction to keep of it). A serving scenario's case
    carries LoadGen's count of queries over the latency bound as its mismatch fraction; that count is a
    verdict only where LoadGen judged each query's latency (runners/serving_bound.overlatency_judged: a
    Server run outside token-latency mode, read from the model's digested Server summary), so it is kept
    there and nowhere else, whatever the document says (documents before session 26 recorded a decoder's
    1425 of 1425 queries "over" a bound LoadGen did not judge it by)."""
    from runners.serving_bound import overlatency_judged

    case = item.get("case")
    if case not in SERVING_SCENARIO_CASES:
        return False, None
    scenario = str(case).removeprefix("serving_")
    if not overlatency_judged(scenario, summaries.get(str(item.get("kernel")))):
        return True, None
    stats = item.get("stats") or {}
    return True, _number(stats.get("mismatch_fraction")) if isinstance(stats, dict) else None


def _case_rows(document: dict[str, Any]) -> list[tuple[Any, ...]]:
    rows = []
    summaries = serving_server_summaries(document) if document.get("suite") == "serving" else {}
    for item in document.get("cases") or []:
        stats = item.get("stats") or {}
        serving, fraction = serving_case_mismatch_fraction(item, summaries)
        rows.append(
            (
                str(item.get("kernel", ""))[:64],
                str(item.get("dtype", ""))[:32],
                str(item.get("case", ""))[:128],
                str(item.get("status", ""))[:16],
                str(item.get("error_class") or "")[:32],
                _number(stats.get("max_abs")),
                _number(stats.get("max_rel")),
                _number(stats.get("tolerance_ratio")),
                fraction if serving else _number(stats.get("mismatch_fraction")),
                _number(stats.get("atol")),
                _number(stats.get("rtol")),
            )
        )
    return rows


def _measurement_rows(document: dict[str, Any]) -> list[tuple[Any, ...]]:
    rows = []
    for item in document.get("measurements") or []:
        stats = item.get("stats") or {}
        flags = item.get("flags") or []
        rows.append(
            (
                str(item.get("kind", ""))[:32],
                str(item.get("name", ""))[:128],
                str(item.get("dtype") or "")[:32],
                str(item.get("unit") or "")[:32],
                _number(item.get("value")),
                _number(stats.get("median")),
                _number(stats.get("p90")),
                _number(stats.get("p99")),
                _number(stats.get("cv")),
                bool(item.get("unstable")),
                _number(item.get("efficiency")),
                flags if isinstance(flags, list) else [flags],
                {
                    k: v
                    for k, v in item.items()
                    if k not in {"stats", "flags", "name", "kind", "unit", "value"}
                },
            )
        )
    return rows


def _insert(model, columns: list[str], document_id: int, rows: list[tuple[Any, ...]]) -> None:
    """Insert evidence rows. PostgreSQL gets COPY (10,000 rows in a few tens of ms, where INSERTs
    through model instances take seconds); other databases get bulk_create."""
    if not rows:
        return
    json_columns = {i for i, c in enumerate(columns) if c in {"flags", "params"}}
    if connection.vendor == "postgresql":
        table = model._meta.db_table
        names = ", ".join(f'"{c}"' for c in ["document_id", *columns])
        with connection.cursor() as cursor:
            with cursor.cursor.copy(f'COPY "{table}" ({names}) FROM STDIN') as copy:
                for row in rows:
                    copy.write_row(
                        [document_id, *(json.dumps(v) if i in json_columns else v for i, v in enumerate(row))]
                    )
        return
    model.objects.bulk_create(
        [model(document_id=document_id, **dict(zip(columns, row, strict=True))) for row in rows],
        batch_size=2000,
    )


def _reveal_size(job: Job, size: int) -> int:
    """The level's reveal size for this job's document: the suites that commit their judged outputs
    (runners.suites.COMMITTING_SUITES, the serving suite included)."""
    return size if job.suite in COMMITTING_SUITES else 0


def result_ingest(*, envelope: dict[str, Any]) -> IngestOutcome:
    """Verify and store one result envelope. Idempotent: a re-delivered envelope is recognized."""
    # The plan check, the spot check and the reveal's draw all read the job's drawn case dimensions:
    # drawn once for the whole ingestion (issue 13: the draw priced every committed output again).
    with drawn_cases_kept():
        return _result_ingest(envelope)


def _result_ingest(envelope: dict[str, Any]) -> IngestOutcome:
    try:
        raw, document = _parse(envelope)
    except Rejected as exc:
        return _reject(None, envelope if isinstance(envelope, dict) else {}, b"", exc)
    job = _job_of(document)
    if job is None:
        return _reject(None, envelope, raw, Rejected(say("ingest.unknown_job"), fails_job=False))
    try:
        runner = _authenticate(envelope, raw, job)
    except Rejected as exc:
        return _reject(job, envelope, raw, exc)
    sha256 = hashlib.sha256(raw).hexdigest()
    existing = ResultDocument.objects.filter(job=job).first()
    if existing is not None:
        if existing.sha256 == sha256:
            return IngestOutcome(True, "already ingested", job.pk, duplicate=True, document=existing)
        return _reject(job, envelope, raw, Rejected(say("ingest.has_evidence"), fails_job=False))
    if job.state not in {JobState.QUEUED, JobState.RUNNING}:
        return _reject(
            job, envelope, raw, Rejected(say("ingest.job_state", state=job.state), fails_job=False)
        )
    try:
        _check_challenge(document, job)
        spot_check = _validate(document, job)
    except Rejected as exc:
        return _reject(job, envelope, raw, exc, runner=runner)

    policy = program_reveal_policy(program=job.campaign.program, level=job.campaign.level)
    reveal_size = _reveal_size(job, policy.size)
    reveal = None
    with transaction.atomic():
        # The conditional update is the claim on the job's evidence: one document per job, ever. A job
        # whose outputs must be revealed stays running until the reveal settles (services/reveal.py).
        now = timezone.now()
        if not Job.objects.filter(pk=job.pk, state__in=[JobState.QUEUED, JobState.RUNNING]).update(
            state=JobState.RUNNING if reveal_size > 0 else JobState.SUCCEEDED,
            progress=1.0,
            progress_message=say("job.awaiting_reveal") if reveal_size > 0 else "",
            finished_at=None if reveal_size > 0 else now,
            runner=runner,
            error_class="",
            error_message="",
        ):
            return IngestOutcome(False, "the job ended meanwhile", job.pk)
        stored = ResultDocument(
            job=job,
            sha256=sha256,
            size=len(raw),
            signature=envelope["signature"],
            runner=runner,
            key_id=runner.key_id,
            suite=job.suite,
            fingerprint=document.get("fingerprint") or {},
            summary=document.get("summary") or {},
            integrity=document.get("integrity") or {},
            spot_check=spot_check,
        )
        stored.content.save(f"{sha256[:2]}/{sha256}.json", ContentFile(raw), save=False)
        try:
            stored.save()
            cases, measurements = _case_rows(document), _measurement_rows(document)
            _insert(CaseResult, CASE_COLUMNS, stored.pk, cases)
            _insert(Measurement, MEASUREMENT_COLUMNS, stored.pk, measurements)
            accepted: dict[str, Any] = {
                "sha256": sha256,
                "runner": runner.name,
                "cases": len(cases),
                "measurements": len(measurements),
            }
            if reveal_size > 0:  # drawn now that the commitment is stored, never before
                reveal, accepted["reveal"] = reveal_draw(
                    stored=stored,
                    document=document,
                    job=job,
                    size=policy.size,
                    rule=policy.rule,
                    budget=policy.budget_elements,
                )
                if reveal.state != RevealState.PENDING:  # nothing to ask: settled at once
                    Job.objects.filter(pk=job.pk, state=JobState.RUNNING).update(
                        state=JobState.SUCCEEDED, finished_at=now, progress_message=""
                    )
            # One event for the acceptance and the sample it drew (issue 13: the request was an event
            # of its own); the answer's is the reveal's only other event.
            audit_record(action="evidence.accepted", obj=job, payload=accepted)
        except Exception:
            stored.content.delete(save=False)
            raise
    if reveal is not None:  # this evidence may be the last the campaign's drawn reveals waited for
        campaign_id, queue = job.campaign_id, job.campaign.target.queue  # read with the job
        transaction.on_commit(lambda: reveal_requests_publish(campaign_id=campaign_id, queue=queue))
    if reveal is not None and reveal.state == RevealState.PENDING:
        return IngestOutcome(
            True, "accepted; awaiting the reveal of sampled outputs", job.pk, document=stored
        )
    campaign_check_completion(campaign_id=job.campaign_id)
    return IngestOutcome(True, "accepted", job.pk, document=stored)
